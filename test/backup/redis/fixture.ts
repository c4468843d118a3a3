/**
 * Fixture for the Redis backup integration tests: sandbox Redis servers, a `Desired` pointing
 * at one, a rich keyspace to back up, and a walk of every key (type, value digest, expiry to
 * the second) to compare two servers with.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BackupSchedule, Desired } from '../../../src/config/types.js';
import { connectRedis } from '../../../src/services/redis.js';
import { withSandbox } from '../../helpers/sandbox.js';

type T = { teardown(fn: () => unknown): void };

export interface TestRedis { url: string; password: string; port: number; pid: number; dataDir: string }

/** A fresh sandbox Redis (password-protected, repl-diskless-sync-delay 0), stopped at teardown. */
export async function redisServer(t: T): Promise<TestRedis> {
  const state = await withSandbox(t, ['redis']);
  return state.redis!;
}

export function redisDesired(url: string, storagePath: string, schedule: Partial<BackupSchedule> = {}, options: { databases?: number[]; encryption?: string } = {}): Desired {
  return {
    version: 1, project: 'jarvis', configFile: `${storagePath}/jarvis-db.yaml`, configHash: 'test',
    services: { redis: { url, ...(options.databases ? { databases: options.databases } : {}) } },
    storage: { path: storagePath, ...(options.encryption ? { encryption: { passphraseEnv: options.encryption } } : {}) },
    backups: [{ name: 'hourly', service: 'redis', cron: '0 * * * *', timezone: 'UTC', keep: { last: 3 }, verify: 'checksum', method: 'rdb', path: 'backups[0]', ...schedule }],
    retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}

/** A Desired for the same storage pointing at another server (the restore target). */
export function withUrl(desired: Desired, url: string): Desired {
  return { ...desired, services: { ...desired.services, redis: { ...desired.services.redis!, url } } };
}

export async function withClient<R>(url: string, fn: (c: Redis) => Promise<R>, db = 0): Promise<R> {
  const c = await connectRedis(url, { db });
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

export const BINARY_KEY = Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a, 0x20]);
export const FIVE_MB = 5 * 1024 * 1024;

/**
 * Every type in its encodings (small listpack / intset forms and large hashtable / skiplist /
 * quicklist ones), binary keys and values, streams with consumer groups and pending entries,
 * keys with TTL, a 5 MB value, and a second database.
 */
export async function populateRich(url: string): Promise<void> {
  await withClient(url, async (c) => {
    const p = c.pipeline();
    p.set('str', 'hello');
    p.set('int', '12345');
    p.set('empty', '');
    p.set('unicode', 'ünïcødé 🙂');
    p.set(BINARY_KEY, randomBytes(1000));
    p.set('all-bytes', Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
    p.set('big', randomBytes(FIVE_MB));
    p.hset('hash:small', { a: '1', b: '2', 'bin\x00field': Buffer.from([0, 255]) });
    for (let i = 0; i < 600; i++) p.hset('hash:big', `field${i}`, `value-${i}-${'x'.repeat(i % 90)}`);
    p.rpush('list:small', 'a', 'b', 'c', '1', '2');
    for (let i = 0; i < 3000; i += 100) p.rpush('list:big', ...Array.from({ length: 100 }, (_, j) => `item-${i + j}-${'y'.repeat((i + j) % 60)}`));
    p.sadd('set:int', 1, 2, 3, 99999);
    for (let i = 0; i < 400; i++) p.sadd('set:big', `member-${i}`);
    p.zadd('zset:small', 1, 'a', 2.5, 'b', -3, 'c');
    for (let i = 0; i < 400; i++) p.zadd('zset:big', i / 7, `z${i}`);
    p.zadd('zset:big', 'inf', 'top', '-inf', 'bottom');
    for (let i = 0; i < 300; i++) p.xadd('stream', '*', 'n', String(i), 'text', `event ${i}`);
    p.set('session:1', 'user-1', 'EX', 3600);
    p.set('session:2', randomBytes(64), 'PX', 86_400_000);
    p.hset('cache:user:1', { name: 'Ann', visits: '3' });
    p.expire('cache:user:1', 7200);
    p.rpush('queue:ttl', 'job1', 'job2');
    p.pexpireat('queue:ttl', Date.now() + 5 * 86_400_000 + 123);
    await p.exec();
    await c.xgroup('CREATE', 'stream', 'workers', '0');
    await c.xreadgroup('GROUP', 'workers', 'alice', 'COUNT', 20, 'STREAMS', 'stream', '>');
    await c.xreadgroup('GROUP', 'workers', 'bob', 'COUNT', 7, 'STREAMS', 'stream', '>');
    await c.xgroup('CREATE', 'stream', 'idle', '$');
  });
  await withClient(url, async (c) => {
    const p = c.pipeline();
    p.set('db1:str', 'in database one');
    p.sadd('db1:set', 'x', 'y');
    p.set('db1:ttl', 'soon enough', 'EX', 9000);
    await p.exec();
  }, 1);
}

export interface KeyView { type: string; expiresAtSecond: number | null; digest: string }

function sha(parts: (Buffer | string)[]): string {
  const h = createHash('sha256');
  for (const p of parts) { h.update(typeof p === 'string' ? Buffer.from(p) : p); h.update('\u0000|'); }
  return h.digest('hex');
}

const sortBuffers = (a: Buffer[]) => [...a].sort(Buffer.compare);

/** Every key of `db`: type, digest of its value, absolute expiry rounded to the second. Keyed by the key's hex. */
export async function walk(url: string, db: number): Promise<Record<string, KeyView>> {
  return withClient(url, async (c) => {
    const out: Record<string, KeyView> = {};
    let cursor = '0';
    do {
      const [next, keys] = await c.scanBuffer(cursor, 'COUNT', 500);
      cursor = String(next);
      for (const key of keys) {
        const type = await c.type(key);
        const at = await c.pexpiretime(key);
        let digest: string;
        switch (type) {
          case 'string': digest = sha([(await c.getBuffer(key))!]); break;
          case 'hash': {
            const all = await c.hgetallBuffer(key);
            digest = sha(Object.entries(all).sort(([a], [b]) => (a < b ? -1 : 1)).flatMap(([f, v]) => [f, v]));
            break;
          }
          case 'list': digest = sha(await c.lrangeBuffer(key, 0, -1)); break;
          case 'set': digest = sha(sortBuffers(await c.smembersBuffer(key))); break;
          case 'zset': digest = sha(await c.zrange(key, '0', '-1', 'WITHSCORES')); break;
          case 'stream': {
            const entries = await c.xrange(key, '-', '+');
            const groups = (await c.call('XINFO', 'GROUPS', key)) as unknown[];
            const details: unknown[] = [];
            for (const g of groups as unknown[][]) {
              const name = String(g[1]);
              details.push(g, await c.call('XINFO', 'CONSUMERS', key, name).then((cs) => (cs as unknown[][]).map((x) => [x[1], x[3]])), await c.xpending(key, name));
            }
            digest = sha([JSON.stringify(entries), JSON.stringify(details)]);
            break;
          }
          default: digest = `unexpected type ${type}`;
        }
        out[key.toString('hex')] = { type, expiresAtSecond: at < 0 ? null : Math.round(at / 1000), digest };
      }
    } while (cursor !== '0');
    return out;
  }, db);
}

export async function dbsize(url: string, db: number): Promise<number> {
  return withClient(url, (c) => c.dbsize(), db);
}
