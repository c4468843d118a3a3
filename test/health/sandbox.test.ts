/**
 * Health on real servers (the project's sandbox) through the compiled CLI (build first with
 * npx tsc): each status made to happen for real and made to go away again. Connections are
 * real connections, Redis is really stopped, backups are real pg_dump backups with an old time.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { withSandbox } from '../helpers/sandbox.js';
import { sandboxEnv, startService, stopService } from '../../src/sandbox/index.js';
import { loadConfig } from '../../src/config/load.js';
import { createBackup } from '../../src/backup/operations.js';
import { scheduleByName } from '../../src/backup/operations.js';
import { observeHealth } from '../../src/health/check.js';
import { HealthConnections } from '../../src/health/connections.js';
import { evaluate } from '../../src/health/evaluate.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

interface Run { code: number; stdout: string; stderr: string }

/** The CLI, without blocking this process (the webhook receiver below must answer meanwhile). */
function cli(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

interface Finding { check: string; status: string; message: string; value: unknown }
interface JsonReport { status: string; exitCode: number; findings: Finding[]; samples: { key: string; value: number | null }[] }

async function json(args: string[], env: Record<string, string>): Promise<JsonReport & { code: number }> {
  const r = await cli(['health', 'check', '--format', 'json', ...args], env);
  try {
    return { ...(JSON.parse(r.stdout) as JsonReport), code: r.code };
  } catch {
    throw new Error(`health check printed no JSON (exit ${r.code}): ${r.stderr}`);
  }
}

t.test('health on a real sandbox', async (t) => {
  const state = await withSandbox(t, ['postgres', 'redis', 'chroma']);
  const dir = t.testdir();
  const alerts: { event: string; check: string; status: string; message: string }[] = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => { alerts.push(JSON.parse(body)); res.end(); });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => receiver.close(() => r())));
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis',
    'services:',
    '  postgres: { url: "${JARVIS_PG_URL}" }',
    '  redis: { url: "${JARVIS_REDIS_URL}" }',
    `  chroma: { url: "\${JARVIS_CHROMA_URL}", path: ${JSON.stringify(state.chroma!.dataDir)} }`,
    'storage: { path: ./backups }',
    'backups:',
    '  - { name: hourly, service: postgres, cron: "0 * * * *", keep: { last: 5 } }',
    'health:',
    '  thresholds:',
    '    postgres.connections_used_ratio: { warning: 0.2, critical: 0.4 }',
    '    system.load_per_cpu: { warning: 1000 }       # the shared test machine is busy; that is not what is tested',
    '  alerts:',
    `    webhook: "http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alerts"`,
    '    retries: 1',
    '',
  ].join('\n'));
  const env = { ...sandboxEnv(state), JARVIS_DB_CONFIG: config };
  const secrets = [state.postgres!.password, state.redis!.password];
  const noSecrets = (t: Test, r: Run) => { for (const s of secrets) t.notMatch(r.stdout + r.stderr, s, 'no password in the output'); };

  await t.test('a schedule without a backup is CRITICAL; a real backup two intervals old is WARNING; a fresh one HEALTHY', async (t) => {
    const none = await cli(['health', 'check', '--service', 'backups'], env);
    t.equal(none.code, 2, none.stderr);
    t.match(none.stdout, /✗ age_interval_ratio\{schedule=hourly\}\s+-\s+no valid backup of postgres schedule hourly/);
    const desired = await loadConfig(config, env);
    const schedule = scheduleByName(desired, 'hourly');
    await createBackup(desired, schedule, { ...process.env, ...env }, undefined, new Date(Date.now() - 2 * 3600_000));
    const old = await json(['--service', 'backups'], env);
    t.equal(old.code, 1);
    t.match(old.findings.find((f) => f.check === 'backups.age_interval_ratio.hourly'), { status: 'WARNING', message: /2h \d+m old, `0 \* \* \* \*` runs every 1h 00m/ });
    await createBackup(desired, schedule, { ...process.env, ...env });
    const fresh = await json(['--service', 'backups'], env);
    t.equal(fresh.code, 0);
    t.equal(fresh.samples.find((s) => s.key === 'backups.valid.hourly')!.value, 2);
  });

  await t.test('connections filled past the thresholds make PostgreSQL WARNING, then CRITICAL, then HEALTHY once closed', async (t) => {
    const before = await cli(['health', 'check', '--service', 'postgres'], env);
    t.equal(before.code, 0, before.stdout + before.stderr);
    const clients: pg.Client[] = [];
    t.teardown(() => Promise.all(clients.map((c) => c.end().catch(() => undefined))));
    const open = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const c = new pg.Client({ connectionString: state.postgres!.url });
        await c.connect();
        clients.push(c);
      }
    };
    await open(25); // 26 of 97 with the check's own: past 0.2
    const warning = await cli(['health', 'check', '--service', 'postgres'], env);
    t.equal(warning.code, 1, warning.stdout);
    t.match(warning.stdout, /! connections_used_ratio\s+26\.8%\s+26 of 97; warning >= 20%, critical >= 40%/);
    noSecrets(t, warning);
    await open(15); // 41 of 97: past 0.4
    const critical = await json(['--service', 'postgres'], env);
    t.equal(critical.code, 2);
    t.match(critical.findings.find((f) => f.check === 'postgres.connections_used_ratio'), { status: 'CRITICAL', value: 41 / 97 });
    await Promise.all(clients.splice(0).map((c) => c.end()));
    const after = await cli(['health', 'check', '--service', 'postgres'], env);
    t.equal(after.code, 0, after.stdout);
  });

  await t.test('Redis stopped is CRITICAL with the reason and raises an alert; started again it is HEALTHY and the alert resolves', async (t) => {
    alerts.length = 0;
    t.equal((await cli(['health', 'check', '--service', 'redis'], env)).code, 0);
    await stopService(state.dir, 'redis');
    const down = await cli(['health', 'check', '--service', 'redis'], env);
    t.equal(down.code, 2, down.stderr);
    t.match(down.stdout, /✗ up\s+no\s+cannot connect to Redis at redis:\/\/default:\*\*\*@127\.0\.0\.1:\d+\/0: .*ECONNREFUSED/);
    t.match(down.stdout, /Health: CRITICAL/);
    noSecrets(t, down);
    t.match(alerts, [{ event: 'critical', check: 'redis.up', status: 'CRITICAL', message: /cannot connect to Redis/ }]);
    await startService(state.dir, 'redis');
    const up = await cli(['health', 'check', '--service', 'redis'], env);
    t.equal(up.code, 0, up.stdout);
    t.same(alerts.map((a) => [a.event, a.check]), [['critical', 'redis.up'], ['resolved', 'redis.up']]);
  });

  await t.test('kept connections (the daemon\'s) are reused between checks and made again after Redis restarts', async (t) => {
    const desired = await loadConfig(config, env);
    const connections = new HealthConnections();
    t.teardown(() => connections.close());
    const check = async () => evaluate((await observeHealth(desired, { services: ['postgres', 'redis'], connections, cpuWindowMs: 0 })).samples, desired.health.thresholds);
    const sessions = async () => {
      const c = new pg.Client({ connectionString: state.postgres!.url });
      await c.connect();
      try {
        return (await c.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'jarvis-db health'")).rows.map((r) => r.pid);
      } finally {
        await c.end();
      }
    };
    await check();
    const first = await sessions();
    t.equal(first.length, 1, 'one PostgreSQL session is kept open');
    await check();
    t.same(await sessions(), first, 'the next check reuses it');
    await stopService(state.dir, 'redis');
    t.match((await check()).find((f) => f.check === 'redis.up'), { status: 'CRITICAL', message: /cannot connect to Redis/ });
    await startService(state.dir, 'redis');
    t.match((await check()).find((f) => f.check === 'redis.up'), { status: 'HEALTHY' });
    await stopService(state.dir, 'postgres');
    t.match((await check()).find((f) => f.check === 'postgres.up'), { status: 'CRITICAL', message: /cannot connect to PostgreSQL/ });
    await startService(state.dir, 'postgres');
    t.match((await check()).find((f) => f.check === 'postgres.up'), { status: 'HEALTHY' }, 'the broken session is replaced');
    const after = await sessions();
    t.equal(after.length, 1);
    t.not(after[0], first[0], 'by a new one');
  });

  await t.test('Chroma reports its collections, their records and the size of its data directory', async (t) => {
    const { ChromaClient } = await import('chromadb');
    const u = new URL(state.chroma!.url);
    const client = new ChromaClient({ host: u.hostname, port: Number(u.port) });
    const c = await client.createCollection({ name: 'memories', embeddingFunction: null });
    await c.add({ ids: ['a', 'b', 'c'], embeddings: [[1, 2], [3, 4], [5, 6]] });
    const r = await json(['--service', 'chroma'], env);
    t.equal(r.code, 0);
    const values = new Map(r.samples.map((s) => [s.key, s.value]));
    t.equal(values.get('chroma.up'), 1);
    t.equal(values.get('chroma.collections'), 1);
    t.equal(values.get('chroma.records.memories'), 3);
    t.equal(values.get('chroma.unreadable_collections'), 0);
    t.ok((values.get('chroma.data_bytes') ?? 0)! > 0, 'the data directory has a size');
  });

  await t.test('the full check in Prometheus format parses and carries every service', async (t) => {
    const r = await cli(['health', 'check', '--format', 'prometheus'], env);
    t.equal(r.code, 0, 'every service healthy');
    const families = new Map(parsePrometheusTextFormat(r.stdout).map((f) => [f.name, f]));
    for (const name of ['jarvis_db_postgres_up', 'jarvis_db_redis_up', 'jarvis_db_chroma_up']) t.equal(families.get(name)?.metrics[0]?.value, '1', name);
    t.match(families.get('jarvis_db_backups_age_seconds')?.metrics[0], { labels: { schedule: 'hourly' } });
    t.ok(families.get('jarvis_db_system_disk_free_ratio'));
    t.ok(families.get('jarvis_db_postgres_database_size_bytes'));
    noSecrets(t, r);
  });

  await t.test('every check above was recorded: history shows the trend of the connections, per day with a sparkline', async (t) => {
    const r = await cli(['health', 'history', '--since', '1d', '--check', 'postgres.connections_used_ratio', '--format', 'json'], env);
    t.equal(r.code, 0, r.stderr);
    const history = JSON.parse(r.stdout) as { checks: { check: string; days: { max: number; min: number; samples: number; worst: string }[] }[] };
    t.equal(history.checks.length, 1);
    const days = history.checks[0]!.days;
    t.equal(days.reduce((n, d) => n + d.samples, 0), 5, 'the four postgres checks and the full one');
    t.ok(Math.abs(Math.max(...days.map((d) => d.max)) - 41 / 97) < 1e-6, 'the peak of 41 connections of 97');
    t.ok(days.some((d) => d.worst === 'CRITICAL'));
    const text = await cli(['health', 'history', '--since', '1d', '--check', 'postgres.connections_used_ratio'], env);
    t.match(text.stdout, /postgres\.connections_used_ratio\s+[▁-█]/);
    t.match(text.stdout, /\d{4}-\d{2}-\d{2}\s+1%\s+\S+%\s+42\.3%\s+5\s+CRITICAL\s+[▁-█ ]+/);
  });

  await t.test('a long query, a waiting lock and a slow statement in pg_stat_statements are seen for real', async (t) => {
    const queries = join(dir, 'queries.yaml');
    await writeFile(queries, [
      'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./backups-queries }',
      'health:', '  thresholds:',
      '    postgres.longest_query_seconds: { warning: 1 }',
      '    postgres.waiting_locks: { warning: 1 }',
      '    postgres.slow_statements: { warning: 1 }', '',
    ].join('\n'));
    const qenv = { ...env, JARVIS_DB_CONFIG: queries };
    const admin = new pg.Client({ connectionString: state.postgres!.url });
    const holder = new pg.Client({ connectionString: state.postgres!.url });
    const waiter = new pg.Client({ connectionString: state.postgres!.url });
    for (const c of [admin, holder, waiter]) await c.connect();
    t.teardown(() => Promise.all([admin, holder, waiter].map((c) => c.end().catch(() => undefined))));
    await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE TABLE IF NOT EXISTS locked (id int)');
    const calm = await json(['--service', 'postgres'], qenv);
    t.equal(calm.code, 0, JSON.stringify(calm.findings.filter((f) => f.status !== 'HEALTHY')));
    await admin.query('SELECT pg_sleep(1.1)');
    await holder.query('BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE');
    const waiting = waiter.query('SELECT count(*) FROM locked').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1500));
    const busy = await json(['--service', 'postgres'], qenv);
    t.equal(busy.code, 1);
    const status = new Map(busy.findings.map((f) => [f.check, f]));
    t.match(status.get('postgres.waiting_locks'), { status: 'WARNING', value: 1 });
    t.match(status.get('postgres.longest_query_seconds'), { status: 'WARNING', message: /pid \d+/ });
    t.match(status.get('postgres.slow_statements'), { status: 'WARNING' });
    t.ok((status.get('postgres.longest_transaction_seconds')!.value as number) >= 1.5, 'the lock holder\'s transaction is the longest');
    await holder.query('COMMIT');
    await waiting;
    await admin.query('SELECT pg_stat_statements_reset()');
    const after = await json(['--service', 'postgres'], qenv);
    t.equal(after.code, 0, JSON.stringify(after.findings.filter((f) => f.status !== 'HEALTHY')));
  });

  await t.test('a check that cannot be measured is UNKNOWN and exits 3', async (t) => {
    const unknown = join(dir, 'unknown.yaml');
    await writeFile(unknown, [
      'version: 1', 'services:', '  chroma: { url: "${JARVIS_CHROMA_URL}", path: ./no-such-dir }', 'storage: { path: ./backups-unknown }',
      'health:', '  thresholds:', '    chroma.data_bytes: { warning: 1000000000000 }', '',
    ].join('\n'));
    const r = await cli(['health', 'check', '--service', 'chroma'], { ...env, JARVIS_DB_CONFIG: unknown });
    t.equal(r.code, 3, r.stdout + r.stderr);
    t.match(r.stdout, /\? UNKNOWN chroma\.data_bytes: cannot read .*no-such-dir: ENOENT/);
  });
});
