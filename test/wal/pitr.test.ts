/**
 * The point-in-time recovery drill on the sandbox server, through the compiled CLI (build first):
 * a physical base backup; rows inserted with their times; remember T; more rows; DROP TABLE; the
 * WAL archived with `wal push` (as archive_command would, after pg_switch_wal); then
 * `restore latest --to-time T --target-dir X --start` gives exactly the rows committed before T,
 * the table present. A target outside the window is refused naming the window.
 */
import t from 'tap';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/scratch/servers.js';
import { freshDatabase, sql } from '../backup/fixture.js';
import { cli, eventsDigest, onPort, pgCtl, sleep, stopOnTeardown } from './pitr-fixture.js';





t.test('restore latest --to-time T --start recovers exactly the rows committed before T, the dropped table back', async (t) => {
  const db = await freshDatabase(t, 'pitr');
  // No segment after the base backup may be recycled before the test archives it.
  await sql(db.serverUrl, `ALTER SYSTEM SET wal_keep_size = '4GB'`);
  await sql(db.serverUrl, 'SELECT pg_reload_conf()');
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-pitr-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', `  path: ${join(dir, 'backups')}`,
    'backups:', '  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", timezone: UTC, compression: 1, keep: { last: 3 }, verify: checksum }', '',
  ].join('\n'));
  const env = { JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };

  await sql(db.url, `CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), v text)`);
  await sql(db.url, `INSERT INTO events (id, v) SELECT i, md5(i::text) FROM generate_series(1, 200) i`);
  const backup = cli(['backup', 'create', '--service', 'postgres'], env);
  t.equal(backup.code, 0, backup.stderr);
  for (let batch = 0; batch < 5; batch++) {
    await sql(db.url, `INSERT INTO events (id, v) SELECT i, md5(i::text) FROM generate_series(${1000 + batch * 100}, ${1000 + batch * 100 + 99}) i`);
  }
  await sleep(1100);
  const [now] = await sql(db.url, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`);
  const T = (now!.rows[0] as { t: string }).t;
  const atT = await eventsDigest(db.url);
  await sleep(1100);
  await sql(db.url, `INSERT INTO events (id, v) SELECT i, 'after T' FROM generate_series(5000, 5300) i`);
  await sql(db.url, 'DROP TABLE events');

  // What archive_command would have done: every completed segment pushed.
  const [info] = await sql(db.serverUrl, `SELECT pg_walfile_name(pg_switch_wal()) AS last, current_setting('data_directory') AS data`);
  const { last, data } = info!.rows[0] as { last: string; data: string };
  const segments = (await readdir(join(data, 'pg_wal'))).filter((n) => /^[0-9A-F]{24}$/.test(n) && n <= last).sort();
  t.ok(segments.length > 0);
  for (const name of segments) {
    const push = cli(['wal', 'push', join(data, 'pg_wal', name)], env);
    t.equal(push.code, 0, `push ${name}: ${push.stderr}`);
  }

  const status = cli(['wal', 'status', '--json'], env);
  t.equal(status.code, 0, status.stderr);
  const timeline = (JSON.parse(status.stdout) as { repositories: { timelines: { timeline: number; window: { from: string; to: string } | null; gaps: unknown[] }[] }[] }).repositories[0]!.timelines[0]!;
  t.equal(timeline.timeline, 1);
  t.ok(timeline.window, 'a recoverable window');
  t.ok(Date.parse(timeline.window!.from) < Date.parse(T) && Date.parse(T) < Date.parse(timeline.window!.to), 'T is inside it');

  const text = cli(['wal', 'status'], env);
  t.match(text.stdout, /^repository local \(.*\)\n  timeline 1: \d+ segments [0-9A-F]{24} – [0-9A-F]{24}, last archived .* ago\n    recoverable from \S+ to \S+ \(base backup \S+\)$/m);

  const outside = cli(['restore', 'latest', '--to-time', '2001-01-01T00:00:00Z', '--target-dir', join(dir, 'never')], env);
  t.equal(outside.code, 1);
  t.match(outside.stderr, /outside the recoverable window: the recoverable window is \S+ to \S+ on timeline 1/);
  t.notMatch(outside.stderr, /\n\s+at /);

  const port = await freePort();
  const target = join(dir, 'recovered');
  const restored = cli(['restore', 'latest', '--to-time', T, '--target-dir', target, '--start', '--port', String(port)], env);
  stopOnTeardown(t, target);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /recovery stopping before commit/);
  t.match(restored.stdout, /stop it with: .*pg_ctl -D /);
  t.notMatch(restored.stdout + restored.stderr, new URL(db.url).password, 'no password in the output');
  const recovered = onPort(db.url, port);
  t.equal(await eventsDigest(recovered), atT, 'exactly the rows committed before T');
  const [recovering] = await sql(recovered, 'SELECT pg_is_in_recovery() AS r');
  t.equal((recovering!.rows[0] as { r: boolean }).r, false, 'promoted');
});

t.test('restore-point NAME, then restore latest --to-name NAME: a stock pg_ctl start recovers to it and promotes', async (t) => {
  const db = await freshDatabase(t, 'pitrname');
  await sql(db.serverUrl, `ALTER SYSTEM SET wal_keep_size = '4GB'`);
  await sql(db.serverUrl, 'SELECT pg_reload_conf()');
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-pitr-name-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', `  path: ${join(dir, 'backups')}`,
    'backups:', '  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", keep: { last: 3 } }', '',
  ].join('\n'));
  const env = { JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
  t.equal(cli(['backup', 'create', '--service', 'postgres'], env).code, 0);
  await sql(db.url, `CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), v text)`);
  await sql(db.url, `INSERT INTO events (id, v) SELECT i, md5(i::text) FROM generate_series(1, 100) i`);
  const atPoint = await eventsDigest(db.url);
  const point = cli(['restore-point', 'before-drop'], env);
  t.equal(point.code, 0, point.stderr);
  t.match(point.stdout, /restore point "before-drop" created at LSN [0-9A-F]+\/[0-9A-F]+/);
  await sql(db.url, `INSERT INTO events (id, v) SELECT i, 'after' FROM generate_series(101, 150) i`);
  await sql(db.url, 'DROP TABLE events');
  const [info] = await sql(db.serverUrl, `SELECT pg_walfile_name(pg_switch_wal()) AS last, current_setting('data_directory') AS data`);
  const { last, data } = info!.rows[0] as { last: string; data: string };
  for (const name of (await readdir(join(data, 'pg_wal'))).filter((n) => /^[0-9A-F]{24}$/.test(n) && n <= last)) {
    t.equal(cli(['wal', 'push', join(data, 'pg_wal', name)], env).code, 0);
  }
  const target = join(dir, 'recovered');
  const restored = cli(['restore', 'latest', '--to-name', 'before-drop', '--target-dir', target], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /set to recover to name before-drop and promote: start it with .*pg_ctl -D /);
  const conf = await readFile(join(target, 'postgresql.auto.conf'), 'utf8');
  // As root the server runs as postgres, which cannot read the repositories: the WAL was fetched into pg_wal.
  t.match(conf, process.getuid?.() === 0 ? /^restore_command = '.*; false'$/m : /^restore_command = '.*test ! -f pg_wal\/%f && .* wal fetch %f %p'$/m);
  await t.rejects(stat(join(target, 'jarvis-db-prefetching')), 'the list of files still being fetched is gone once restore returns');
  t.match(conf, /^recovery_target_name = 'before-drop'$/m);
  await t.resolves(stat(join(target, 'recovery.signal')));

  // A stock pg_ctl start, as an operator would.
  const port = await freePort();
  stopOnTeardown(t, target);
  await pgCtl(['-D', target, '-l', join(target, 'stock-start.log'), '-o', `-p ${port} -c unix_socket_directories='' -c listen_addresses=127.0.0.1`, '-w', '-t', '300', 'start']);
  const recovered = onPort(db.url, port);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const r = await sql(recovered, 'SELECT pg_is_in_recovery() AS r').catch(() => null);
    if (r && (r[0]!.rows[0] as { r: boolean }).r === false) break;
    if (Date.now() > deadline) throw new Error('the restored copy did not finish recovery');
    await sleep(300);
  }
  t.equal(await eventsDigest(recovered), atPoint, 'the rows as they were at the restore point');
});
