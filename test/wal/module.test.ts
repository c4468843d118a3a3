/**
 * PITR in plan and health on the sandbox server (compiled CLI: build first): with pitr on and the
 * slot missing, `plan` shows the not-ready findings; once `wal stream` runs (rpo 4s) a single
 * insert on a quiet server is archived within about the rpo (the stream switches the segment),
 * the findings are gone, and `health check --format prometheus` passes `promtool check metrics`.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshDatabase, sql } from '../backup/fixture.js';
import { cli, sleep } from './pitr-fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

t.test('plan: not ready without the slot; after wal stream, a quiet insert archived within the rpo and no finding; health passes promtool', async (t) => {
  const db = await freshDatabase(t, 'walplan');
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-walplan-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const slot = `jarvis_plan_${process.pid}`;
  const storage = join(dir, 'backups');
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres:', '    url: "${JARVIS_PG_URL}"', `    pitr: { enabled: true, slot: ${slot}, rpo: 4s }`,
    'storage:', `  path: ${storage}`,
    'backups:', '  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", keep: { last: 2 } }', '',
  ].join('\n'));
  const env = { JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
  t.teardown(async () => {
    await sleep(500);
    await sql(db.serverUrl, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`).catch(() => undefined);
  });
  const walFindings = () => {
    const r = cli(['plan', '--format', 'json'], env);
    t.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { findings: { check: string; status: string; message: string }[] }).findings.filter((f) => f.check.startsWith('wal.'));
  };

  const before = walFindings();
  t.match(before.map((f) => `${f.check} ${f.status}`), ['wal.ready.slot CRITICAL', 'wal.ready.receiver CRITICAL', 'wal.archive_lag WARNING', 'wal.base_backup WARNING']);
  t.match(before[0]!.message, new RegExp(`slot ${slot} does not exist`));

  let stream: ChildProcess | null = null;
  let log = '';
  t.teardown(async () => {
    if (stream && stream.exitCode === null) {
      process.kill(-stream.pid!, 'SIGTERM');
      await new Promise((r) => stream!.once('exit', r));
    }
  });
  stream = spawn(process.execPath, [BIN, 'wal', 'stream'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  stream.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
  stream.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const archived = async () => (await readdir(join(storage, 'wal', '00000001')).catch(() => [] as string[])).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  const waitFor = async (what: string, ok: () => Promise<boolean>, ms: number) => {
    const deadline = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stream log:\n${log}`);
      await sleep(200);
    }
  };
  // The stream switches away from whatever the server wrote before it started, then goes quiet.
  await waitFor('a first segment archived', async () => (await archived()).length > 0, 30_000);
  t.equal(cli(['backup', 'create', '--service', 'postgres'], env).code, 0, 'a base backup');
  await sleep(3000);
  const settled = await archived();

  const [w] = await sql(db.serverUrl, `SELECT pg_walfile_name(pg_current_wal_lsn()) AS seg`);
  const insertedIn = (w!.rows[0] as { seg: string }).seg;
  const at = Date.now();
  await sql(db.url, 'CREATE TABLE quiet (i int); INSERT INTO quiet VALUES (1)');
  await waitFor('the insert archived', async () => (await archived()).some((n) => n >= insertedIn && !settled.includes(n)), 15_000);
  const took = (Date.now() - at) / 1000;
  t.ok(took < 8, `the segment with a single insert was archived ${took.toFixed(1)} s later (rpo 4 s)`);
  t.match(log, /switched the WAL segment \(pg_switch_wal\)/);

  // Quiet: what the server writes after a switch (a standby snapshot) does not make it switch again, nor look late.
  const quietSet = await archived();
  await sleep(12_000);
  t.same((await archived()).filter((n) => !quietSet.includes(n)), [], 'no further switch on a quiet server');
  t.same(walFindings(), [], 'no PITR finding once the stream runs, the base backup exists and the archive is caught up');

  const health = spawnSync(process.execPath, [BIN, 'health', 'check', '--format', 'prometheus'], { env: { ...process.env, ...env }, encoding: 'utf8' });
  t.match(health.stdout, /^jarvis_db_wal_receiver_running 1$/m);
  t.match(health.stdout, /^jarvis_db_wal_archive_lag_seconds 0$/m);
  t.match(health.stdout, /^jarvis_db_wal_window_start_timestamp_seconds\{repository="local"\} [0-9.e+]+$/m);
  t.match(health.stdout, /^jarvis_db_wal_last_archived_segment_age_seconds [0-9.e+]+$/m);
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: health.stdout, encoding: 'utf8' });
  t.equal(promtool.error, undefined, 'promtool runs (Debian: apt-get install prometheus)');
  t.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);
});
