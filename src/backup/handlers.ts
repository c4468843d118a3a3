/**
 * The handlers of the backup module's actions (module.ts plans them): create, prune, prune_wal,
 * copy, verify and restore, each a thin call into operations.ts (or wal/) with its one-line summary.
 */
import type { CopyBackup, CreateBackup, Handler, PruneBackup, PruneWal, RestoreBackup, VerifyBackup } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { formatBytes, plural } from '../render/format.js';
import { openRepositories } from '../storage/repositories.js';
import { findBackup } from './catalog.js';
import { scheduleByName } from './operations.js';

/**
 * create_backup. With `stop`, the backup itself stops when it aborts (`backup create` on
 * SIGTERM: its tool killed, what it staged removed); without, an apply or the daemon stopping
 * lets the running backup finish (a second signal forces the exit).
 */
export function createBackupHandlerWith(stop?: AbortSignal): Handler<CreateBackup> {
  return async (action, ctx, progress) => {
    const { createBackup } = await import('./operations.js');
    // A recovery point's PostgreSQL member: with PITR, where the WAL is as it starts (a PITR restore can reach it).
    const start = action.params.point ? await (await import('./point-store.js')).pointStart(ctx.desired) : null;
    const entry = await createBackup(ctx.desired, scheduleByName(ctx.desired, action.params.schedule), ctx.env, progress, new Date(), action.params.repository, stop);
    const m = entry.manifest;
    return {
      summary: `backup ${m.id} written${ctx.desired.repositories ? ` to ${entry.repository}` : ''}, ${formatBytes(m.totalBytes)} in ${plural(m.files.length, 'file')}`,
      details: {
        id: m.id, service: m.service, schedule: m.schedule, repository: entry.repository, dir: entry.dir, totalBytes: m.totalBytes, files: m.files.length, durationMs: m.durationMs,
        encrypted: m.encrypted, ...(start ? { startLsn: start.lsn, startAt: start.at } : {}),
      },
    };
  };
}

export const createBackupHandler: Handler<CreateBackup> = createBackupHandlerWith();

export const pruneBackupHandler: Handler<PruneBackup> = async (action, ctx) => {
  const { pruneOne } = await import('./operations.js');
  const { id, repository, byId, lastValid } = action.params;
  // By id (`backup delete`), the backup's schedule may be gone from the config.
  const allowPruneLast = Boolean((byId ? ctx.desired.backups.find((b) => b.name === action.params.schedule) : scheduleByName(ctx.desired, action.params.schedule))?.allowPruneLast);
  const allowLast = allowPruneLast || (byId === true && lastValid === true);
  const entry = await pruneOne(ctx.desired, id, { allowLast, allowNewest: allowLast || byId === true, byId: byId === true }, repository, ctx.env);
  return { summary: `backup ${entry.manifest.id} deleted${repository ? ` from ${repository}` : ''} (${formatBytes(entry.manifest.totalBytes)})`, details: { id: entry.manifest.id, repository: entry.repository, totalBytes: entry.manifest.totalBytes } };
};

/** Deletes the archived WAL of one repository that no base backup there needs (src/wal/prune.ts: never past what one needs now). */
export const pruneWalHandler: Handler<PruneWal> = async (action, ctx, progress) => {
  const { pruneWal } = await import('../wal/prune.js');
  const r = await pruneWal(ctx.desired, { repository: action.params.repository, before: action.params.before, env: ctx.env, progress });
  const held = r.held ? `; ${r.held}` : '';
  return {
    summary: `${plural(r.deleted, 'WAL file')} before ${r.before} deleted from ${r.repository} (${formatBytes(r.storedBytes)} stored)${held}`,
    details: { repository: r.repository, before: r.before, deleted: r.deleted, storedBytes: r.storedBytes, ...(r.held ? { held: r.held } : {}) },
  };
};

/** Copies a backup (by id, or the one an earlier create of this run wrote) to another repository. */
export const copyBackupHandler: Handler<CopyBackup> = async (action, ctx, progress) => {
  const { copyBackup } = await import('./operations.js');
  const { from, to } = action.params;
  const id = backupIdOf(action, ctx.outcomes);
  const { entry, copied } = await copyBackup(ctx.desired, { id, from, to, env: ctx.env, progress });
  const m = entry.manifest;
  return {
    summary: copied ? `backup ${m.id} copied from ${from} to ${to}, ${formatBytes(m.totalBytes)} in ${plural(m.files.length, 'file')}` : `backup ${m.id} already in ${to}`,
    details: { id: m.id, from, to, dir: entry.dir, totalBytes: m.totalBytes, copied },
  };
};

/** The backup an action is about: by id, or the one an earlier action of this run created. */
function backupIdOf(action: VerifyBackup | CopyBackup, outcomes: ReadonlyMap<string, { details?: Record<string, unknown> }>): string {
  if (action.params.id !== undefined) return action.params.id;
  const from = String(action.params.fromAction);
  const id = outcomes.get(from)?.details?.id;
  if (typeof id !== 'string') throw new JarvisError('PLAN_INVALID', `${action.id} ${action.type === 'copy_backup' ? 'copies' : 'verifies'} the backup of ${from}, which did not run in this apply`);
  return id;
}

export const verifyBackupHandler: Handler<VerifyBackup> = async (action, ctx, progress) => {
  const { verifyBackup } = await import('./operations.js');
  const entry = await findBackup(openRepositories(ctx.desired, ctx.env), backupIdOf(action, ctx.outcomes));
  const r = await verifyBackup(ctx.desired, entry, { restoreTest: action.params.restoreTest, env: ctx.env, progress });
  if (!r.ok) throw new JarvisError('VERIFY_FAILED', `backup ${entry.manifest.id} failed verification: ${r.message}`);
  // A base backup is only as good as the WAL its recovery replays.
  const { verifyWalOfBase, walChecked, walProblems, WAL_FAILED_HINT } = await import('../wal/verify.js');
  const repository = openRepositories(ctx.desired, ctx.env).find((x) => x.name === entry.repository)!;
  const wal = await verifyWalOfBase(ctx.desired, entry.manifest, repository, { env: ctx.env });
  if (wal && !wal.ok) throw new JarvisError('VERIFY_FAILED', `the archived WAL of backup ${entry.manifest.id} failed verification: ${walProblems(wal)[0]}`, { hint: WAL_FAILED_HINT });
  const walSummary = wal ? `; WAL ${walChecked(wal)}: checksums match` : '';
  return { summary: `backup ${entry.manifest.id} verified: ${r.message}${walSummary}`, details: { id: entry.manifest.id, ...(wal ? { walFiles: wal.files } : {}) } };
};

/** `jarvis-db restore` (command-only): checksums first, then the service's driver. */
export const restoreBackupHandler: Handler<RestoreBackup> = async (action, ctx, progress) => {
  const { restoreBackup } = await import('./operations.js');
  const { id, service: _service, ...options } = action.params;
  const r = await restoreBackup(ctx.desired, id, { ...options, env: ctx.env, progress });
  return { summary: r.summary, details: { target: r.target, ...r.details } };
};
