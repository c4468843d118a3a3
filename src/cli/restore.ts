/**
 * `jarvis-db restore ID`: flags → src/backup/commands (a restore_backup action run by the engine's apply);
 * with --to-time/--to-lsn/--to-name, point-in-time recovery (cli/wal.ts restoreToPoint).
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { globalOptions, loadDesired, lockWait, print, printJson } from './common.js';

export function define(program: Command): void {
  program
    .command('restore [id]')
    .description('Restore a backup (postgres: into a new database <db>_restore_<id> by default; a physical one into --target-dir), or with --point ID every backup of a recovery point')
    .option('--point <id>', 'restore every member of this recovery point (backup list shows them), each to its usual target with the flags that apply to it')
    .option('--target-db <name>', 'postgres: the database to restore into')
    .option('--force', 'restore onto a non-empty target, or restore a backup whose checksums fail (destructive)')
    .option('--flush', 'redis: empty the target first (FLUSHALL for an RDB backup, FLUSHDB of its databases for a logical one; destructive)')
    // chroma
    .option('--collection <name>', 'chroma: restore only this collection of the backup')
    .option('--as <name>', 'chroma: restore the collection under this name')
    .option('--target-dir <path>', 'physical backups: the data directory to write (postgres: an empty directory, started with pg_ctl; chroma: default services.chroma.path, the server must be stopped)')
    .option('--repository <name>', 'read the backup from this repository (default: the first whose copy passes its checksums)')
    .option('--lock-timeout <duration>', 'how long to wait for an apply on the same storage to finish', '60s')
    // point-in-time recovery of a physical backup (src/wal, cli/wal.ts)
    .option('--to-time <timestamp>', 'postgres physical: recover to this time (ID may be latest: the newest base backup before it)')
    .option('--to-lsn <lsn>', 'postgres physical: recover to this WAL position')
    .option('--to-name <name>', 'postgres physical: recover to this restore point (jarvis-db restore-point NAME)')
    .option('--start', 'with --to-*: start the recovered server, wait until it reached the target and is promoted')
    .option('--port <port>', 'with --start: the port of the recovered server (default: a free one)')
    .action(async (id: string | undefined, opts: { point?: string; targetDb?: string; force?: boolean; flush?: boolean; collection?: string; as?: string; targetDir?: string; repository?: string; lockTimeout: string; toTime?: string; toLsn?: string; toName?: string; start?: boolean; port?: string }, cmd: Command) => {
      const { JarvisError } = await import('../errors.js');
      if ((id === undefined) === (opts.point === undefined)) throw new JarvisError('USAGE', id === undefined ? 'give a backup ID, or --point ID' : 'give a backup ID or --point ID, not both');
      if (opts.toTime !== undefined || opts.toLsn !== undefined || opts.toName !== undefined || opts.start || opts.port !== undefined) {
        if (id === undefined) throw new JarvisError('USAGE', '--to-time, --to-lsn and --to-name recover one PostgreSQL base backup: give its ID (or latest), not --point', { hint: 'backup list --json shows a point\'s WAL position (pitr.lsn) to pass to --to-lsn' });
        return (await import('./wal.js')).restoreToPoint(id, opts, cmd);
      }
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      if (opts.point !== undefined) {
        if (opts.collection !== undefined || opts.as !== undefined) throw new JarvisError('USAGE', '--collection and --as restore one collection of one backup: not with --point');
        const { restorePointCommand } = await import('../backup/point-commands.js');
        const { progressFor } = await import('../render/progress.js');
        const progress = await progressFor(`restore point ${opts.point}`, g.json);
        const r = await restorePointCommand(desired, opts.point, {
          target: opts.targetDb, force: Boolean(opts.force), flush: Boolean(opts.flush), env: process.env, progress, ...(await lockWait(desired, opts.lockTimeout)),
          repository: opts.repository, targetDir: opts.targetDir === undefined ? undefined : resolve(opts.targetDir),
        }).finally(() => progress.stop());
        if (g.json) return printJson({ point: r.point.id, restored: r.restored.map(({ service, schedule, id: backup, details }) => ({ service, schedule, id: backup, ...details })), tombstones: r.tombstones });
        for (const m of r.restored) print(`${m.service} ${m.id}: ${m.summary}`);
        print(`Tombstones: ${r.tombstones.summary}`);
        print(`Recovery point ${r.point.id} restored (${r.restored.length} backups).`);
        return;
      }
      if (id === undefined) return;
      const { restoreCommand } = await import('../backup/commands.js');
      const { progressFor } = await import('../render/progress.js');
      const progress = await progressFor(`restore ${id}`, g.json);
      const result = await restoreCommand(desired, id, {
        target: opts.targetDb, force: Boolean(opts.force), flush: Boolean(opts.flush), env: process.env, progress, ...(await lockWait(desired, opts.lockTimeout)),
        collection: opts.collection, as: opts.as, repository: opts.repository, targetDir: opts.targetDir === undefined ? undefined : resolve(opts.targetDir),
      }).finally(() => progress.stop());
      if (g.json) printJson({ id, ...result.details, tombstones: result.tombstones });
      else print(`${result.summary}\nTombstones: ${result.tombstones.summary}`);
    });
}
