/**
 * Creating a Redis backup (the methods are described in driver.ts): `rdb`, a point-in-time RDB
 * received over the replication protocol and checked while it streams; `logical`, every key of
 * the chosen databases by SCAN + pipelined DUMP, in the record format of logical.ts.
 */
import { createGzip } from 'node:zlib';
import type { BackupSchedule } from '../../config/types.js';
import { formatBytes, formatCount, plural } from '../../render/format.js';
import { JarvisError } from '../../errors.js';
import { redactUrl } from '../../services/redact.js';
import { redisUrl } from '../../services/redis.js';
import { openRdbSnapshot } from '../../services/redis-replication.js';
import { RespConnection } from '../../services/redis-resp.js';
import type { DriverContext } from '../driver.js';
import { testPausePoint, type BackupWriter, type ManifestFields } from '../storage.js';
import { dumpKeys, keyCounts, majorVersion } from './keys.js';
import { LogicalEncoder } from './logical.js';
import { RdbCheckStream, RdbError } from './rdb.js';
import { chain, type DatabaseCounts } from './stored.js';

export const RDB_FORMAT = 'rdb';
export const LOGICAL_FORMAT = 'jarvis-redis-keys-1';

export function compressionLevel(schedule: Pick<BackupSchedule, 'compression' | 'method'>): number {
  return schedule.compression ?? (schedule.method === 'logical' ? 1 : 0);
}

/** The stored file name: `dump.rdb` / `keys.jdbr`, `.gz` when compressed, `.enc` when encrypted. */
export function dataFileName(method: 'rdb' | 'logical', level: number, encrypted: boolean): string {
  return `${method === 'rdb' ? 'dump.rdb' : 'keys.jdbr'}${level > 0 ? '.gz' : ''}${encrypted ? '.enc' : ''}`;
}

function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
}

async function createRdb(schedule: BackupSchedule, ctx: DriverContext, writer: BackupWriter, url: string): Promise<ManifestFields> {
  const level = compressionLevel(schedule);
  ctx.progress.note(`SYNC from ${redactUrl(url)}`);
  const snapshot = await openRdbSnapshot(url);
  const check = new RdbCheckStream(() => testPausePoint('dump-running', ctx.env));
  const source = level > 0 ? chain(snapshot.stream, check, createGzip({ level })) : chain(snapshot.stream, check);
  const stop = every(1000, () => ctx.progress.note(`received ${formatBytes(snapshot.received())} of RDB`));
  try {
    await writer.writeStream(dataFileName('rdb', level, writer.encrypted), source);
  } catch (e) {
    snapshot.stream.destroy();
    if (e instanceof RdbError) throw new JarvisError('BACKUP_FAILED', `the RDB sent by Redis at ${redactUrl(url)} is damaged: ${e.message}`, { cause: e });
    throw e;
  } finally {
    stop();
  }
  const s = check.summary!;
  return {
    method: 'rdb',
    format: RDB_FORMAT,
    serverVersion: snapshot.serverVersion ?? s.aux['redis-ver'],
    toolVersion: `jarvis-db replication client (SYNC, ${snapshot.header.transfer === 'eof-mark' ? 'diskless $EOF transfer' : 'disk-based $<length> transfer'})`,
    sourceBytes: s.bytes,
    compression: level > 0 ? `gzip:${level}` : 'none',
    extra: {
      rdb: {
        version: s.version, bytes: s.bytes, crc64: s.crc64, checksum: s.checksum, structure: s.structure,
        transfer: snapshot.header.transfer, redisVersion: s.aux['redis-ver'] ?? null, usedMemory: s.aux['used-mem'] ? Number(s.aux['used-mem']) : null,
      },
      databases: s.databases,
      keys: s.keys,
      expires: s.expires,
    },
  };
}

async function createLogical(schedule: BackupSchedule, ctx: DriverContext, writer: BackupWriter, url: string): Promise<ManifestFields> {
  const level = compressionLevel(schedule);
  const scan = await RespConnection.open(url, { name: 'jarvis-db logical backup' });
  let dump: RespConnection | null = null;
  try {
    const server = await scan.info('server');
    const memory = await scan.info('memory').catch(() => ({} as Record<string, string>));
    const configured = ctx.desired.services.redis?.databases;
    const dbs = configured ? [...new Set(configured)].sort((a, b) => a - b) : [...(await keyCounts(scan)).keys()].sort((a, b) => a - b);
    const expected = [...(await keyCounts(scan, dbs)).values()].reduce((a, b) => a + b, 0);
    const absoluteExpiry = majorVersion(server.redis_version) >= 7;
    dump = await RespConnection.open(url, { name: 'jarvis-db logical backup' });
    const encoder = new LogicalEncoder();
    const expires = new Map<number, number>();
    let seen = 0;
    const stop = every(1000, () => { ctx.progress.note(`dumped ${formatCount(seen)} of about ${plural(expected, 'key')}`); ctx.progress.update(Math.min(seen, expected), expected); });
    const scanConn = scan;
    const dumpConn = dump;
    async function* records(): AsyncGenerator<Buffer> {
      let paused = false;
      for await (const batch of dumpKeys(scanConn, dumpConn, dbs, { absoluteExpiry, onBatch: (n) => { seen += n; } })) {
        for (const r of batch) {
          encoder.add(r);
          if (r.expireAt !== -1) expires.set(r.db, (expires.get(r.db) ?? 0) + 1);
        }
        yield* encoder.take();
        if (!paused) { paused = true; await testPausePoint('dump-running', ctx.env); }
      }
      yield* encoder.finish();
    }
    const source = level > 0 ? chain(records, createGzip({ level })) : chain(records);
    try {
      await writer.writeStream(dataFileName('logical', level, writer.encrypted), source);
    } finally {
      stop();
    }
    const trailer = encoder.trailer();
    const databases: DatabaseCounts = {};
    for (const [db, keys] of Object.entries(trailer.databases)) databases[db] = { keys, expires: expires.get(Number(db)) ?? 0 };
    return {
      method: 'logical',
      format: LOGICAL_FORMAT,
      serverVersion: server.redis_version,
      toolVersion: `jarvis-db SCAN + DUMP + ${absoluteExpiry ? 'PEXPIRETIME' : 'PTTL'}`,
      sourceBytes: memory.used_memory_dataset ? Number(memory.used_memory_dataset) : memory.used_memory ? Number(memory.used_memory) : undefined,
      compression: level > 0 ? `gzip:${level}` : 'none',
      extra: {
        coveredDatabases: dbs,
        databases,
        keys: trailer.keys,
        expires: [...expires.values()].reduce((a, b) => a + b, 0),
      },
    };
  } finally {
    scan.close();
    dump?.close();
  }
}

export async function create(schedule: BackupSchedule, ctx: DriverContext, writer: BackupWriter): Promise<ManifestFields> {
  const url = redisUrl(ctx.desired);
  return schedule.method === 'logical' ? createLogical(schedule, ctx, writer, url) : createRdb(schedule, ctx, writer, url);
}
