/**
 * `jarvis-db wal push|fetch|status` (src/wal: the WAL archive in the repositories) and
 * `jarvis-db restore-point NAME`. push and fetch are what PostgreSQL's archive_command and
 * restore_command call: their output is one line at most, on stderr.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { formatAge, formatBytes, plural } from '../render/format.js';
import { globalOptions, loadDesired, note, print, printJson } from './common.js';

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
