/**
 * kill -9 of `jarvis-db restore` (compiled CLI: build first). pg_restore must die with it, and
 * the target must say that it is the leftover of an interrupted restore until a restore has
 * verified. The moment: a CHECK constraint of the backed-up table takes a shared advisory lock
 * per row, and the test holds that lock exclusively in the target database, so pg_restore is
 * stuck in its COPY (still running, still writing) for as long as the test wants.
 */
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { sleep } from '../../src/platform/processes.js';
import { freshDatabase, sql, withDb } from './fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const GATE = 4242;

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The pids of pg_restore processes writing into `database` (from /proc). */
function pgRestoresInto(database: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try { argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    if (argv[0]?.endsWith('pg_restore') && argv.includes(database)) out.push(Number(name));
  }
  return out;
}

/** Polls until no pg_restore writes into `database`, or `ms` pass; the pids still there. */
async function pgRestoresAfter(database: string, ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = pgRestoresInto(database);
    if (left.length === 0 || Date.now() > deadline) return left;
    await sleep(100);
  }
}

async function setup(t: Test) {
  const db = await freshDatabase(t);
  await sql(db.url, `
    CREATE FUNCTION public.gate(int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(${GATE}); RETURN true; END $$;
    CREATE TABLE gated (id int CHECK (public.gate(id))); INSERT INTO gated SELECT generate_series(1, 2000);
    CREATE TABLE plain (id int, v text); INSERT INTO plain SELECT i, md5(i::text) FROM generate_series(1, 5000) i;`);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./backups',
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", timezone: UTC, format: directory, jobs: 2, keep: { last: 3 } }', '',
  ].join('\n'));
  const env = { JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
  const created = cli(['backup', 'create', '--service', 'postgres', '--json'], env);
  t.equal(created.code, 0, created.stderr);
  const id = (JSON.parse(cli(['backup', 'list', '--json'], env).stdout) as { backups: { id: string }[] }).backups[0]!.id;
  return { db, env, id };
}

/** Starts `jarvis-db restore` and returns once its pg_restore waits on the gate held by `holder`; kill -9 of jarvis-db alone then. */
async function killRestoreWhileWriting(t: Test, env: Record<string, string>, args: string[], target: string, serverUrl: string) {
  const holder = new pg.Client({ connectionString: withDb(serverUrl, target) });
  await holder.connect();
  await holder.query('SELECT pg_advisory_lock($1)', [GATE]);
  const proc = spawn(process.execPath, [BIN, 'restore', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  t.teardown(() => { for (const pid of pgRestoresInto(target)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  const watcher = new pg.Client({ connectionString: serverUrl });
  await watcher.connect();
  try {
    // pg_restore's COPY waiting on the gate: it is running and has written into the target.
    for (let i = 0; ; i++) {
      const r = await watcher.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_restore' AND wait_event = 'advisory'`, [target]);
      if (r.rowCount) break;
      if (i > 600) throw new Error('pg_restore never reached the gate');
      await sleep(50);
    }
  } finally {
    await watcher.end();
  }
  t.ok(pgRestoresInto(target).length > 0, 'pg_restore is running when jarvis-db is killed');
  process.kill(proc.pid!, 'SIGKILL');
  await exited;
  return { release: () => holder.end() };
}

t.test('kill -9 of restore leaves no pg_restore; the re-run names the interrupted restore and --force replaces it', async (t) => {
  const { db, env, id } = await setup(t);
  // An existing empty database is a valid target: the restore does not create it.
  const target = `${db.name}_target`;
  await sql(db.serverUrl, `CREATE DATABASE ${target}`);
  const { release } = await killRestoreWhileWriting(t, env, [id, '--target-db', target], target, db.serverUrl);
  t.same(await pgRestoresAfter(target, 5000), [], 'no pg_restore left running after jarvis-db died');
  await release();

  const again = cli(['restore', id, '--target-db', target], env);
  t.equal(again.code, 1, again.stdout);
  t.match(again.stderr, new RegExp(`(?:^|\n)error: database "${target}" is the leftover of an interrupted restore of ${id} started at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z; re-run with --force to replace it\\n$`));
  const forced = cli(['restore', id, '--target-db', target, '--force'], env);
  t.equal(forced.code, 0, forced.stderr);
  t.match(forced.stdout, /2 tables, 7,000 rows, row counts match/);
  const comment = await sql(db.serverUrl, `SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = '${target}'`);
  t.equal(comment[0]!.rows[0]!.c, null, 'the verified restore cleared the mark');
  t.equal(cli(['restore', id, '--target-db', target], env).code, 1, 'a verified target is refused as not empty, not as a leftover');
});

t.test('a database the interrupted restore created is dropped and restored again with --force', async (t) => {
  const { db, env, id } = await setup(t);
  const target = `${db.name}_restore_${id.toLowerCase().replace(/[^a-z0-9]/g, '_')}`.slice(0, 63);
  const proc = spawn(process.execPath, [BIN, 'restore', id], { env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: 'restore-running' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  await new Promise<void>((resolve) => {
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr += d; if (stderr.includes('test pause at restore-running')) resolve(); });
    proc.on('exit', () => resolve());
  });
  process.kill(proc.pid!, 'SIGKILL');
  await exited;
  t.same(await pgRestoresAfter(target, 5000), [], 'no pg_restore left running');
  const again = cli(['restore', id], env);
  t.equal(again.code, 1);
  t.match(again.stderr, `database "${target}" is the leftover of an interrupted restore of ${id}`);
  await sql(withDb(db.serverUrl, target), 'CREATE TABLE debris (id int)');
  const forced = cli(['restore', id, '--force'], env);
  t.equal(forced.code, 0, forced.stderr);
  t.match(forced.stdout, /2 tables, 7,000 rows, row counts match/, 'replaced: only the backup\'s tables, debris gone');
});
