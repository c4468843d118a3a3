/**
 * The keys of an RDB as the walk hands them over (RdbScanner.onKey, read by `verify --point`):
 * every key of every database on the fixture of every value type, whatever the chunk boundaries;
 * and on a redis-server of the sandbox, keys stored as integers and LZF-compressed keys decoded.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RdbScanner } from '../../../src/backup/redis/rdb.js';
import { withSandbox } from '../../helpers/sandbox.js';

/** The keys the walk hands over, `db:name`; throws unless it walked the whole file. */
function keysOf(data: Buffer, chunk: number): string[] {
  const s = new RdbScanner();
  const keys: string[] = [];
  s.onKey = (db, key) => keys.push(`${db}:${key.toString('latin1')}`);
  for (let off = 0; off < data.length; off += chunk) s.push(data.subarray(off, off + chunk));
  const { structure } = s.finish();
  if (structure !== 'walked') throw new Error(structure);
  return keys;
}

t.test('every key of every database of the fixture, whatever the chunk boundaries', async (t) => {
  const rdb = readFileSync(new URL('../fixtures/redis-7.0.rdb', import.meta.url));
  const whole = keysOf(rdb, rdb.length);
  t.same([...whole].sort(), ['0:bighash', '0:biglist', '0:bigz', '0:bin\0keyÿ', '0:int', '0:intset', '0:list', '0:long', '0:set', '0:smallh', '0:smallz', '0:str', '0:stream', '0:ttl', '3:other', '3:t2']);
  for (const chunk of [1, 7, 64, 4096]) t.same(keysOf(rdb, chunk), whole, `in chunks of ${chunk}`);
});

t.test('keys Redis stores as integers or LZF-compressed come back as they were written', async (t) => {
  const state = await withSandbox(t, ['redis']);
  const redis = new Redis(state.redis!.url);
  t.teardown(() => redis.quit());
  const keys = ['12345', '-7', `session:${'ab'.repeat(40)}`, `cache:${'x'.repeat(500)}:end`, 'short'];
  for (const k of keys) await redis.set(k, 'v');
  await redis.call('SAVE');
  const [, dir] = (await redis.call('CONFIG', 'GET', 'dir')) as string[];
  const [, file] = (await redis.call('CONFIG', 'GET', 'dbfilename')) as string[];
  const rdb = await readFile(join(dir!, file!));
  t.ok(rdb.includes(Buffer.from([0xc3])), 'the RDB holds an LZF-compressed string');
  t.same(keysOf(rdb, 1000).sort(), keys.map((k) => `0:${k}`).sort());
});
