/**
 * Two `jarvis-db migrate up` at once, and one killed with SIGKILL in the middle of a migration
 * (child processes running the compiled CLI: build first with npx tsc). The schema is never
 * seen half-applied, the second process waits (or fails clearly with --lock-timeout 0), and the
 * next `up` after a kill completes.
 */
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, configFile, freshDatabase, migrationsFolder, MECHANICS, pgServer, sql, cli, type PgServer } from './fixture.js';

const server: PgServer = await pgServer(t);

/** A migration that takes `seconds` between its two statements. */
const slow = (seconds: number) => [
  '-- Up Migration',
  'CREATE TABLE slow_a (id int);',
  `SELECT pg_sleep(${seconds});`,
  'CREATE TABLE slow_b (id int);',
  '-- Down Migration',
  'DROP TABLE slow_b;',
  'DROP TABLE slow_a;',
  '',
].join('\n');

/** The key of the advisory lock that `heldMigration` waits on between its two statements. */
const HOLD_KEY = 4_242_001;

/** A migration that waits, between its two statements, until the test releases HOLD_KEY. */
const heldMigration = () => slow(0).replace('SELECT pg_sleep(0);', `SELECT pg_advisory_xact_lock(${HOLD_KEY});`);

/** Holds HOLD_KEY in a session of the test's own until `release`. */
async function holdLock(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('SELECT pg_advisory_lock($1)', [HOLD_KEY]);
  return { release: () => client.end() };
}

function start(args: string[], env: Record<string, string>, config: string) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env, JARVIS_DB_CONFIG: config, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d; });
  child.stderr!.on('data', (d: Buffer) => { stderr += d; });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

interface Snapshot { a: boolean; b: boolean; recorded: boolean }
/** What another session sees: the slow migration's two tables and its history row. */
async function snapshot(url: string): Promise<Snapshot> {
  // One statement, one snapshot: the history table is read through a function call so that the
  // statement still parses before the first migration created it.
  const [r] = await sql<Snapshot>(url, `SELECT to_regclass('slow_a') IS NOT NULL AS a, to_regclass('slow_b') IS NOT NULL AS b,
    coalesce((xpath('/row/n/text()', query_to_xml(
      CASE WHEN to_regclass('pgmigrations') IS NULL THEN 'SELECT 0 AS n' ELSE $$SELECT count(*) AS n FROM pgmigrations WHERE name = '0006_slow'$$ END,
      false, true, '')))[1]::text::int, 0) > 0 AS recorded`);
  return r!;
}

async function waitForSleep(url: string, run?: ReturnType<typeof start>): Promise<number> {
  let exited = false;
  void run?.done.then(() => { exited = true; });
  for (let i = 0; i < 200; i++) {
    const rows = await sql<{ pid: number }>(url, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'jarvis-db migrate' AND (query LIKE '%pg_sleep%' OR query LIKE '%pg_advisory_xact_lock(${HOLD_KEY})%') AND state = 'active'`);
    if (rows[0]) return rows[0].pid;
    if (exited) break;
    await sleep(50);
  }
  const r = await run?.done;
  throw new Error(`the slow migration never started${r ? `: the run exited with ${r.code}: ${r.stderr}` : ''}`);
}

t.test('two concurrent migrate up: one applies, the other waits and finds nothing to do; no one ever sees a half-applied migration', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, { '0006_slow.sql': slow(2) }, MECHANICS);
  const config = await configFile(join(folder, '..'), folder);
  const env = { JARVIS_PG_URL: db.url };
  const first = start(['migrate', 'up'], env, config);
  const second = start(['migrate', 'up'], env, config);
  const seen: Snapshot[] = [];
  let finished = false;
  const both = Promise.all([first.done, second.done]).finally(() => { finished = true; });
  while (!finished) {
    seen.push(await snapshot(db.url));
    await sleep(100);
  }
  const results = await both;
  // The loop can end in its pause, after the commit but before a look: take the last look now.
  seen.push(await snapshot(db.url));
  for (const r of results) t.equal(r.code, 0, `both exit 0 ${r.code === 0 ? '' : r.stderr}`);
  const outputs = results.map((r) => r.stdout).sort();
  t.equal(outputs.filter((o) => /\+ 0006_slow/.test(o)).length, 1, 'exactly one of them applied the migrations');
  t.equal(outputs.filter((o) => /^No changes: the schema is at 0006_slow\.$/m.test(o)).length, 1, 'the other waited for it, then had nothing to do');
  t.ok(seen.length > 5, `the schema was watched while they ran (${seen.length} looks)`);
  t.ok(seen.some((s) => !s.recorded) && seen.at(-1)!.recorded, 'the watch saw the migration both before and after it committed');
  t.same(seen.filter((s) => !(s.a === s.b && s.b === s.recorded)), [], 'never one table without the other, never a table without its history row');
  const history = await sql<{ name: string }>(db.url, `SELECT name FROM pgmigrations ORDER BY id`);
  t.equal(history.length, 6, 'each migration recorded once');
});

t.test('with --lock-timeout 0 the second migrate up fails at once, naming who holds the apply lock', async (t) => {
  const db = await freshDatabase(t, server);
  // The first run waits inside its migration until the second has answered, however slow the
  // machine: a timed sleep let the first finish before a slow second one started.
  const folder = await migrationsFolder(t, { '0006_slow.sql': heldMigration() }, MECHANICS);
  const config = await configFile(join(folder, '..'), folder);
  const env = { JARVIS_PG_URL: db.url };
  const hold = await holdLock(db.url);
  t.teardown(() => hold.release().catch(() => undefined));
  const first = start(['migrate', 'up'], env, config);
  await waitForSleep(db.url, first);
  const second = cli(['migrate', 'up', '--lock-timeout', '0'], env, config);
  t.equal(second.code, 1, 'the second run exits 1');
  t.match(second.stderr, new RegExp(`^error: another apply holds the lock on \\S+/backups \\(pid ${first.child.pid} on [^,]+, run \\S+, since [^)]+\\); gave up after 0s$`, 'm'));
  t.match(second.stderr, /hint: wait for it to finish/);
  t.notMatch(second.stderr, /\n\s+at /, 'no stack trace');
  t.same(await snapshot(db.url), { a: false, b: false, recorded: false }, 'the running migration is invisible until it commits');
  await hold.release();
  const r = await first.done;
  t.equal(r.code, 0, r.code === 0 ? 'the first run completes' : r.stderr);
  t.same(await snapshot(db.url), { a: true, b: true, recorded: true });
});

t.test('two configs with different storages on one database: the second waits on the migration lock and fails clearly after --lock-timeout 0', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, { '0006_slow.sql': heldMigration() }, MECHANICS);
  const config = await configFile(join(folder, '..'), folder);
  const otherDir = join(folder, '..', 'other');
  await mkdir(otherDir);
  const other = await configFile(otherDir, folder);
  const env = { JARVIS_PG_URL: db.url };
  const hold = await holdLock(db.url);
  t.teardown(() => hold.release().catch(() => undefined));
  const first = start(['migrate', 'up'], env, config);
  await waitForSleep(db.url, first);
  const second = cli(['migrate', 'up', '--lock-timeout', '0'], env, other);
  t.equal(second.code, 1, 'the second run exits 1');
  t.match(second.stderr, /^error: another migration is running on this database \(pid \d+ \(jarvis-db migrate\) holds the migration lock\); gave up after 0 s$/m);
  t.match(second.stderr, /hint: wait for it to finish/);
  t.notMatch(second.stderr, /\n\s+at /, 'no stack trace');
  await hold.release();
  const r = await first.done;
  t.equal(r.code, 0, r.code === 0 ? 'the first run completes' : r.stderr);
  t.same(await snapshot(db.url), { a: true, b: true, recorded: true });
});

t.test('kill -9 in the middle of a migration: nothing half-applied, and the next up completes', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, { '0006_slow.sql': slow(4) }, MECHANICS);
  const config = await configFile(join(folder, '..'), folder);
  const env = { JARVIS_PG_URL: db.url };
  const victim = start(['migrate', 'up'], env, config);
  const backend = await waitForSleep(db.url, victim);
  process.kill(-victim.child.pid!, 'SIGKILL');
  const killed = await victim.done;
  t.equal(killed.signal, 'SIGKILL', 'the first run was killed');
  t.same(await snapshot(db.url), { a: false, b: false, recorded: false }, 'right after the kill: nothing of 0006_slow is visible');
  const [before] = await sql<{ name: string }>(db.url, `SELECT name FROM pgmigrations ORDER BY id DESC LIMIT 1`);
  t.equal(before!.name, '0005_cache_entries', 'the migrations before it stay applied');
  // The orphaned server session notices within a second that its client is gone
  // (client_connection_check_interval) and rolls back, long before its 4 s sleep would end.
  const killedAt = Date.now();
  for (let i = 0; i < 100 && (await sql(db.url, `SELECT 1 FROM pg_stat_activity WHERE pid = $1`, [backend])).length > 0; i++) await sleep(50);
  t.ok(Date.now() - killedAt < 3000, `the killed run's server session ended ${Date.now() - killedAt} ms after the kill`);
  const next = cli(['migrate', 'up'], env, config);
  t.equal(next.code, 0, next.code === 0 ? 'the next up exits 0' : next.stderr);
  t.match(next.stdout, /\+ 0006_slow/);
  t.same(await sql(db.url, `SELECT pid FROM pg_stat_activity WHERE pid = $1`, [backend]), [], 'the killed run\'s session is gone');
  t.same(await snapshot(db.url), { a: true, b: true, recorded: true }, 'the next up applied it whole');
  const [sum] = await sql<{ n: string }>(db.url, `SELECT count(*) AS n FROM jarvis_db_migrations WHERE name = '0006_slow'`);
  t.equal(sum!.n, '1', 'its checksum recorded once');
});
