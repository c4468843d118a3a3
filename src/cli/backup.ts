/**
 * `jarvis-db backup create|list|verify|prune`. Flags → src/backup/commands (create, prune: plans run by
 * the engine's apply) or src/backup/operations (list, verify) → output.
 * Heavy modules (pg, the drivers) are imported inside the actions.
 */
import type { Command } from 'commander';
import { formatAge, formatBytes, formatCount, formatDuration, plural, renderTable } from '../render/format.js';
import { exitWith, globalOptions, loadDesired, lockWait, note, print, printJson } from './common.js';

const SERVICES = ['postgres', 'redis', 'chroma'] as const;

export function define(program: Command): void {
  const backup = program.command('backup').description('Create, list, verify and prune backups');

  backup
    .command('create')
    .description('Create backups now (all services in parallel with --service all)')
    .requiredOption('--service <service>', 'postgres | redis | chroma | all')
    .option('--schedule <name>', 'only this schedule (default: every schedule of the service)')
    .option('--lock-timeout <duration>', 'how long to wait for an apply on the same storage to finish', '60s')
    .action(async (opts: { service: string; schedule?: string; lockTimeout: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError } = await import('../errors.js');
      if (opts.service !== 'all' && !(SERVICES as readonly string[]).includes(opts.service)) {
        throw new JarvisError('USAGE', `--service must be postgres, redis, chroma or all (got "${opts.service}")`);
      }
      const desired = await loadDesired(g);
      const ops = await import('../backup/operations.js');
      let schedules = desired.backups.filter((s) => opts.service === 'all' || s.service === opts.service);
      if (opts.schedule) {
        const s = ops.scheduleByName(desired, opts.schedule);
        if (opts.service !== 'all' && s.service !== opts.service) throw new JarvisError('USAGE', `schedule ${s.name} backs up ${s.service}, not ${opts.service}`);
        schedules = [s];
      }
      if (schedules.length === 0) throw new JarvisError('USAGE', `no backup schedule for ${opts.service} in ${desired.configFile}`, { hint: 'add one under `backups:`' });
      const { progressMaker } = await import('../render/progress.js');
      const progressFor = await progressMaker(g.json);
      const { describeFailure } = await import('./failure.js');
      const { createBackupsCommand } = await import('../backup/commands.js');
      const results: Record<string, unknown>[] = [];
      const failures: string[] = [];
      await createBackupsCommand(desired, schedules, {
        env: process.env, ...(await lockWait(desired, opts.lockTimeout)),
        progressFor: (schedule) => progressFor(`${schedule.service}/${schedule.name}`),
        finished: (outcome) => {
          const { schedule } = outcome;
          if (!outcome.ok) {
            failures.push(`${schedule.service}/${schedule.name}: ${describeFailure(outcome.error, g.debug).replace(/^error: /, '')}`);
            return;
          }
          const m = outcome;
          results.push({ id: m.id, service: schedule.service, schedule: schedule.name, totalBytes: m.totalBytes, files: m.files, durationMs: m.durationMs, encrypted: m.encrypted, dir: m.dir });
          if (!g.json) print(`+ ${schedule.service}/${schedule.name} ${m.id}: ${formatBytes(m.totalBytes)} in ${plural(m.files, 'file')}, ${formatDuration(m.wallMs)}${m.encrypted ? ', encrypted' : ''}`);
        },
      });
      if (g.json) printJson({ backups: results, failures });
      if (failures.length) {
        if (failures.length === 1 && results.length === 0 && !g.json) throw new JarvisError('BACKUP_FAILED', failures[0]!);
        for (const f of failures) note(`error: ${f}`);
        exitWith(1);
      }
    });

  backup
    .command('list')
    .description('List the backups in storage (id, schedule, age, size, verified)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { scanStorage, verificationLabel } = await import('../backup/catalog.js');
      const { findDebris } = await import('../backup/storage.js');
      const scan = await scanStorage(desired.storage.path);
      const debris = await findDebris(desired.storage.path);
      const now = Date.now();
      if (g.json) {
        printJson({
          backups: scan.valid.map(({ manifest: m, dir }) => ({
            id: m.id, service: m.service, schedule: m.schedule, startedAt: m.startedAt, finishedAt: m.finishedAt, durationMs: m.durationMs,
            totalBytes: m.totalBytes, files: m.files.length, encrypted: m.encrypted, format: m.format ?? null,
            verified: m.verification ? m.verification.ok : null, verification: m.verification, dir,
          })),
          invalid: scan.invalid,
          debris,
        });
        return;
      }
      if (scan.valid.length === 0) print(`No backups in ${desired.storage.path}.`);
      else {
        const rows = [['ID', 'SERVICE', 'SCHEDULE', 'AGE', 'SIZE', 'VERIFIED']];
        for (const { manifest: m } of scan.valid) {
          rows.push([m.id, m.service, m.schedule, formatAge(now - Date.parse(m.finishedAt)), formatBytes(m.totalBytes),
            verificationLabel(m.verification, now)]);
        }
        print(renderTable(rows, { align: [, , , 'right', 'right'] }));
      }
      for (const b of scan.invalid) note(`! ${b.service}/${b.schedule}/${b.id} is damaged: ${b.problem}`);
      if (debris.length) note(`! ${plural(debris.length, 'leftover')} of killed runs (removed by the next backup or prune)`);
    });

  backup
    .command('verify [id]')
    .description('Verify checksums of a backup (or --all); --restore-test restores into a scratch database')
    .option('--all', 'every backup')
    .option('--restore-test', 'also restore into a scratch database and compare row counts')
    .action(async (id: string | undefined, opts: { all?: boolean; restoreTest?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError, messageOf } = await import('../errors.js');
      if (!id && !opts.all) throw new JarvisError('USAGE', 'give a backup ID or --all');
      if (id && opts.all) throw new JarvisError('USAGE', 'give a backup ID or --all, not both');
      const desired = await loadDesired(g);
      const catalog = await import('../backup/catalog.js');
      const ops = await import('../backup/operations.js');
      const entries = opts.all ? await catalog.listBackups(desired.storage.path) : [await catalog.findBackup(desired.storage.path, id!)];
      const results: Record<string, unknown>[] = [];
      const { progressMaker } = await import('../render/progress.js');
      const progressFor = await progressMaker(g.json);
      let failed = 0;
      for (const entry of entries) {
        const progress = progressFor(`verify ${entry.manifest.id}`);
        const verifying = ops.verifyBackup(desired, entry, { restoreTest: Boolean(opts.restoreTest), env: process.env, progress }).finally(() => progress.stop());
        // With --all, one backup that cannot be checked (no key for it, say) fails alone: the others are still verified.
        const r = opts.all
          ? await verifying.catch((e: unknown) => ({ ok: false, how: 'checksum' as const, message: `cannot verify: ${messageOf(e)}`, badFiles: [] as string[] }))
          : await verifying;
        results.push({ id: entry.manifest.id, service: entry.manifest.service, schedule: entry.manifest.schedule, ok: r.ok, how: r.how, message: r.message, badFiles: r.badFiles });
        if (!r.ok) failed++;
        if (!g.json) print(`${r.ok ? 'ok' : 'FAILED'} ${entry.manifest.service}/${entry.manifest.schedule} ${entry.manifest.id}: ${r.message}`);
      }
      if (opts.all) {
        const { scanStorage } = catalog;
        for (const b of (await scanStorage(desired.storage.path)).invalid) {
          failed++;
          results.push({ id: b.id, service: b.service, schedule: b.schedule, ok: false, how: 'checksum', message: b.problem, badFiles: ['manifest.json'] });
          if (!g.json) print(`FAILED ${b.service}/${b.schedule} ${b.id}: ${b.problem}`);
        }
      }
      if (g.json) printJson({ results });
      if (failed) {
        if (!opts.all && !g.json) throw new JarvisError('VERIFY_FAILED', `backup ${entries[0]!.manifest.id} failed verification: ${String(results[0]!.message)}`);
        exitWith(1);
      }
    });

  backup
    .command('prune')
    .description('Delete the backups that the keep rules do not keep')
    .option('--dry-run', 'show what would be deleted')
    .option('--lock-timeout <duration>', 'how long to wait for an apply on the same storage to finish', '60s')
    .action(async (opts: { dryRun?: boolean; lockTimeout: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { pruneBackupsCommand } = await import('../backup/commands.js');
      const { pruned, kept } = await pruneBackupsCommand(desired, { dryRun: Boolean(opts.dryRun), env: process.env, ...(await lockWait(desired, opts.lockTimeout)) });
      if (g.json) {
        printJson({
          dryRun: Boolean(opts.dryRun),
          pruned: pruned.map((c) => ({ id: c.id, schedule: c.schedule, startedAt: c.startedAt, totalBytes: c.totalBytes })),
          kept: kept.map((c) => ({ id: c.id, schedule: c.schedule, reasons: c.reasons })),
        });
        return;
      }
      for (const c of kept) print(`  keep ${c.schedule} ${c.id} (${c.reasons.join(', ')})`);
      for (const c of pruned) print(`${opts.dryRun ? '- would delete' : '- deleted'} ${c.schedule} ${c.id} (${formatBytes(c.totalBytes)}; outside keep rules)`);
      print(`${plural(pruned.length, 'backup')} ${opts.dryRun ? 'would be pruned' : 'pruned'}, ${formatCount(kept.length)} kept.`);
    });
}
