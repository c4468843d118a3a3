/**
 * PostgreSQL stopped in the middle of `jarvis-db retention run` (compiled CLI: build first):
 * the run fails with one line naming PostgreSQL and its host:port and a hint, exit 1, no
 * stack trace. The server is stopped while the run's first batch waits for a table lock the
 * test holds, so the stop lands inside the batch loop every time.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { stopService } from '../../src/sandbox/index.js';
import { sleep } from '../../src/platform/processes.js';
import { freshDatabase, seed, serverSandbox, sql } from './fixture.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'jarvis-db.js');

function cliBackground(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { child, result };
}

t.test('PostgreSQL stopped during retention run: one line naming PostgreSQL and its host:port, a hint, exit 1', async (t) => {
  const url = await freshDatabase(t);
  const sandbox = await serverSandbox(t);
  await seed(url, { users: 5, conversations: 5, messages: 10 });
  await sql(url, `INSERT INTO sessions (user_id, token_hash, created_at, expires_at)
    SELECT 1 + i % 5, md5(i::text), now() - (i || ' days')::interval - interval '40 days', now() - (i || ' days')::interval - interval '31 days' FROM generate_series(1, 50) i`);
  const dir = t.testdir();
  await cp(join(ROOT, 'policies'), join(dir, 'policies'), { recursive: true });
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, ['version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./storage }', 'retention:', '  include: [./policies/*.yaml]', ''].join('\n'));

  // The test's transaction holds the table so that the run's first batch (SELECT … FOR UPDATE) waits.
  const holder = new pg.Client({ connectionString: url });
  holder.on('error', () => undefined);
  await holder.connect();
  await holder.query('BEGIN; LOCK TABLE sessions IN EXCLUSIVE MODE');
  const run = cliBackground(['retention', 'run', '--policy', 'sessions-delete', '--auto-approve'], { JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config });
  t.teardown(() => { run.child.kill('SIGKILL'); });
  // A second session watches (pg_stat_activity is a snapshot per transaction: the holder's would never change).
  const watcher = new pg.Client({ connectionString: url });
  watcher.on('error', () => undefined);
  await watcher.connect();
  for (;;) {
    const waiting = await watcher.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'jarvis-db retention' AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'`);
    if (waiting.rows[0]!.n > 0) break;
    if (run.child.exitCode !== null) break;
    await sleep(50);
  }
  t.equal(run.child.exitCode, null, 'the run is waiting inside its first batch');
  await watcher.end();
  await stopService(sandbox.dir, 'postgres');
  const r = await run.result;
  const port = new URL(url).port;
  t.equal(r.code, 1, r.stderr);
  t.match(r.stdout, new RegExp(`^ {2}✗ retention\\.delete\\.sessions-delete: lost the connection to PostgreSQL at 127\\.0\\.0\\.1:${port}: [^\\n]+\\n {4}hint: is PostgreSQL running at 127\\.0\\.0\\.1:${port}\\? check services\\.postgres\\.url$`, 'm'));
  t.match(r.stderr, new RegExp(`FAILED after [\\d.]+m?s: lost the connection to PostgreSQL at 127\\.0\\.0\\.1:${port}: `));
  t.notMatch(r.stdout + r.stderr, /\n\s+at /, 'no stack trace');
  t.notMatch(r.stdout + r.stderr, new URL(url).password, 'no password');
});
