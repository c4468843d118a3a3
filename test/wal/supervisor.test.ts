/**
 * The daemon's WAL stream: the /metrics families (pure), the back-off, and on the sandbox server
 * a real daemon with pitr.enabled that runs pg_receivewal, restarts it after a kill -9, keeps the
 * chain whole across a kill -9 of the receiver and of the daemon, and reports the stream in /metrics.
 */
import t from 'tap';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/scratch/servers.js';
import { gapsIn } from '../../src/wal/segments.js';
import { backoffMs, walFamilies } from '../../src/wal/supervisor.js';
import { freshDatabase, sql } from '../backup/fixture.js';
import { startDaemon } from '../helpers/daemon-process.js';

t.test('the back-off doubles from 1 s to at most 60 s', async (t) => {
  t.same([0, 1, 2, 3, 5, 6, 10].map(backoffMs), [1000, 2000, 4000, 8000, 32000, 60000, 60000]);
});

t.test('metrics: stream up and restarts; the lag and the segment age are left to the health check\'s wal.* (one family each in /metrics)', async (t) => {
  const families = walFamilies({ running: true, restarts: 2, lastArchived: '000000010000000000000007', lastArchivedAt: new Date('2026-12-03T08:00:00Z'), caughtUpAt: new Date('2026-12-03T08:00:07Z') });
  const value = (name: string) => families.find((f) => f.name === name)?.samples[0]?.value;
  t.equal(value('jarvis_db_wal_stream_up'), 1);
  t.equal(value('jarvis_db_wal_stream_restarts_total'), 2);
  t.same(families.map((f) => f.name), ['jarvis_db_wal_stream_up', 'jarvis_db_wal_stream_restarts_total']);
});

t.test('the daemon runs the WAL stream when pitr.enabled, restarts it after kill -9, shows it in /metrics, and a killed daemon loses no segment', async (t) => {
  const db = await freshDatabase(t, 'walsup');
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-walsup-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const slot = `jarvis_dtest_${process.pid}`;
  const storage = join(dir, 'backups');
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres:', '    url: "${JARVIS_PG_URL}"', `    pitr: { enabled: true, slot: ${slot} }`,
    'storage:', `  path: ${storage}`,
    'backups:', '  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", keep: { last: 2 } }', '',
  ].join('\n'));
  t.teardown(async () => {
    await new Promise((r) => setTimeout(r, 500));
    await sql(db.serverUrl, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`).catch(() => undefined);
  });
  const port = await freePort();
  // The server of freshDatabase's sandbox: the daemon needs no other service.
  const state = { formatVersion: 1 as const, dir, createdAt: new Date().toISOString(), stopped: [] };
  const daemon = startDaemon(t, { config, port, state, env: { JARVIS_PG_URL: db.url } });
  const receiverStarted = (n: number) => daemon.lines.filter((l) => l.event === 'wal_stream' && /pg_receivewal on slot/.test(String(l.msg))).length >= n;
  await daemon.until('the WAL stream', () => receiverStarted(1), 60_000);
  const stream = JSON.parse(await readFile(join(storage, 'wal-stream', 'stream.json'), 'utf8')) as { receiverPid: number };
  process.kill(-stream.receiverPid, 'SIGKILL');
  await daemon.until('a restart', () => daemon.lines.some((l) => l.event === 'wal_stream_restart'), 30_000);
  await daemon.until('the WAL stream again', () => receiverStarted(2), 30_000);

  await sql(db.url, 'CREATE TABLE w AS SELECT i, md5(i::text) AS v FROM generate_series(1, 50000) i');
  const [sw] = await sql(db.serverUrl, 'SELECT pg_walfile_name(pg_switch_wal()) AS last');
  const last = (sw!.rows[0] as { last: string }).last;
  const archived = async () => (await readdir(join(storage, 'wal', '00000001')).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
  const deadline = Date.now() + 60_000;
  while (!(await archived()).includes(last) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const names = await archived();
  t.ok(names.includes(last), `${last} archived by the daemon's stream`);
  t.same(gapsIn(names, 16 * 1024 * 1024), [], 'no gap across the restart');

  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(metrics, /^jarvis_db_wal_stream_up 1$/m);
  t.match(metrics, /^jarvis_db_wal_stream_restarts_total 1$/m);
  t.match(metrics, /^jarvis_db_wal_receiver_running [01]$/m);
  t.equal(metrics.match(/^# TYPE jarvis_db_wal_archive_lag_seconds /gm)?.length ?? 0, metrics.includes('jarvis_db_wal_archive_lag_seconds ') ? 1 : 0, 'at most one lag family');

  // kill -9 of the daemon itself: the next one resumes from the slot and the staging directory.
  daemon.signal('SIGKILL');
  await daemon.exited;
  const port2 = await freePort();
  const again = startDaemon(t, { config, port: port2, state, env: { JARVIS_PG_URL: db.url } });
  await again.until('the WAL stream of the next daemon', () => again.lines.some((l) => l.event === 'wal_stream' && /pg_receivewal on slot/.test(String(l.msg))), 60_000);
  await sql(db.url, 'INSERT INTO w SELECT i, md5(i::text) FROM generate_series(1, 50000) i');
  const [sw2] = await sql(db.serverUrl, 'SELECT pg_walfile_name(pg_switch_wal()) AS last');
  const last2 = (sw2!.rows[0] as { last: string }).last;
  const deadline2 = Date.now() + 60_000;
  while (!(await archived()).includes(last2) && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 200));
  const after = await archived();
  t.ok(after.includes(last2), `${last2} archived after the daemon was killed`);
  t.same(gapsIn(after, 16 * 1024 * 1024), [], 'no gap across the kill -9 of the daemon');
  again.signal('SIGTERM');
  t.equal((await again.exited).code, 0, 'the daemon stops cleanly, the stream with it');
});
