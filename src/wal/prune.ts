/**
 * Pruning the WAL archive with the base backups (docs/architecture.md §6, "WAL in a repository";
 * §4 rule 9: WAL that a kept base backup needs is never pruned).
 *
 * Per repository, the cut-off is the segment that holds the start LSN of the oldest physical
 * base backup kept there. Every archived segment and backup label whose segment number is below
 * it is needed by no kept base backup (a base backup replays WAL from its start onward, on its
 * timeline and the ones after it, whose segment numbers only grow), so it may go; timeline
 * history files always stay (they are tiny, and recovery onto a later timeline reads them). With
 * no physical base backup in a repository its WAL is kept: nothing says what it is for.
 *
 * The decision is pure (`walCutoff`, `prunableWal`); `pruneWal` executes a planned prune_wal:
 * it re-reads the catalog and never deletes past the cut-off a base backup there needs now (a
 * prune_backup that failed leaves its base backup, and so its WAL), then deletes oldest first
 * through the sealed store's delete, so that a kill at any moment leaves a contiguous chain.
 */
import type { Desired } from '../config/types.js';
import { JarvisError } from '../errors.js';
import type { Progress } from '../engine/types.js';
import { testPausePoint } from '../storage/durable.js';
import { openRepositories, repositoryNamed, type Repository } from '../storage/repositories.js';
import type { SealedStore } from '../storage/sealed-store.js';
import { archiveSegmentBytes, listArchive, readWalManifest, walStore, type ArchivedTimeline } from './archive.js';
import { parseLsn, parseWalFileName, segmentNumber, segmentOfLsn, timelineDir, walKey } from './segments.js';

/** Where a physical base backup's WAL starts (from its manifest: extra.timeline, extra.startLsn). */
export interface BaseStart { id: string; timeline: number; startLsn: string }

/** The oldest WAL a repository's kept base backups need: the segment holding the oldest start LSN. */
export interface WalCutoff { segment: string; baseBackup: string }

/** Pure: the cut-off of the kept base backups, or null when none is kept (then every WAL file stays). */
export function walCutoff(kept: readonly BaseStart[], segmentBytes: number): WalCutoff | null {
  let best: { segno: bigint; cutoff: WalCutoff } | null = null;
  for (const base of kept) {
    const segment = segmentOfLsn(base.timeline, parseLsn(base.startLsn), segmentBytes);
    const segno = segmentNumber(segment, segmentBytes);
    if (!best || segno < best.segno || (segno === best.segno && base.id < best.cutoff.baseBackup)) best = { segno, cutoff: { segment, baseBackup: base.id } };
  }
  return best?.cutoff ?? null;
}

/** Pure: of two cut-off segments, the one that prunes less (the lower segment number). */
export function lowerCutoff(a: string, b: string, segmentBytes: number): string {
  return segmentNumber(b, segmentBytes) < segmentNumber(a, segmentBytes) ? b : a;
}

/**
 * Pure: the archived files below `cutoff` (a segment name; compared by segment number on every
 * timeline): segments and backup labels, never history files; oldest first (by segment number,
 * then timeline, a segment before its label), the order they are deleted in.
 */
export function prunableWal(archive: readonly ArchivedTimeline[], cutoff: string, segmentBytes: number): string[] {
  const limit = segmentNumber(cutoff, segmentBytes);
  const out: { name: string; segno: bigint; timeline: number }[] = [];
  for (const { names } of archive) {
    for (const name of names) {
      const file = parseWalFileName(name);
      if (!file || file.kind === 'history') continue;
      const segno = segmentNumber(name.slice(0, 24), segmentBytes);
      if (segno < limit) out.push({ name, segno, timeline: file.timeline });
    }
  }
  return out
    .sort((a, b) => (a.segno < b.segno ? -1 : a.segno > b.segno ? 1 : a.timeline - b.timeline || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)))
    .map((f) => f.name);
}

/** Pure: how many of `names` are segments (what the raw size estimate counts; labels are a few hundred bytes). */
export function segmentCount(names: readonly string[]): number {
  return names.filter((n) => parseWalFileName(n)?.kind === 'segment').length;
}

// ------------------------------------------------------------------ execution

export interface PruneWalRequest {
  repository: string;
  /** The planned cut-off: nothing at or after it is deleted, whatever the catalog says now. */
  before: string;
  env: NodeJS.ProcessEnv;
  progress?: Progress;
}

export interface PruneWalResult {
  repository: string;
  /** The cut-off applied: the planned one, or the lower one a base backup there needs now. */
  before: string;
  deleted: number;
  /** The stored (compressed) bytes freed. */
  storedBytes: number;
  /** Why less than planned was deleted, when it was. */
  held?: string;
}

/** The base backups in one repository now, from its catalog; a damaged backup there stops the prune. */
async function keptBasesNow(repository: Repository): Promise<BaseStart[]> {
  const { scanStorage } = await import('../backup/catalog.js');
  const scan = await scanStorage(repository);
  const unreadable = scan.unreachable[0];
  if (unreadable) throw new JarvisError('STORAGE_FAILED', `repository ${repository.name} (${repository.location}) cannot be read: ${unreadable.message}; no WAL pruned`);
  // A postgres backup whose manifest does not hold may be a base backup that needs this WAL.
  const damaged = scan.invalid.find((b) => b.service === 'postgres');
  if (damaged) {
    throw new JarvisError('VERIFY_FAILED', `not pruning WAL in repository ${repository.name}: backup ${damaged.id} (${damaged.service}/${damaged.schedule}) is damaged (${damaged.problem}) and may be a base backup that needs it`, {
      hint: 'delete or repair that backup (jarvis-db backup list names it), then apply again',
    });
  }
  return scan.valid.flatMap((e) => {
    const base = baseStartOf(e.manifest);
    return base ? [base] : [];
  });
}

/** The WAL start of a catalog manifest, when it is a physical PostgreSQL base backup. */
export function baseStartOf(m: { id: string; service: string; extra: Record<string, unknown> }): BaseStart | null {
  const { timeline, startLsn } = m.extra;
  if (m.service !== 'postgres' || typeof startLsn !== 'string' || typeof timeline !== 'number') return null;
  return { id: m.id, timeline, startLsn };
}

/** Removes what a killed push or prune left in `store` (only debris whose owner is dead). */
async function removeDebrisOf(store: SealedStore, archive: readonly ArchivedTimeline[]): Promise<void> {
  for (const { timeline } of archive) {
    const debris = await store.findDebris(timelineDir(timeline));
    if (debris.length) await store.removeDebris(debris);
  }
}

/** Executes a planned prune_wal (see the header). */
export async function pruneWal(desired: Desired, request: PruneWalRequest): Promise<PruneWalResult> {
  const repository = repositoryNamed(openRepositories(desired, request.env), request.repository);
  // The catalog first: a base backup published after this read starts later than every one in it.
  const bases = await keptBasesNow(repository);
  const store = walStore(repository);
  const archive = await listArchive(store);
  const segmentBytes = await archiveSegmentBytes(store, archive);
  const now = walCutoff(bases, segmentBytes);
  if (!now) {
    return { repository: repository.name, before: request.before, deleted: 0, storedBytes: 0, held: `no physical base backup is in ${repository.name} now: its WAL is kept` };
  }
  const before = lowerCutoff(request.before, now.segment, segmentBytes);
  const held = before !== request.before ? `base backup ${now.baseBackup} is still in ${repository.name} and needs the WAL from ${now.segment}` : undefined;
  await removeDebrisOf(store, archive);
  const names = prunableWal(archive, before, segmentBytes);
  let deleted = 0;
  let storedBytes = 0;
  for (const name of names) {
    const file = parseWalFileName(name)!;
    const manifest = await readWalManifest(store, file).catch(() => null);
    await store.delete(walKey(file));
    deleted++;
    storedBytes += manifest?.file.bytes ?? 0;
    request.progress?.update(deleted, names.length);
    await testPausePoint(`wal-prune-deleted-${deleted}`, request.env);
  }
  return { repository: repository.name, before, deleted, storedBytes, ...(held ? { held } : {}) };
}
