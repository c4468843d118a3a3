/**
 * One service down stops only the work that needs it, on the sandbox, through the compiled CLI:
 * with PostgreSQL stopped, the due Redis and Chroma backups are still taken (and apply exits 1
 * naming PostgreSQL); with Chroma stopped, the PostgreSQL backup and retention still run.
 */
import t from 'tap';
import pg from 'pg';
import { sandboxEnv, startService, stopService } from '../../src/sandbox/index.js';
import { withSandbox } from '../helpers/sandbox.js';
import { cli, writeConfig } from './fixtures/cli.js';

const MIGRATIONS = new URL('../../migrations', import.meta.url).pathname;

interface Listed { backups: { schedule: string }[] }

t.test('an outage of one service holds back only the actions that reach it', async (t) => {
  const sandbox = await withSandbox(t, ['postgres', 'redis', 'chroma']);
  const dir = t.testdir();
  // Two storage paths: two independent histories of backups, one per outage.
  const configOf = (storage: string) => writeConfig(dir, [
    'version: 1',
    'services:',
    '  postgres: { url: "${JARVIS_PG_URL}" }',
    '  redis: { url: "${JARVIS_REDIS_URL}" }',
    '  chroma: { url: "${JARVIS_CHROMA_URL}" }',
    `storage: { path: ./${storage} }`,
    'schema:',
    `  migrations: ${JSON.stringify(MIGRATIONS)}`,
    '  target: latest',
    '  backupBefore: false',
    'retention:',
    '  policies:',
    '    - { name: metrics-delete, table: metrics, age: { column: recorded_at, olderThan: 30d }, action: delete, batchSize: 100 }',
    'backups:',
    '  - { name: pg-nightly, service: postgres, cron: "0 3 * * *", keep: { last: 2 } }',
    '  - { name: redis-hourly, service: redis, cron: "0 * * * *", method: logical, keep: { last: 2 } }',
    '  - { name: chroma-daily, service: chroma, cron: "30 3 * * *", keep: { last: 2 } }',
  ], `${storage}.yaml`);
  const base = sandboxEnv(sandbox);
  const pgDownEnv = { ...base, JARVIS_DB_CONFIG: await configOf('pg-down') };
  const chromaDownEnv = { ...base, JARVIS_DB_CONFIG: await configOf('chroma-down') };
  const schedules = (env: Record<string, string>) => (JSON.parse(cli(['--json', 'backup', 'list'], env).stdout) as Listed).backups.map((b) => b.schedule).sort();
  const outputs: string[] = [];
  const run = (args: string[], env: Record<string, string>) => { const r = cli(args, env); outputs.push(r.stdout, r.stderr); return r; };

  const init = run(['init'], pgDownEnv);
  t.equal(init.code, 0, init.stderr);
  const writer = new pg.Client({ connectionString: sandbox.postgres!.url });
  await writer.connect();
  await writer.query(`INSERT INTO metrics (name, value, recorded_at) SELECT 'latency', i, now() - (i + 0.5) * interval '1 day' FROM generate_series(0, 59) i`);
  await writer.end();

  await stopService(sandbox.dir, 'postgres');
  const plan = run(['plan'], pgDownEnv);
  t.equal(plan.code, 1, 'plan exits 1: an error');
  t.match(plan.stdout, /^\d errors: 1 action held back until fixed; the 2 others still run\n/);
  t.match(plan.stdout, /✗ services: cannot connect to PostgreSQL at postgres:\/\/[^\n]*\*\*\*@127\.0\.0\.1:\d+\/jarvis: [^\n]*ECONNREFUSED/);
  t.match(plan.stdout, /\+ create_backup pg-nightly HELD BACK/);

  const pgDown = run(['apply', '--auto-approve'], pgDownEnv);
  t.equal(pgDown.code, 1, 'apply exits 1 when PostgreSQL is down');
  t.match(pgDown.stdout, /Apply failed: 2 done, 0 failed, 1 not executed/);
  t.match(pgDown.stdout, /✗ services: cannot connect to PostgreSQL/);
  t.match(pgDown.stdout, /not executed: backup\.create\.pg-nightly: services: cannot connect to PostgreSQL/);
  t.same(schedules(pgDownEnv), ['chroma-daily', 'redis-hourly'], 'the due Redis and Chroma backups were taken');

  await startService(sandbox.dir, 'postgres');
  await stopService(sandbox.dir, 'chroma');
  const chromaDown = run(['apply', '--auto-approve'], chromaDownEnv);
  t.equal(chromaDown.code, 1, 'apply exits 1 when Chroma is down');
  t.match(chromaDown.stdout, /Apply failed: \d done, 0 failed, 1 not executed/);
  t.match(chromaDown.stdout, /not executed: backup\.create\.chroma-daily: services: cannot reach Chroma/);
  t.same(schedules(chromaDownEnv), ['pg-nightly', 'redis-hourly']);
  const reader = new pg.Client({ connectionString: sandbox.postgres!.url });
  await reader.connect();
  t.same((await reader.query('SELECT count(*)::int AS n FROM metrics')).rows, [{ n: 30 }], 'retention deleted the old rows while Chroma was down');
  await reader.end();

  await startService(sandbox.dir, 'chroma');
  const back = run(['apply', '--auto-approve'], chromaDownEnv);
  t.equal(back.code, 0, back.stdout + back.stderr);
  t.same(schedules(chromaDownEnv), ['chroma-daily', 'pg-nightly', 'redis-hourly'], 'the held-back backup runs once Chroma is back');
  const password = decodeURIComponent(new URL(sandbox.postgres!.url).password);
  t.notOk(outputs.some((o) => o.includes(password)), 'no password in any output');
});
