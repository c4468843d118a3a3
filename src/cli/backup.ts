/**
 * `jarvis-db backup create|list|verify|prune`. Flags → src/backup/commands (create, prune: plans run by
 * the engine's apply) or src/backup/operations (list, verify) → output.
 * Heavy modules (pg, the drivers) are imported inside the actions.
 */
import type { Command } from 'commander';
import { formatAge, formatBytes, formatCount, formatDuration, plural, renderTable } from '../render/format.js';
import { durationFlag, exitWith, globalOptions, loadDesired, lockWait, note, print, printJson } from './common.js';

const SERVICES = ['postgres', 'redis', 'chroma'] as const;

export function define(program: Command): void {
  const backup = program.command('backup').description('Create, list, verify and prune backups');

  backup
    .command('create')
    .description('Create backups now (all services in parallel with --service all)')
    .requiredOption('--service <service>', 'postgres | redis | chroma | all')
    .option('--schedule <name>', 'only this schedule (default: every schedule of the service)')
    .option('--lock-timeout <duration>', 'how long to wait for an apply on the same storage to finish', '60s')
    .option('--stop-timeout <duration>', 'on SIGTERM or SIGINT, how long the running backups have to stop and remove what they staged (exit 0), before jarvis-db exits anyway (exit 1)', '30s')
    .action(async (opts: { service: string; schedule?: string; lockTimeout: string; stopTimeout: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError } = await import('../errors.js');
      if (opts.service !== 'all' && !(SERVICES as readonly string[]).includes(opts.service)) {
        throw new JarvisError('USAGE', `--service must be postgres, redis, chroma or all (got "${opts.service}")`);
      }
      // What the command runs loads while the config is read and checked (~100 ms of modules otherwise after it).
      const modules = Promise.all([
        import('../backup/operations.js'), import('../render/progress.js'), import('./failure.js'), import('../backup/commands.js'), import('../backup/point-plan.js'),
        import('../engine/index.js'), import('../engine/registry.js'), import('../backup/handlers.js'),
      ]);
      modules.catch(() => undefined);
      const desired = await loadDesired(g);
      const [ops, { progressMaker }, { describeFailure }, { createBackupsCommand }, { implicitPoint }] = await modules;
      let schedules = desired.backups.filter((s) => opts.service === 'all' || s.service === opts.service);
      if (opts.schedule) {
        const s = ops.scheduleByName(desired, opts.schedule);
        if (opts.service !== 'all' && s.service !== opts.service) throw new JarvisError('USAGE', `schedule ${s.name} backs up ${s.service}, not ${opts.service}`);
        schedules = [s];
      }
      if (schedules.length === 0) throw new JarvisError('USAGE', `no backup schedule for ${opts.service} in ${desired.configFile}`, { hint: 'add one under `backups:`' });
      const progressFor = await progressMaker(g.json);
      const results: Record<string, unknown>[] = [];
      const copies: Record<string, unknown>[] = [];
      const failures: string[] = [];
      const stopped: string[] = [];
      const stop = await stopOnSignal(await durationFlag('--stop-timeout', opts.stopTimeout), opts.stopTimeout);
      const points: Record<string, unknown>[] = [];
      // --service all records a recovery point of each service: all schedule (or of the first schedule of each service).
      const pointSchedules = opts.service === 'all' && !opts.schedule ? (desired.points?.length ? desired.points : [implicitPoint(desired)]) : [];
      await createBackupsCommand(desired, schedules, {
        points: pointSchedules,
        pointed: (outcome) => {
          if (!outcome.ok) {
            failures.push(`recovery point ${outcome.schedule} not recorded: ${describeFailure(outcome.error, g.debug).replace(/^error: /, '')}`);
            return;
          }
          points.push({ id: outcome.id, schedule: outcome.schedule, members: outcome.members, repositories: outcome.repositories, ...(outcome.pitr ? { pitr: outcome.pitr } : {}) });
          if (!g.json) print(`+ recovery point ${outcome.id}: ${outcome.members.map((m) => `${m.service} ${m.id}`).join(', ')}${outcome.pitr ? ` (WAL ${outcome.pitr.lsn})` : ''}`);
        },
        env: process.env, ...(await lockWait(desired, opts.lockTimeout)), signal: stop.signal,
        progressFor: (schedule) => progressFor(`${schedule.service}/${schedule.name}`),
        finished: (outcome) => {
          const { schedule } = outcome;
          if (!outcome.ok) {
            const line = `${schedule.service}/${schedule.name}: ${describeFailure(outcome.error, g.debug).replace(/^error: /, '')}`;
            if (outcome.error instanceof JarvisError && outcome.error.code === 'INTERRUPTED') stopped.push(line);
            else failures.push(line);
            return;
          }
          const m = outcome;
          results.push({ id: m.id, service: schedule.service, schedule: schedule.name, totalBytes: m.totalBytes, files: m.files, durationMs: m.durationMs, encrypted: m.encrypted, dir: m.dir });
          if (!g.json) print(`+ ${schedule.service}/${schedule.name} ${m.id}: ${formatBytes(m.totalBytes)} in ${plural(m.files, 'file')}, ${formatDuration(m.wallMs)}${m.encrypted ? ', encrypted' : ''}`);
        },
        copied: (outcome) => {
          const { schedule } = outcome;
          if (!outcome.ok) {
            failures.push(`${schedule.service}/${schedule.name}: copy to ${outcome.to}: ${describeFailure(outcome.error, g.debug).replace(/^error: /, '')}`);
            return;
          }
          copies.push({ id: outcome.id, schedule: schedule.name, repository: outcome.to, dir: outcome.dir });
          if (!g.json) print(`+ ${schedule.service}/${schedule.name} ${outcome.id}: copied to ${outcome.to}`);
        },
      }).finally(() => stop.dispose());
      if (g.json) printJson({ backups: results, ...(copies.length ? { copies } : {}), ...(pointSchedules.length ? { points } : {}), failures, ...(stopped.length ? { stopped } : {}) });
      else for (const s of stopped) print(`- stopped ${s}`);
      if (failures.length) {
        if (failures.length === 1 && results.length === 0 && !g.json) throw new JarvisError('BACKUP_FAILED', failures[0]!);
        for (const f of failures) note(`error: ${f}`);
        exitWith(1);
      }
    });

  backup
    .command('list')
    .description('List the backups in every repository (id, schedule, age, size, verified, where)')
    .option('--repository <name>', 'only the backups in this repository')
    .action(async (opts: { repository?: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { scanStorage, verificationLabel } = await import('../backup/catalog.js');
      const { findDebris } = await import('../backup/storage.js');
      const { repositoriesFor } = await import('../backup/operations.js');
      const { JarvisError } = await import('../errors.js');
      const repositories = repositoriesFor(desired, opts.repository);
      const scan = await scanStorage(repositories);
      if (scan.unreachable.length === repositories.length) {
        const u = scan.unreachable[0]!;
        if (repositories.length === 1 && u.cause instanceof JarvisError) throw u.cause;
        throw new JarvisError('STORAGE_FAILED', scan.unreachable.map((x) => `repository ${x.repository} (${x.location}) cannot be read: ${x.message}`).join('; '));
      }
      const debris = await findDebris(repositories.filter((r) => !scan.unreachable.some((u) => u.repository === r.name)));
      const now = Date.now();
      const several = desired.repositories !== undefined;
      // One line per backup; its copies in repository order (the scan lists the first repository's first).
      const backups = new Map<string, { entry: (typeof scan.valid)[number]; copies: { repository: string; dir: string }[] }>();
      for (const entry of scan.valid) {
        const seen = backups.get(entry.manifest.id);
        if (seen) seen.copies.push({ repository: entry.repository, dir: entry.dir });
        else backups.set(entry.manifest.id, { entry, copies: [{ repository: entry.repository, dir: entry.dir }] });
      }
      const order = new Map(repositories.map((r, i) => [r.name, i]));
      for (const b of backups.values()) b.copies.sort((x, y) => order.get(x.repository)! - order.get(y.repository)!);
      // With point-in-time recovery, the window of each repository read (its WAL listed once).
      const pitr = desired.services.postgres?.pitr?.enabled
        ? await (await import('../wal/status.js')).windowsOf(repositories.filter((r) => !scan.unreachable.some((u) => u.repository === r.name)), scan.valid)
        : null;
      const { listedPoints, scanPoints } = await import('../backup/point-store.js');
      const points = listedPoints(await scanPoints(repositories.filter((r) => !scan.unreachable.some((u) => u.repository === r.name))), scan.valid, scan.invalid, several);
      if (g.json) {
        printJson({
          points: points.map((p) => ({ ...p, broken: p.broken.length ? p.broken : null })),
          backups: [...backups.values()].map(({ entry: { manifest: m }, copies }) => ({
            id: m.id, service: m.service, schedule: m.schedule, startedAt: m.startedAt, finishedAt: m.finishedAt, durationMs: m.durationMs,
            totalBytes: m.totalBytes, files: m.files.length, encrypted: m.encrypted, format: m.format ?? null,
            verified: m.verification ? m.verification.ok : null, verification: m.verification, dir: copies[0]!.dir,
            repositories: copies.map((c) => c.repository), copies,
          })),
          invalid: scan.invalid,
          debris,
          unreachable: scan.unreachable.map(({ repository, location, message }) => ({ repository, location, message })),
          ...(pitr ? { pitr } : {}),
        });
        if (scan.unreachable.length) exitWith(1);
        return;
      }
      if (backups.size === 0) print(`No backups in ${several ? repositories.map((r) => `${r.name} (${r.location})`).join(', ') : repositories[0]!.location}.`);
      else {
        const rows = [['ID', 'SERVICE', 'SCHEDULE', 'AGE', 'SIZE', 'VERIFIED', ...(several ? ['REPOSITORY'] : [])]];
        for (const { entry: { manifest: m }, copies } of backups.values()) {
          rows.push([m.id, m.service, m.schedule, formatAge(now - Date.parse(m.finishedAt)), formatBytes(m.totalBytes),
            verificationLabel(m.verification, now), ...(several ? [copies.map((c) => c.repository).join(', ')] : [])]);
        }
        print(renderTable(rows, { align: [, , , 'right', 'right'] }));
      }
      if (points.length) {
        const rows = [['POINT', 'SCHEDULE', 'AGE', 'MEMBERS', 'STATUS', ...(several ? ['REPOSITORY'] : [])]];
        for (const p of points) {
          rows.push([p.id, p.schedule, p.startedAt ? formatAge(now - Date.parse(p.startedAt)) : '?', p.members.map((m) => `${m.service} ${m.id}`).join(', ') || '?',
            p.broken.length ? 'BROKEN' : p.pitr ? `ok (WAL ${p.pitr.lsn})` : 'ok', ...(several ? [p.repositories.join(', ')] : [])]);
        }
        print('');
        print(renderTable(rows, { align: [, , 'right'] }));
        for (const p of points) for (const problem of p.broken) note(`! recovery point ${p.id} is broken: ${problem}`);
      }
      if (pitr) {
        const { pitrWindowLines } = await import('../render/pitr.js');
        print(pitrWindowLines(pitr).join('\n'));
      }
      for (const b of scan.invalid) note(`! ${b.service}/${b.schedule}/${b.id} is damaged${several ? ` in ${b.repository}` : ''}: ${b.problem}`);
      if (debris.length) note(`! ${plural(debris.length, 'leftover')} of killed runs (removed by the next backup or prune)`);
      for (const u of scan.unreachable) note(`error: repository ${u.repository} (${u.location}) cannot be read: ${u.message}`);
      if (scan.unreachable.length) exitWith(1);
    });

  backup
    .command('verify [id]')
    .description('Verify checksums of a backup (or --all); a physical base backup: also the archived WAL from its start; --restore-test restores into a scratch database')
    .option('--all', 'every backup')
    .option('--restore-test', 'also restore into a scratch database and compare row counts')
    .option('--repository <name>', 'the copy in this repository (default: the first that has one; with --all, every copy in every repository)')
    .action(async (id: string | undefined, opts: { all?: boolean; restoreTest?: boolean; repository?: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError, messageOf } = await import('../errors.js');
      if (!id && !opts.all) throw new JarvisError('USAGE', 'give a backup ID or --all');
      if (id && opts.all) throw new JarvisError('USAGE', 'give a backup ID or --all, not both');
      const desired = await loadDesired(g);
      const catalog = await import('../backup/catalog.js');
      const ops = await import('../backup/operations.js');
      const repositories = ops.repositoriesFor(desired, opts.repository);
      const several = desired.repositories !== undefined;
      const entries = opts.all ? await catalog.listBackups(repositories) : [await catalog.findBackup(repositories, id!)];
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
        results.push({ id: entry.manifest.id, service: entry.manifest.service, schedule: entry.manifest.schedule, repository: entry.repository, ok: r.ok, how: r.how, message: r.message, badFiles: r.badFiles });
        if (!r.ok) failed++;
        if (!g.json) print(`${r.ok ? 'ok' : 'FAILED'} ${entry.manifest.service}/${entry.manifest.schedule} ${entry.manifest.id}${several ? ` in ${entry.repository}` : ''}: ${r.message}`);
      }
      if (opts.all) {
        const { scanStorage } = catalog;
        for (const b of (await scanStorage(repositories)).invalid) {
          failed++;
          results.push({ id: b.id, service: b.service, schedule: b.schedule, repository: b.repository, ok: false, how: 'checksum', message: b.problem, badFiles: ['manifest.json'] });
          if (!g.json) print(`FAILED ${b.service}/${b.schedule} ${b.id}${several ? ` in ${b.repository}` : ''}: ${b.problem}`);
        }
      }
      // The archived WAL: a physical base backup's, in the repository of the copy verified
      // (wal/verify.ts); with --all, the whole archive of each repository.
      const { verifyWalArchive } = await import('../wal/archive.js');
      const { verifyWalOfBase, walChecked, walProblems, WAL_FAILED_HINT } = await import('../wal/verify.js');
      const wal: NonNullable<Awaited<ReturnType<typeof verifyWalOfBase>>>[] = [];
      const walTargets = opts.all ? repositories : [repositories.find((r) => r.name === entries[0]!.repository)!];
      for (const repository of walTargets) {
        const progress = progressFor(`verify WAL in ${repository.name}`);
        const onFile = (name: string, done: number, total: number) => { progress.update(done, total); progress.note(`checked ${name}`); };
        const r = await (opts.all
          ? verifyWalArchive(desired, repository, { onFile }).then((x) => (x.files ? x : null))
          : verifyWalOfBase(desired, entries[0]!.manifest, repository, { onFile })).finally(() => progress.stop());
        // No WAL archived there (no point-in-time recovery), or not a base backup: nothing to say.
        if (!r) continue;
        wal.push(r);
        if (g.json) continue;
        if (r.ok) print(`ok WAL in ${r.repository}: ${walChecked(r)}: checksums match`);
        for (const problem of walProblems(r)) print(`FAILED WAL in ${r.repository}: ${problem}`);
      }
      const walFailed = wal.filter((r) => !r.ok);
      if (g.json) printJson({ results, ...(wal.length ? { wal } : {}) });
      if (failed) {
        if (!opts.all && !g.json) throw new JarvisError('VERIFY_FAILED', `backup ${entries[0]!.manifest.id} failed verification: ${String(results[0]!.message)}`);
        exitWith(1);
      }
      if (walFailed.length) {
        if (!opts.all && !g.json) throw new JarvisError('VERIFY_FAILED', `the archived WAL of backup ${entries[0]!.manifest.id} failed verification: ${walProblems(walFailed[0]!)[0]}`, { hint: WAL_FAILED_HINT });
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
      const { pruned, kept, wal, points } = await pruneBackupsCommand(desired, { dryRun: Boolean(opts.dryRun), env: process.env, ...(await lockWait(desired, opts.lockTimeout)) });
      if (g.json) {
        printJson({
          dryRun: Boolean(opts.dryRun),
          pruned: pruned.map((c) => ({ id: c.id, schedule: c.schedule, startedAt: c.startedAt, totalBytes: c.totalBytes, ...(c.repository ? { repository: c.repository } : {}) })),
          kept: kept.map((c) => ({ id: c.id, schedule: c.schedule, reasons: c.reasons, ...(c.repository ? { repository: c.repository } : {}) })),
          wal,
          points,
        });
        return;
      }
      const inRepository = (c: { repository?: string }) => (c.repository ? ` in ${c.repository}` : '');
      for (const c of kept) print(`  keep ${c.schedule} ${c.id}${inRepository(c)} (${c.reasons.join(', ')})`);
      for (const c of pruned) print(`${opts.dryRun ? '- would delete' : '- deleted'} ${c.schedule} ${c.id}${inRepository(c)} (${formatBytes(c.totalBytes)}; outside keep rules)`);
      for (const p of points) print(`${opts.dryRun ? '- would delete' : '- deleted'} recovery point ${p.id}${inRepository(p)} (its PostgreSQL backup is outside keep rules)`);
      for (const w of wal) {
        print(opts.dryRun || w.deleted === undefined
          ? `- would delete ${plural(w.files, 'WAL file')} before ${w.before} in ${w.repository} (${formatBytes(w.bytes)} uncompressed; needed by no kept base backup)`
          : `- deleted ${plural(w.deleted, 'WAL file')} before ${w.before} in ${w.repository} (${formatBytes(w.storedBytes ?? 0)} stored)${w.held ? `; ${w.held}` : ''}`);
      }
      print(`${plural(pruned.length, 'backup')} ${opts.dryRun ? 'would be pruned' : 'pruned'}, ${formatCount(kept.length)} kept.`);
    });

  backup
    .command('delete <id>')
    .description('Delete one backup (every copy, or the one in --repository); the last valid backup of a schedule only with --force')
    .option('--repository <name>', 'delete the copy in this repository only')
    .option('--force', 'also when it is the last valid backup of its schedule')
    .option('--lock-timeout <duration>', 'how long to wait for an apply on the same storage to finish', '60s')
    .action(async (id: string, opts: { repository?: string; force?: boolean; lockTimeout: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { deleteBackupCommand } = await import('../backup/commands.js');
      const { deleted } = await deleteBackupCommand(desired, id, { repository: opts.repository, force: Boolean(opts.force), env: process.env, ...(await lockWait(desired, opts.lockTimeout)) });
      if (g.json) return printJson({ deleted });
      const several = desired.repositories !== undefined;
      for (const d of deleted) print(`- deleted ${d.id}${several ? ` from ${d.repository}` : ''} (${formatBytes(d.totalBytes)})`);
    });
}

/**
 * SIGTERM or SIGINT while backups run: abort them (each kills its tool, removes what it staged and
 * ends INTERRUPTED; the command then exits 0). If they have not stopped within `timeoutMs`, or at a
 * second signal, exit at once (1, or 130): what they staged is then removed by the next run.
 */
async function stopOnSignal(timeoutMs: number, shown: string): Promise<{ signal: AbortSignal; dispose(): void }> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      note(`${sig} again: exiting now; what the backups staged is removed by the next run`);
      process.exit(130);
    }
    note(`${sig}: stopping the backups (up to ${shown}); nothing half-written is published`);
    controller.abort(sig);
    timer = setTimeout(() => {
      note(`the backups did not stop within ${shown}: exiting; what they staged is removed by the next run`);
      process.exit(1);
    }, timeoutMs);
    timer.unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      if (timer) clearTimeout(timer);
    },
  };
}

