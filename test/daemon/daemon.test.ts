/**
 * The daemon's own logic, in process: when it wakes, one apply at a time, /metrics and /healthz,
 * a clean stop, redacted JSON logs. The health check is the real one (machine and backups
 * probes: no server needed); the apply is passed in, as the engine's is. The daemon against real
 * servers and the real engine is in daemon-cli.test.ts.
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { loadConfig } from '../../src/config/load.js';
import type { BackupSchedule, Desired, HealthSettings } from '../../src/config/types.js';
import { Daemon, type ApplySummary, type RunApply } from '../../src/daemon/daemon.js';
import { daemonLogger } from '../../src/daemon/logger.js';
import { nextWake } from '../../src/daemon/wake.js';
import { runHealthCheck } from '../../src/health/check.js';
import { desiredFor } from '../health/fixture.js';

const schedule = (name: string, cron: string, timezone = 'UTC'): BackupSchedule =>
  ({ name, service: 'postgres', cron, timezone, keep: { last: 1 }, verify: 'checksum', path: 'backups[0]' });

t.test('the daemon wakes at the earliest next fire time of any schedule, in its timezone', async (t) => {
  const after = new Date('2026-11-24T10:07:30Z');
  t.same(nextWake([schedule('a', '0 3 * * *'), schedule('b', '*/15 * * * *')], after), { at: new Date('2026-11-24T10:15:00Z'), schedules: ['b'] });
  t.same(nextWake([schedule('a', '15 * * * *'), schedule('b', '*/15 * * * *')], after)!.schedules, ['a', 'b']);
  t.same(nextWake([schedule('tokyo', '0 20 * * *', 'Asia/Tokyo')], after)!.at, new Date('2026-11-24T11:00:00Z'));
  t.equal(nextWake([], after), null);
});

function logSink() {
  const lines: Record<string, unknown>[] = [];
  return { lines, write: (s: string) => { lines.push(JSON.parse(s)); } };
}

interface Overrides { interval?: number; clock?: () => Date; thresholds?: HealthSettings['thresholds']; loadConfig?: (current: Desired) => Promise<Desired> }

async function daemon(t: Test, runApply: RunApply, overrides: Overrides = {}) {
  // Removed only once the daemon has stopped: a health check still writing its history into a
  // directory being removed is what made tap's own fixture cleanup fail with ENOTEMPTY.
  const storage = await mkdtemp(join(tmpdir(), 'jarvis-db-daemon-'));
  const desired = desiredFor({ storage: { path: storage }, backups: [], health: { thresholds: overrides.thresholds ?? {}, intervalSeconds: overrides.interval ?? 3600, historySeconds: 86400 } });
  const sink = logSink();
  const loadNext = overrides.loadConfig;
  const d = new Daemon({
    desired, host: '127.0.0.1', port: 0, logger: daemonLogger(sink), runApply,
    runHealth: (signal, current) => runHealthCheck(current, { signal, cpuWindowMs: 0 }),
    ...(overrides.clock ? { clock: overrides.clock } : {}),
    ...(loadNext ? { loadConfig: () => loadNext(desired) } : {}),
  });
  await d.start();
  t.teardown(async () => {
    await d.stop('test over');
    await rm(storage, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${d.address.port}`;
  return { d, logs: sink.lines, url, desired };
}

const nothing: ApplySummary = { runId: 'r0', status: 'nothing_to_do', durationMs: 1, results: [] };
const until = async (what: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

t.test('never two applies at once: a wake during a run makes exactly one more run after it', async (t) => {
  let running = 0;
  let most = 0;
  let runs = 0;
  const slow: RunApply = async () => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 200));
    running--;
    runs++;
    return nothing;
  };
  const { d, logs } = await daemon(t, slow);
  // start() already began one run; three wakes during it fold into one follow-up.
  void d.applyNow('cron', ['a']);
  void d.applyNow('cron', ['a']);
  await d.applyNow('cron', ['a']);
  await until(() => runs === 2);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(runs, 2);
  t.equal(most, 1, 'at most one apply ran at any time');
  t.ok(logs.some((l) => l.event === 'apply_deferred'));
});

t.test('/metrics carries the health check and the daemon\'s runs; /healthz says the daemon is alive', async (t) => {
  const apply: RunApply = async ({ hooks }) => {
    hooks.runStarted('20261124T100000Z-abcd');
    hooks.actionStarted({ id: 'backup.create.nightly', type: 'create_backup', target: 'nightly' });
    hooks.actionFinished({ id: 'backup.create.nightly', type: 'create_backup', target: 'nightly', status: 'done', durationMs: 5, summary: 'written' });
    return { runId: '20261124T100000Z-abcd', status: 'succeeded', durationMs: 5, results: [{ id: 'backup.create.nightly', type: 'create_backup', target: 'nightly', status: 'done' }] };
  };
  const { d, logs, url } = await daemon(t, apply);
  await until(() => d.counters.runs.size > 0 && d.counters.healthChecks >= 2);
  const response = await fetch(`${url}/metrics`);
  t.equal(response.status, 200);
  t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const families = new Map(parsePrometheusTextFormat(await response.text()).map((f) => [f.name, f]));
  t.ok(families.get('jarvis_db_system_disk_free_ratio'), 'the health check is there');
  t.same(families.get('jarvis_db_daemon_runs_total')!.metrics, [{ labels: { status: 'succeeded' }, value: '1' }]);
  t.same(families.get('jarvis_db_daemon_actions_total')!.metrics, [{ labels: { type: 'create_backup', status: 'done' }, value: '1' }]);
  t.equal(families.get('jarvis_db_daemon_health_checks_total')!.metrics[0]!.value, String(d.counters.healthChecks));
  const live = await fetch(`${url}/healthz`);
  t.equal(live.status, 200);
  t.match(await live.json(), { ok: true, health: { status: /HEALTHY|WARNING|CRITICAL|UNKNOWN/, checkedAt: /^\d{4}-/ } });
  t.equal((await fetch(`${url}/nope`)).status, 404);
  const started = logs.find((l) => l.event === 'action_started')!;
  t.match(started, { level: 'info', runId: '20261124T100000Z-abcd', action: 'backup.create.nightly', time: /^\d{4}-\d{2}-\d{2}T/ });
  t.match(logs.find((l) => l.event === 'apply_finished'), { runId: '20261124T100000Z-abcd', status: 'succeeded', cycle: started.cycle });
  t.ok(logs.filter((l) => l.event === 'health_checked').some((l) => l.trigger === 'after apply'), 'a check follows an apply that did something');
});

t.test('/healthz turns 503 when the health loop has not run for three intervals', async (t) => {
  let now = Date.now();
  const { url } = await daemon(t, async () => nothing, { interval: 60, clock: () => new Date(now) });
  await new Promise((r) => setTimeout(r, 300));
  t.equal((await fetch(`${url}/healthz`)).status, 200);
  now += 3 * 60_000 + 31_000;
  const stale = await fetch(`${url}/healthz`);
  t.equal(stale.status, 503);
  t.match(await stale.json(), { ok: false, problem: /no health check for \d+ s/ });
});

t.test('stop aborts the running apply through its signal, waits for it, and closes the server', async (t) => {
  let sawAbort = false;
  let finished = false;
  const apply: RunApply = async ({ signal }) => {
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => { sawAbort = true; setTimeout(resolve, 100); }, { once: true }));
    finished = true;
    return { runId: 'r1', status: 'cancelled', durationMs: 100, results: [{ id: 'x', type: 'create_backup', target: 'a', status: 'not_executed' }] };
  };
  const { d, logs, url } = await daemon(t, apply);
  await until(() => logs.some((l) => l.event === 'apply_started'));
  await d.stop('SIGTERM');
  t.ok(sawAbort && finished, 'the apply saw the abort and was waited for');
  t.match(logs.at(-1), { event: 'daemon_stopped' });
  t.match(logs.find((l) => l.event === 'apply_finished'), { status: 'cancelled' });
  await t.rejects(fetch(`${url}/healthz`), 'the server is closed');
});

t.test('log lines never carry a password', async (t) => {
  const apply: RunApply = async () => { throw new Error('cannot connect to postgres://jarvis:hunter2-secret@db:5432/jarvis'); };
  const { d, logs } = await daemon(t, apply);
  await until(() => d.counters.runs.get('refused') === 1);
  const refused = logs.find((l) => l.event === 'apply_refused')!;
  t.match(refused, { level: 'error', error: /postgres:\/\/jarvis:\*\*\*@db:5432/ });
  t.notMatch(JSON.stringify(logs), /hunter2-secret/);
});

t.test('a run that a service outage held back in part logs the cause of each action not executed', async (t) => {
  const cause = 'services: cannot connect to PostgreSQL at postgres://jarvis:***@db:5432/jarvis: connect ECONNREFUSED';
  const partial: RunApply = async ({ hooks }) => {
    const results = [
      { id: 'backup.create.pg', type: 'create_backup', target: 'pg', status: 'not_executed', reason: cause },
      { id: 'backup.create.redis', type: 'create_backup', target: 'redis', status: 'done', summary: 'ok' },
    ];
    for (const r of results) hooks.actionFinished(r);
    return { runId: 'r1', status: 'failed', durationMs: 5, results, errors: [{ module: 'services', service: 'postgres', message: cause.slice('services: '.length) }] };
  };
  const { d, logs } = await daemon(t, partial);
  await until(() => d.counters.runs.get('failed') === 1);
  t.match(logs.find((l) => l.event === 'action_finished' && l.action === 'backup.create.pg'), { level: 'warn', status: 'not_executed', reason: cause, msg: `create_backup pg: not executed: ${cause}` });
  t.match(logs.find((l) => l.event === 'plan_error'), { level: 'error', module: 'services', service: 'postgres', error: /cannot connect to PostgreSQL/ });
  t.match(logs.find((l) => l.event === 'apply_finished'), { level: 'error', status: 'failed', msg: `apply failed: ${cause}` });
});

t.test('/healthz stays 200 while a check is CRITICAL (the daemon is alive) and its body carries that status and when it was taken', async (t) => {
  // Free disk is always under 200% of the disk: CRITICAL at every check.
  const { d, url } = await daemon(t, async () => nothing, { thresholds: { 'system.disk_free_ratio': { critical: 2, lowerIsWorse: true } } });
  await until(() => d.counters.healthChecks >= 1);
  const live = await fetch(`${url}/healthz`);
  t.equal(live.status, 200, 'liveness of the daemon, not the health of the databases');
  const body = await live.json() as { ok: boolean; health: { status: string; checkedAt: string; notHealthy: string[] } };
  t.equal(body.ok, true);
  t.equal(body.health.status, 'CRITICAL');
  t.ok(Math.abs(Date.parse(body.health.checkedAt) - Date.now()) < 60_000, `checkedAt is the check's time (${body.health.checkedAt})`);
  t.ok(body.health.notHealthy.some((c) => c.startsWith('system.disk_free_ratio')), 'names the check that is not healthy');
});

t.test('a reload takes a valid config at the next tick: wake and health interval recomputed, the running apply keeps its config', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const seen: string[] = [];
  const apply: RunApply = async ({ desired }) => {
    seen.push(desired.configHash);
    if (seen.length === 1) await held;
    return nothing;
  };
  const { d, logs } = await daemon(t, apply, {
    loadConfig: async (current) => ({ ...current, configHash: 'h2', backups: [schedule('nightly', '*/5 * * * *')], health: { ...current.health, intervalSeconds: 1 } }),
  });
  await until(() => logs.some((l) => l.event === 'apply_started'));
  t.equal(d.counters.nextApplyAt, undefined, 'no schedule: no wake');
  t.equal(await d.reload(), true);
  t.match(logs.find((l) => l.event === 'config_reloaded'), {
    level: 'info', previousHash: 'h', configHash: 'h2', applying: true, healthIntervalSeconds: 1,
    changed: ['health.interval: 3600s → 1s', 'backups.nightly: added (*/5 * * * * UTC)'],
  });
  t.ok(d.counters.nextApplyAt && d.counters.nextApplyAt.getTime() - Date.now() <= 5 * 60_000, 'the wake is the new schedule\'s');
  const checksAtReload = d.counters.healthChecks;
  release();
  await until(() => d.counters.healthChecks >= checksAtReload + 2, 8000);
  t.ok(logs.filter((l) => l.event === 'health_checked' && l.trigger === 'interval').length >= 2, 'the health loop ticks at the new interval');
  await d.applyNow('cron', ['nightly']);
  t.same(seen, ['h', 'h2'], 'the running apply finished with the old config, the next one has the new');
  t.equal(d.config.configHash, 'h2');
});

t.test('a reload with an invalid config logs the file, line and problem at level error and keeps the config in force', async (t) => {
  let file = '';
  const { d, logs, desired } = await daemon(t, async () => nothing, { loadConfig: () => loadConfig(file, {}) });
  file = join(desired.storage.path, 'jarvis-db.yaml');
  await writeFile(file, ['version: 1', 'services: { redis: { url: "redis://127.0.0.1:1" } }', 'storage: { path: ./backups }', 'health: { interval: soon }', ''].join('\n'));
  t.equal(await d.reload(), false);
  const failed = logs.find((l) => l.event === 'config_reload_failed')!;
  t.match(failed, { level: 'error', code: 'CONFIG_INVALID', kept: 'h', problems: [/jarvis-db\.yaml:4:\d+: health\.interval: .+/] });
  t.match(failed.msg, /current one is kept: .*jarvis-db\.yaml:4:\d+/);
  t.equal(d.config, desired, 'the config in force is the old one');
  t.notOk(logs.some((l) => l.event === 'config_reloaded'));
  t.equal(d.liveness().ok, true, 'the daemon still runs');
});
