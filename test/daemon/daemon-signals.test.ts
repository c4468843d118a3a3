/**
 * The daemon's signals as a real process (compiled CLI: build first) against a sandbox
 * PostgreSQL and the real engine: SIGHUP in the middle of a backup reloads the config (a valid
 * one from the next tick, an invalid one logged and the old kept) without stopping the backup or
 * the daemon, and a second SIGTERM mid-backup exits at once without leaving the staged `.tmp-…`
 * work dir. The signals go from the log reader: the SIGHUP the moment a backup starts, on a
 * database big enough that the backup is still running; the SIGTERMs when the backup holds at
 * its test pause point with pg_dump writing into the work dir.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { withSandbox } from '../helpers/sandbox.js';
import { startDaemon, type LogLine } from '../helpers/daemon-process.js';
import { freePort } from '../../src/sandbox/index.js';
import { scanStorage } from '../../src/backup/catalog.js';

/** The config, with `health.interval` on line 7 (the invalid variant's problem is reported there). */
const configText = (cron: string, interval: string) => [
  'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./backups }',
  'backups:', `  - { name: nightly, service: postgres, cron: "${cron}", keep: { last: 5 } }`,
  // Free disk is always under twice the disk: every check is CRITICAL, which /healthz must say.
  `health: { interval: ${interval}, thresholds: { system.disk_free_ratio: { critical: "< 2" } } }`, '',
].join('\n');

/** Every `.tmp-…` name anywhere under `dir`. */
async function stagedNames(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.name.startsWith('.tmp-')) found.push(join(e.parentPath, e.name));
  return found;
}

t.test('daemon signals against a real PostgreSQL', async (t) => {
  const state = await withSandbox(t, ['postgres']);
  // Enough data that a backup takes a second or more, so that the signals below land while it runs.
  const db = new pg.Client({ connectionString: state.postgres!.url });
  await db.connect();
  await db.query(`CREATE TABLE filler AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body FROM generate_series(1, 600000) g`);
  await db.end();

  t.test('SIGHUP mid-backup: the backup completes, a valid config is in force from the next tick, an invalid one is logged and the old kept', async (t) => {
    const dir = t.testdir();
    const config = join(dir, 'jarvis-db.yaml');
    // A yearly schedule and an hourly check at start; the reload brings a 5-minute schedule and a 1 s check.
    writeFileSync(config, configText('0 0 1 1 *', '1h'));
    const port = await freePort();
    let hangupSent = false;
    const d = startDaemon(t, {
      config, port, state,
      onLine: (line, signal) => {
        if (!hangupSent && line.event === 'action_started') {
          hangupSent = true;
          writeFileSync(config, configText('*/5 * * * *', '1s'));
          signal('SIGHUP');
        }
      },
    });
    await d.until('the start-up apply', () => d.lines.some((l) => l.event === 'apply_finished'), 120_000);
    const events = d.lines.map((l) => l.event);
    const reloadAt = events.indexOf('config_reloaded');
    t.ok(events.indexOf('action_started') < reloadAt && reloadAt < events.indexOf('action_finished'), `the reload came while the backup ran (${events.join(' ')})`);
    t.match(d.lines[reloadAt], {
      level: 'info', applying: true, healthIntervalSeconds: 1, configHash: /^[0-9a-f]{64}$/, previousHash: /^[0-9a-f]{64}$/,
      changed: ['health.interval: 3600s → 1s', 'backups.nightly: 0 0 1 1 * UTC → */5 * * * * UTC'],
    });
    t.match(d.lines.find((l) => l.event === 'apply_finished'), { status: 'succeeded', actions: [{ action: 'backup.create.nightly', status: 'done' }] });
    t.equal((await scanStorage(join(dir, 'backups'))).valid.length, 1, 'the backup was published');

    // The next tick: the health loop at 1 s, the wake at the 5-minute schedule (not next January).
    const intervalChecksAfter = (from: number) => d.lines.slice(from).filter((l) => l.event === 'health_checked' && l.trigger === 'interval').length;
    await d.until('health checks at the new interval', () => intervalChecksAfter(reloadAt) >= 3, 30_000);
    const families = new Map(parsePrometheusTextFormat(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).map((f) => [f.name, f]));
    const nextRun = Number(families.get('jarvis_db_daemon_next_run_timestamp_seconds')?.metrics[0]?.value) * 1000;
    t.ok(nextRun - Date.now() <= 5 * 60_000 && nextRun > Date.now() - 1000, `the next apply is the new schedule's (${new Date(nextRun).toISOString()})`);

    const live = await fetch(`http://127.0.0.1:${port}/healthz`);
    t.equal(live.status, 200, '/healthz is the daemon\'s liveness');
    const body = await live.json() as { ok: boolean; configHash: string; health: { status: string; checkedAt: string } };
    t.match(body, { ok: true, configHash: d.lines[reloadAt]!.configHash, health: { status: 'CRITICAL', checkedAt: /^\d{4}-\d{2}-\d{2}T/ } });

    // An invalid config: logged with file:line and the problem; the config in force stays.
    writeFileSync(config, configText('*/5 * * * *', 'soon'));
    d.signal('SIGHUP');
    await d.until('the failed reload', () => d.lines.some((l) => l.event === 'config_reload_failed'), 30_000);
    const failedAt = d.lines.findIndex((l) => l.event === 'config_reload_failed');
    const failed = d.lines[failedAt] as LogLine & { problems: string[]; msg: string };
    t.match(failed, { level: 'error', code: 'CONFIG_INVALID', kept: body.configHash, problems: [/jarvis-db\.yaml:7:\d+: health\.interval: "soon" is not a positive duration/] });
    t.match(failed.msg, /jarvis-db\.yaml:7:\d+: health\.interval/);
    await d.until('health checks at the kept 1 s interval', () => intervalChecksAfter(failedAt) >= 2, 30_000);
    const after = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json() as { ok: boolean; configHash: string };
    t.match(after, { ok: true, configHash: body.configHash }, 'the daemon runs on the config it had');
    t.equal(d.lines.filter((l) => l.event === 'config_reloaded').length, 1);

    d.signal('SIGTERM');
    t.same(await d.exited, { code: 0, signal: null }, `a clean stop (stderr: ${d.stderr()})`);
  });

  t.test('a second SIGTERM mid-backup exits at once and leaves no staged .tmp- directory', async (t) => {
    const dir = t.testdir();
    const config = join(dir, 'jarvis-db.yaml');
    writeFileSync(config, configText('0 0 1 1 *', '1h'));
    const d = startDaemon(t, {
      // The backup stops (for good) once pg_dump runs into its work dir: a backup that does not end.
      config, port: await freePort(), state, env: { JARVIS_DB_TEST_PAUSE_AT: 'dump-running' },
      // SIGTERM there; again once the daemon says it is stopping (two signals sent back to back
      // could merge into one before the process sees them).
      onStderrLine: (line, signal) => { if (line === 'jarvis-db: test pause at dump-running') signal('SIGTERM'); },
      onLine: (line, signal) => { if (line.event === 'daemon_stopping') signal('SIGTERM'); },
    });
    const exit = await d.exited;
    t.same(exit, { code: 1, signal: null }, `the forced exit (stderr: ${d.stderr()})`);
    const events = d.lines.map((l) => l.event);
    t.ok(events.includes('action_started') && events.includes('daemon_stopping'), events.join(' '));
    t.notOk(events.includes('action_finished'), 'it did not wait for the backup');
    const forced = d.lines.find((l) => l.event === 'daemon_forced') as LogLine & { removed: string[] };
    t.match(forced, { level: 'warn', signal: 'SIGTERM', failed: [] });
    t.match(forced.removed, [/[/]postgres[/]nightly[/]\.tmp-\d{8}T\d{6}Z-[0-9a-f]{4}-\d+$/], 'it removed the backup\'s work dir');
    t.same(await stagedNames(join(dir, 'backups')), [], 'no .tmp- directory left');
    t.equal((await scanStorage(join(dir, 'backups'))).valid.length, 0);
  });
});
