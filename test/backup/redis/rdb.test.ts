/**
 * The RDB checker in Node (pure, on a fixture RDB written by redis-server 7.0 with every value
 * type: strings, integers, binary keys, lists, intsets, sets, listpack and skiplist sorted sets,
 * listpack and hashtable hashes, a stream with consumer groups and pending entries, a function
 * library, expiries, two databases).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { Crc64, crc64 } from '../../../src/backup/redis/crc64.js';
import { RdbScanner, scanRdb, type RdbSummary } from '../../../src/backup/redis/rdb.js';
import { runRedisCheckRdb } from '../../../src/backup/redis/redis-check-rdb.js';

const RDB = readFileSync(new URL('../fixtures/redis-7.0.rdb', import.meta.url));

function scanInChunks(data: Buffer, sizes: (i: number) => number): RdbSummary {
  const s = new RdbScanner();
  let i = 0;
  for (let off = 0; off < data.length; i++) {
    const n = Math.max(1, sizes(i));
    s.push(data.subarray(off, off + n));
    off += n;
  }
  return s.finish();
}

t.test('crc64 is Redis\'s Jones CRC: the test vector of crc64.c', async (t) => {
  t.equal(crc64('123456789'), 'e9c6d914c4b8d9ca');
  t.equal(crc64(''), '0000000000000000');
});

t.test('crc64 fed in pieces of any size equals crc64 of the whole', async (t) => {
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) & 255));
  const whole = crc64(data);
  for (const step of [1, 3, 7, 8, 9, 64, 1000]) {
    const c = new Crc64();
    for (let off = 0; off < data.length; off += step) c.update(data.subarray(off, off + step));
    t.equal(c.hex(), whole, `pieces of ${step}`);
  }
});

t.test('the walk counts keys and expires per database and verifies the stored CRC64', async (t) => {
  const s = await scanRdb(Readable.from([RDB]));
  t.equal(s.version, 10);
  t.equal(s.checksum, 'verified');
  t.equal(s.structure, 'walked');
  t.same(s.databases, { 0: { keys: 14, expires: 1 }, 3: { keys: 2, expires: 1 } });
  t.equal(s.keys, 16);
  t.equal(s.expires, 2);
  t.equal(s.aux['redis-ver'], '7.0.15');
  t.equal(s.crc64, Buffer.from(RDB.subarray(RDB.length - 8)).reverse().toString('hex'));
  t.equal(s.bytes, RDB.length);
});

t.test('the walk gives the same result whatever the chunk boundaries', async (t) => {
  const whole = await scanRdb(Readable.from([RDB]));
  t.same(scanInChunks(RDB, () => 1), whole, 'one byte at a time');
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let round = 0; round < 20; round++) t.same(scanInChunks(RDB, () => 1 + (rnd() % 700)), whole, `random split ${round}`);
});

t.test('one flipped bit anywhere fails the check', async (t) => {
  let failures = 0;
  const positions = [0, 5, 9, 30, 200, 1000, 5000, 10000, 15000, 20000, RDB.length - 12, RDB.length - 9, RDB.length - 3];
  for (const p of positions) {
    const bad = Buffer.from(RDB);
    bad[p]! ^= 0x10;
    try {
      scanInChunks(bad, () => 4096);
    } catch (e) {
      failures++;
      t.match((e as Error).message, /CRC64 mismatch|corrupt|not an RDB|truncated|unexpected|plausible/, `byte ${p}: ${(e as Error).message}`);
      continue;
    }
    t.fail(`a flipped bit at byte ${p} went unnoticed`);
  }
  t.equal(failures, positions.length);
});

t.test('a truncated RDB fails the check, wherever it is cut', async (t) => {
  for (const len of [0, 5, 9, 100, 10000, RDB.length - 9, RDB.length - 8, RDB.length - 1]) {
    t.throws(() => scanInChunks(RDB.subarray(0, len), () => 1000), /truncated|not an RDB|CRC64 mismatch/, `cut at ${len}`);
  }
});

t.test('bytes after the end of the RDB fail the check', async (t) => {
  t.throws(() => scanInChunks(Buffer.concat([RDB, Buffer.from('garbage')]), () => 4096), /after the end|CRC64|unexpected bytes/);
});

t.test('an RDB saved with rdbchecksum no (a zero checksum) is walked and reported as unchecked', async (t) => {
  const noSum = Buffer.from(RDB);
  noSum.fill(0, noSum.length - 8);
  const s = scanInChunks(noSum, () => 512);
  t.equal(s.checksum, 'disabled');
  t.equal(s.keys, 16);
});

t.test('something that is not an RDB is refused at once', async (t) => {
  t.throws(() => new RdbScanner().push(Buffer.from('+OK\r\nnot an rdb at all')), /not an RDB file/);
});

t.test('redis-check-rdb (installed here) passes the fixture and fails a damaged copy', async (t) => {
  const ok = await runRedisCheckRdb(Readable.from([RDB]));
  t.ok(ok.ran, 'the tool ran');
  if (!ok.ran) return;
  t.ok(ok.ok, ok.message);
  t.match(ok.message, /16 keys read/);
  const bad = Buffer.from(RDB);
  bad[9000]! ^= 0xff;
  const failed = await runRedisCheckRdb(Readable.from([bad]));
  t.ok(failed.ran && !failed.ok, failed.ran ? failed.message : '');
  const missing = await runRedisCheckRdb(Readable.from([RDB]), { JARVIS_REDIS_CHECK_RDB: 'no-such-redis-check-rdb' });
  t.same(missing, { ran: false, reason: 'no-such-redis-check-rdb is not installed' });
});
