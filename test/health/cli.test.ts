/** The health commands' edges through the compiled CLI (build first with npx tsc); no servers needed. */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHECK_NAMES } from '../../src/health/checks.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function config(t: Test): Promise<string> {
  const file = join(t.testdir(), 'jarvis-db.yaml');
  // Port 1 on localhost: nothing listens there, the connection is refused at once.
  await writeFile(file, ['version: 1', 'services:', '  postgres: { url: "postgres://jarvis:${PG_PASSWORD:-none}@127.0.0.1:1/jarvis" }', 'storage: { path: ./backups }', ''].join('\n'));
  return file;
}

t.test('health checks lists the whole catalogue with the default levels', async (t) => {
  const r = cli(['health', 'checks', '--json']);
  t.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as { name: string; default: string | null }[];
  t.same(rows.map((x) => x.name), CHECK_NAMES);
  t.match(rows.find((x) => x.name === 'postgres.cache_hit_ratio'), { default: 'warning < 98%, critical < 90%' });
});

t.test('an unreachable PostgreSQL is CRITICAL with the reason, exit 2, and its password is not printed', async (t) => {
  const file = await config(t);
  const r = cli(['-c', file, 'health', 'check', '--service', 'postgres'], { PG_PASSWORD: 'sekret-pw-123' });
  t.equal(r.code, 2, r.stderr);
  t.match(r.stdout, /✗ up\s+no\s+cannot connect to PostgreSQL at postgres:\/\/jarvis:\*\*\*@127\.0\.0\.1:1\/jarvis: .*ECONNREFUSED/);
  t.notMatch(r.stdout + r.stderr, /sekret-pw-123/);
});

t.test('asking for a service the config does not have is a one-line error', async (t) => {
  const r = cli(['-c', await config(t), 'health', 'check', '--service', 'redis']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^error: services\.redis is not configured\nhint: configured: postgres, system\n$/);
});

t.test('health history: a bad --since is a clear error; an empty history says so', async (t) => {
  const file = await config(t);
  const bad = cli(['-c', file, 'health', 'history', '--since', '7 days']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^error: --since: "7 days" is not a positive duration/);
  const empty = cli(['-c', file, 'health', 'history']);
  t.equal(empty.code, 0);
  t.match(empty.stdout, /No health checks recorded in that period/);
  const unknown = cli(['-c', file, 'health', 'history', '--check', 'postgres.cache_hit']);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /there is no check named postgres\.cache_hit\nhint: did you mean postgres\.cache_hit_ratio/);
});
