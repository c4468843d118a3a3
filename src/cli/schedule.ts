/** `jarvis-db schedule [--next N]`: each backup schedule, its newest valid backup, whether it is due, its next runs; with pitr, the WAL stream and its window. */
import type { Command } from 'commander';
import { colors, globalOptions, loadDesired, print, printJson } from './common.js';

export function define(program: Command): void {
  program
    .command('schedule')
    .description('List the backup schedules: last backup, due or not (since when), next runs')
    .option('--next <n>', 'how many next runs to list per schedule', '1')
    .action(async (opts: { next: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError } = await import('../errors.js');
      const n = Number(opts.next);
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new JarvisError('USAGE', `--next must be a whole number from 1 to 1000 (got "${opts.next}")`);
      const desired = await loadDesired(g);
      const { scanStorage } = await import('../backup/catalog.js');
      const { openRepositories } = await import('../storage/repositories.js');
      const { scheduleStatuses } = await import('../schedule/due.js');
      const now = new Date();
      // Valid backups: published, and not failed at their last verification.
      const repositories = openRepositories(desired);
      const scan = await scanStorage(repositories);
      const valid = scan.valid
        .filter((e) => e.manifest.verification?.ok !== false)
        .map((e) => ({ service: e.manifest.service, schedule: e.manifest.schedule, startedAt: e.manifest.startedAt }));
      const statuses = scheduleStatuses(desired.backups, valid, now, n);
      // The WAL stream runs continuously (the daemon's, with pitr enabled): its line and the recoverable window.
      const pitr = desired.services.postgres?.pitr;
      const wal = pitr?.enabled
        ? { slot: pitr.slot, repositories: await (await import('../wal/status.js')).windowsOf(repositories.filter((r) => !scan.unreachable.some((u) => u.repository === r.name)), scan.valid) }
        : null;
      if (g.json) printJson({ now: now.toISOString(), schedules: statuses, ...(wal ? { wal } : {}) });
      else {
        const { renderScheduleText } = await import('../render/schedule.js');
        print(renderScheduleText(statuses, now, colors(g), wal));
      }
    });
}
