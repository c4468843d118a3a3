/**
 * What verifying a backup says of the archived WAL (docs/architecture.md, "WAL in a repository"):
 * a physical base backup is only as good as the WAL its recovery replays, so `backup verify ID`
 * and a scheduled verify_backup both read that WAL end to end after the backup's own files.
 */
import type { Desired } from '../config/types.js';
import type { Repository } from '../storage/repositories.js';
import { formatBytes, plural } from '../render/format.js';
import { verifyWalArchive, type WalVerifyResult } from './archive.js';
import { baseStartOf } from './prune.js';

/**
 * The archived WAL of a physical base backup, from its start to the end of the chain, in the
 * repository of the copy verified. Null for any other backup, or when nothing is archived there
 * (a base backup without point-in-time recovery).
 */
export async function verifyWalOfBase(
  desired: Desired,
  manifest: { id: string; service: string; extra: Record<string, unknown> },
  repository: Repository,
  options: { env?: NodeJS.ProcessEnv; onFile?: (name: string, done: number, total: number) => void } = {},
): Promise<WalVerifyResult | null> {
  const base = baseStartOf(manifest);
  if (!base) return null;
  const r = await verifyWalArchive(desired, repository, { ...options, from: { timeline: base.timeline, startLsn: base.startLsn } });
  return r.files === 0 ? null : r;
}

/** One line per problem: each damaged file, then each gap in the chain. */
export function walProblems(r: WalVerifyResult): string[] {
  return [
    ...r.damaged.map((d) => d.problem),
    ...r.gaps.map((gap) => `the WAL chain in repository ${r.repository} is broken: ${plural(gap.missing, 'segment')} missing, ${gap.from} – ${gap.to}`),
  ];
}

/** What was checked: "12 files from 0000…09 to the end of the chain, 12 MB". */
export function walChecked(r: WalVerifyResult): string {
  return `${plural(r.files, 'file')}${r.from ? ` from ${r.from} to the end of the chain` : ''}, ${formatBytes(r.bytes)}`;
}

export const WAL_FAILED_HINT = 'a point-in-time recovery past it cannot work: take a new base backup (jarvis-db backup create --service postgres)';
