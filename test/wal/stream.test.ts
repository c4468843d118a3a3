/**
 * `wal stream` on the sandbox server (compiled CLI: build first): kill -9 of the stream and its
 * pg_receivewal in the middle of a segment under writes, several times, restarting it each time:
 * afterwards the archive holds every segment from the first received to the last completed, no
 * gap, each whole (never a `.partial`); the slot held what was not received.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gapsIn, segmentOfLsn, parseLsn } from '../../src/wal/segments.js';
import { readyToPush, removeHalfPadded } from '../../src/wal/stream.js';
import { freshDatabase, sql } from '../backup/fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const SEGMENT = 16 * 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

t.test('only completed segments and history files are pushed, history first', async (t) => {
  t.same(readyToPush(['000000020000000000000005', '000000010000000000000004.partial', 'stream.json', '00000002.history', '000000010000000000000004']),
    ['000000010000000000000004', '00000002.history', '000000020000000000000005']);
});

t.test('a .partial that pg_receivewal was killed while padding is removed; an empty or whole one is kept', async (t) => {
  const dir = t.testdir({ '000000010000000000000007.partial': Buffer.alloc(4096), '000000010000000000000006.partial': Buffer.alloc(8192), '000000010000000000000005.partial': '' });
  const lines: string[] = [];
  t.same(await removeHalfPadded(dir, 8192, (l) => lines.push(l)), ['000000010000000000000007.partial']);
  t.same((await readdir(dir)).sort(), ['000000010000000000000005.partial', '000000010000000000000006.partial']);
  t.match(lines[0], /4096 bytes, a segment pg_receivewal was killed while creating/);
});

t.test('kill -9 of the receiver mid-segment under writes, several times: no segment missing, none partial', async (t) => {
  const db = await freshDatabase(t, 'walstream');
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-stream-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'jarvis-db.yaml');
  const storage = join(dir, 'backups');
  await writeFile(config, ['version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', `  path: ${storage}`, ''].join('\n'));
  const slot = `jarvis_test_${process.pid}`;
  const env = { ...process.env, JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
  const state = async () => JSON.parse(await readFile(join(storage, 'wal-stream', 'stream.json'), 'utf8')) as { pid: number; receiverPid: number | null; archived: number };
  const archived = async () => (await readdir(join(storage, 'wal', '00000001')).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();

  let proc: ChildProcess | null = null;
  let lastStderr = '';
  const start = async () => {
    await rm(join(storage, 'wal-stream', 'stream.json'), { force: true });
    const p = spawn(process.execPath, [BIN, 'wal', 'stream', '--slot', slot], { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    lastStderr = '';
    p.stderr!.on('data', (d: Buffer) => { lastStderr += d.toString('utf8'); });
    proc = p;
    return waitFor('the receiver', async () => {
      if (p.exitCode !== null) throw new Error(`wal stream exited ${p.exitCode}: ${lastStderr}`);
      const s = await state();
      return s.pid === p.pid && s.receiverPid ? s : null;
    }).catch((e: Error) => { throw new Error(`${e.message}; stderr: ${lastStderr.split('\n').slice(-6).join(' / ')}`); });
  };
  const killAll = async (receiverPid: number | null) => {
    const p = proc!;
    const exited = new Promise<void>((r) => (p.exitCode !== null ? r() : p.on('exit', () => r())));
    // The receiver's pid is its guard's, the leader of pg_receivewal's process group.
    for (const pid of [-p.pid!, receiverPid ? -receiverPid : null]) { try { if (pid) process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await exited;
  };
  t.teardown(async () => {
    if (proc && proc.exitCode === null) { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } }
    await sleep(500);
    await sql(db.serverUrl, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`).catch(() => undefined);
  });

  await sql(db.url, 'CREATE TABLE load (id bigserial PRIMARY KEY, v text)');
  const first = await start();
  await waitFor('the slot to be active', async () => {
    const [r] = await sql(db.serverUrl, `SELECT active FROM pg_replication_slots WHERE slot_name = '${slot}'`);
    return (r!.rows[0] as { active?: boolean } | undefined)?.active;
  });
  const [lsn0] = await sql(db.serverUrl, 'SELECT pg_current_wal_lsn()::text AS l');
  const startSegment = segmentOfLsn(1, parseLsn((lsn0!.rows[0] as { l: string }).l), SEGMENT);

  let writing = true;
  const writer = (async () => {
    while (writing) {
      await sql(db.url, `INSERT INTO load (v) SELECT repeat(md5(i::text), 6) FROM generate_series(1, 20000) i`);
    }
  })();

  let receiverPid = first.receiverPid;
  for (let round = 0; round < 5; round++) {
    const before = (await archived()).length;
    await waitFor(`segments archived in round ${round}`, async () => (await archived()).length > before, 90_000);
    await sleep(60 + round * 130);
    await killAll(receiverPid);
    t.notOk((await archived()).some((n) => n.endsWith('.partial')), `no partial segment published (kill ${round + 1})`);
    receiverPid = (await start()).receiverPid;
  }
  writing = false;
  await writer;

  const [sw] = await sql(db.serverUrl, 'SELECT pg_walfile_name(pg_switch_wal()) AS last');
  const last = (sw!.rows[0] as { last: string }).last;
  await waitFor(`${last} archived`, async () => (await archived()).includes(last), 120_000);
  const p = proc!;
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  process.kill(p.pid!, 'SIGTERM');
  t.equal(await exited, 0, `wal stream stops cleanly on SIGTERM: ${lastStderr.split('\n').slice(-5).join('\n')}`);

  const names = (await archived()).filter((n) => /^[0-9A-F]{24}$/.test(n));
  t.ok(names.length >= 4, `${names.length} segments archived`);
  t.ok(names[0]! <= startSegment, `the archive starts at or before the segment being written when the stream started (${names[0]} <= ${startSegment})`);
  t.ok(names.at(-1)! >= last, 'and reaches the last completed segment');
  t.same(gapsIn(names, SEGMENT), [], 'no segment missing from the chain after the kills');
  for (const name of names) {
    const m = JSON.parse(await readFile(join(storage, 'wal', '00000001', name, 'segment.json'), 'utf8')) as { bytes: number };
    if (m.bytes !== SEGMENT) t.fail(`${name} is not a whole segment (${m.bytes} bytes)`);
  }
  t.same((await readdir(join(storage, 'wal-stream'))).filter((n) => /^[0-9A-F]{24}$/.test(n)), [], 'nothing completed left unpushed locally');
});
