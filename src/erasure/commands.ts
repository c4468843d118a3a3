/**
 * `jarvis-db erase --user ID` as a narrowed plan of one erase_user action run by the engine's
 * `apply` (one lock, one journal; docs/architecture.md §5); `--dry-run` and `--verify` read only.
 * Also the reapply_tombstones action a restore adds after its restore_backup actions, so that
 * an erased user never comes back from a backup (docs/erasure.md).
 */
import type { Desired } from '../config/types.js';
import { commandModule, newRecord, recording, throwIfFailed } from '../engine/command.js';
import type { EngineParts } from '../engine/index.js';
import type { EraseUser, Plan, ReapplyTombstones, RunResult } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { openRepositories } from '../storage/repositories.js';
import type { ErasureReport } from './run.js';
import { scanTombstones, tombstonesSince } from './tombstones.js';

export interface EraseOptions {
  env: NodeJS.ProcessEnv;
  lockTimeoutMs?: number;
  waitingForLock?(owner: { pid: number; runId: string } | null): void;
  /** Asked with the plan (a terminal prompt); absent: approved (--auto-approve). */
  confirm?(plan: Plan): Promise<boolean>;
}

function checkUser(user: string): void {
  if (user.trim() === '' || user.length > 200 || /[\u0000-\u001f]/.test(user)) {
    throw new JarvisError('USAGE', '--user must be a user id (the key of the users table): not empty, at most 200 characters, no control characters');
  }
}

export async function eraseCommand(desired: Desired, user: string, options: EraseOptions): Promise<{ report: ErasureReport; summary: string; run: RunResult }> {
  checkUser(user);
  if (!desired.services.postgres) throw new JarvisError('CONFIG_INVALID', 'erase needs services.postgres (the users and their rows)', { hint: 'configure services.postgres in jarvis-db.yaml' });
  const action: EraseUser = {
    id: 'erasure.erase.user', type: 'erase_user', module: 'erasure', target: `user ${JSON.stringify(user)}`,
    reason: 'requested (erase --user)', risk: 'destructive', estimate: null, params: { user },
    services: (['postgres', 'redis', 'chroma'] as const).filter((s) => s === 'postgres' || (desired.links ?? []).some((l) => l.side.store === s)),
  };
  const { HANDLERS } = await import('../engine/registry.js');
  const { apply } = await import('../engine/index.js');
  const record = newRecord();
  const parts: EngineParts = {
    modules: [commandModule({ name: 'erasure', observe: async () => ({}) }, () => [action])],
    handlers: { ...HANDLERS, erase_user: recording(HANDLERS.erase_user, record) },
  };
  const run = await apply({
    desired, parts, env: options.env, lockTimeoutMs: options.lockTimeoutMs, probeServices: false,
    ...(options.confirm ? { confirm: options.confirm } : {}),
    reporter: options.waitingForLock ? { waitingForLock: options.waitingForLock } : {},
  });
  throwIfFailed(run, record);
  const outcome = record.outcomes.get(action.id)!;
  return { report: outcome.details as unknown as ErasureReport, summary: outcome.summary, run };
}

/** The restores of one command, by service: their action ids. */
export interface RestoredBy { postgres?: string; redis?: string; chroma?: string }

/**
 * The reapply_tombstones action after a restore of a backup (or point) taken at `since`, or
 * null when no tombstone was recorded since then. Read before the restore runs: the lock is not
 * held yet, but an erasure recorded meanwhile is after this backup too and erased the live stores.
 */
export async function reapplyAction(desired: Desired, since: string, restores: RestoredBy, env: NodeJS.ProcessEnv): Promise<ReapplyTombstones | null> {
  const scan = await scanTombstones(openRepositories(desired, env));
  // Every repository holds every tombstone: one that answers is enough.
  if (scan.unreachable.length && scan.unreachable.length === openRepositories(desired, env).length) {
    throw new JarvisError('REPOSITORY', `cannot read the tombstones in ${scan.unreachable.map((u) => `${u.repository} (${u.message})`).join(', ')}: a restore could bring an erased user back; nothing was restored`, {
      hint: 'make the repository reachable, or restore with --repository naming one that is',
    });
  }
  const due = tombstonesSince(scan.tombstones, since);
  if (!due.length) return null;
  const requires = Object.values(restores).filter((id): id is string => id !== undefined);
  return {
    id: 'erasure.reapply.tombstones', type: 'reapply_tombstones', module: 'erasure', target: `${due.length} tombstones since ${since}`,
    reason: `erasures recorded after the backup was taken (${since})`, risk: 'destructive', estimate: null, requires,
    params: { since, tombstones: due.map((t) => t.id), ...restores },
  };
}
