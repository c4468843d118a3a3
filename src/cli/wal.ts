/**
 * `jarvis-db wal push|fetch|status` (src/wal: the WAL archive in the repositories) and
 * `jarvis-db restore-point NAME`. push and fetch are what PostgreSQL's archive_command and
 * restore_command call: their output is one line at most, on stderr.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { formatAge, formatBytes, plural } from '../render/format.js';
import { globalOptions, loadDesired, lockWait, note, print, printJson } from './common.js';

export function define(program: Command): void {
  const wal = program.command('wal').description('Continuous WAL archiving for point-in-time recovery (PostgreSQL)');

  wal
    .command('push <path>')
    .description("Archive one WAL file into every repository (archive_command = 'jarvis-db wal push %p')")
    .action(async (path: string, _opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { pushWalFile } = await import('../wal/archive.js');
      const result = await pushWalFile(desired, resolve(path), { warn: note });
      if (g.json) printJson(result);
    });

  wal
    .command('fetch <name> <dest>')
    .description("Write one archived WAL file to DEST, verified (restore_command = 'jarvis-db wal fetch %f %p')")
    .action(async (name: string, dest: string, _opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { fetchWalFile } = await import('../wal/archive.js');
      const result = await fetchWalFile(desired, name, resolve(dest), { warn: note });
      if (g.json) printJson(result);
    });

  wal
    .command('stream')
    .description('Receive the WAL with pg_receivewal on a replication slot (created if missing) and archive every completed segment into each repository')
    .option('--slot <name>', 'the physical replication slot (default: services.postgres.pitr.slot, else jarvis_db)')
    .option('--synchronous', "pg_receivewal --synchronous: flush and report each write at once (needed to be a synchronous standby)")
    .action(async (opts: { slot?: string; synchronous?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { streamWal } = await import('../wal/stream.js');
      let stop!: () => void;
      const stopped = new Promise<void>((r) => { stop = r; });
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      const state = await streamWal(desired, { slot: opts.slot, synchronous: Boolean(opts.synchronous), stop: stopped, log: note });
      if (g.json) printJson(state);
      else print(`stopped: ${plural(state.archived, 'segment')} archived${state.lastArchived ? `, last ${state.lastArchived}` : ''}`);
    });

  wal
    .command('status')
    .description('The recoverable window per timeline, gaps in the WAL chain, the slot\'s retained WAL')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { walStatus } = await import('../wal/status.js');
      const status = await walStatus(desired);
      if (g.json) return printJson(status);
      const lines: string[] = [];
      const now = Date.now();
      for (const r of status.repositories) {
        lines.push(`repository ${r.repository} (${r.location})`);
        if (r.error) lines.push(`  error: ${r.error}`);
        else if (r.timelines.length === 0) lines.push('  no WAL archived');
        for (const tl of r.timelines) {
          const age = tl.lastArchivedAt ? `, last archived ${formatAge(now - Date.parse(tl.lastArchivedAt))} ago` : '';
          lines.push(`  timeline ${tl.timeline}: ${plural(tl.segments, 'segment')}${tl.first ? ` ${tl.first} – ${tl.last}` : ''}${age}`);
          lines.push(tl.window
            ? `    recoverable from ${tl.window.from} to ${tl.window.to} (base backup ${tl.window.baseBackup})`
            : '    no recoverable window: no physical base backup with a complete WAL chain after it');
          for (const gap of tl.gaps) lines.push(`    gap: ${plural(gap.missing, 'segment')} missing, ${gap.from} – ${gap.to}`);
        }
      }
      const s = status.slot;
      if (s) {
        lines.push(s.error ? `slot ${s.slot}: server not reachable (${s.error})`
          : !s.exists ? `slot ${s.slot}: does not exist`
          : `slot ${s.slot}: ${s.active ? 'active' : 'inactive'}, retains ${formatBytes(s.retainedBytes ?? 0)} of WAL`);
      }
      print(lines.join('\n'));
    });

  program
    .command('restore-point <name>')
    .description('Create a named restore point on the PostgreSQL server (pg_create_restore_point), a target for restore --to-name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { createRestorePoint } = await import('../wal/recovery.js');
      const lsn = await createRestorePoint(desired, name);
      if (g.json) printJson({ name, lsn });
      else print(`restore point "${name}" created at LSN ${lsn}`);
    });
}

export interface PointInTimeFlags { targetDir?: string; force?: boolean; repository?: string; lockTimeout: string; toTime?: string; toLsn?: string; toName?: string; start?: boolean; port?: string }

/** `restore ID|latest --to-time|--to-lsn|--to-name --target-dir DIR [--start --port N]`. */
export async function restoreToPoint(id: string, opts: PointInTimeFlags, cmd: Command): Promise<void> {
  const g = globalOptions(cmd);
  const { JarvisError } = await import('../errors.js');
  const recovery = await import('../wal/recovery.js');
  const target = recovery.recoveryTargetOf(opts);
  if (!target) throw new JarvisError('USAGE', '--start and --port go with a point-in-time target: --to-time, --to-lsn or --to-name');
  if (!opts.targetDir) throw new JarvisError('USAGE', 'a point-in-time restore writes a data directory: pass --target-dir DIR (new or empty)');
  let port: number | undefined;
  if (opts.port !== undefined) {
    port = Number(opts.port);
    if (!opts.start) throw new JarvisError('USAGE', '--port goes with --start');
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new JarvisError('USAGE', `--port: "${opts.port}" is not a port number`);
  }
  const desired = await loadDesired(g);
  const dir = resolve(opts.targetDir);
  const { bases, windows } = await recovery.recoverableWindows(desired, process.env);
  const plan = recovery.choosePitrBase(id, target, bases, windows);
  const { restoreCommand } = await import('../backup/commands.js');
  const { progressFor } = await import('../render/progress.js');
  const progress = await progressFor(`restore ${plan.base.id}`, g.json);
  // The WAL is fetched while the base backup is unpacked.
  const walFetch = await recovery.startWalFetch(desired, dir, target, plan, process.env);
  const restored = await restoreCommand(desired, plan.base.id, {
    target: undefined, force: Boolean(opts.force), flush: false, env: process.env, progress, ...(await lockWait(desired, opts.lockTimeout)), targetDir: dir,
    repository: opts.repository,
  }).catch(async (e: unknown) => {
    await walFetch.abort();
    throw e;
  }).finally(() => progress.stop());
  const { fetching } = await recovery.prepareRecovery(desired, dir, target, plan, walFetch);
  const details = { id: plan.base.id, dir, target: { kind: target.kind, value: target.value }, window: plan.window };
  if (!opts.start) {
    const prefetched = await fetching;
    if (g.json) return printJson({ ...details, prefetchedWalFiles: prefetched, tombstones: restored.tombstones });
    print(`Tombstones: ${restored.tombstones.summary}`);
    const { isRoot } = await import('../scratch/servers.js');
    return print(`restored base backup ${plan.base.id} into ${dir}, set to recover to ${target.kind} ${target.value} and promote: `
      + `start it with ${isRoot() ? 'runuser -u postgres -- ' : ''}pg_ctl -D ${dir} -o '-p PORT' start (${isRoot() ? `the WAL it replays is in ${dir}/pg_wal` : 'restore_command fetches the WAL with this config'})`);
  }
  const { freePort } = await import('../scratch/servers.js');
  // The server replays while the rest of the WAL is fetched (restore_command waits for it).
  const started = await recovery.startRecovered(desired, dir, port ?? await freePort(), plan.base, process.env, fetching);
  const prefetched = await fetching;
  if (g.json) return printJson({ ...details, prefetchedWalFiles: prefetched, port: started.port, reached: started.reached, stop: started.stop, log: started.log, tombstones: restored.tombstones });
  print(`Tombstones: ${restored.tombstones.summary}`);
  print(`recovered ${dir} from base backup ${plan.base.id} to ${target.kind} ${target.value}: ${started.reached}; promoted, listening on 127.0.0.1:${started.port}\nstop it with: ${started.stop}`);
}
