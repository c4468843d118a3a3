/**
 * A stored Redis backup read back: its data file decrypted and decompressed while streamed,
 * what its manifest recorded, and a throwaway redis-server (loaded from the backup's RDB, or
 * empty) that restores and restore tests read from or write into.
 */
import { createWriteStream } from 'node:fs';
import { copyFile, link, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { JarvisError, messageOf } from '../../errors.js';
import type { RedisServer } from '../../scratch/servers.js';
import { RespConnection } from '../../services/redis-resp.js';
import { decryptor } from '../../storage/crypto.js';
import type { DriverContext } from '../driver.js';
import type { CatalogEntry, FileEntry } from '../storage.js';

/** Per-database counts as the manifest records them (`extra.databases`). */
export type DatabaseCounts = Record<string, { keys: number; expires: number }>;

/** `source` through `transforms` as one Readable; an error in any stage destroys it with that error. */
export function chain(source: Readable | (() => AsyncIterable<Buffer>), ...transforms: Transform[]): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  (pipeline as (...s: unknown[]) => Promise<void>)(source, ...transforms, out).catch((e: Error) => out.destroy(e));
  return out;
}

export function dataFile(entry: CatalogEntry): { name: string; gzip: boolean; file: FileEntry } {
  const f = entry.manifest.files.find((x) => /^(dump\.rdb|keys\.jdbr)/.test(x.name));
  if (!f) throw new JarvisError('BACKUP_INVALID', `backup ${entry.manifest.id} has no Redis data file`);
  return { name: f.name, gzip: /\.gz(\.enc)?$/.test(f.name), file: f };
}

/** The plain content of the backup's data file, decrypted and decompressed while streamed. */
export function openBackupData(entry: CatalogEntry, ctx: Pick<DriverContext, 'keyRing'>): Readable {
  const m = entry.manifest;
  const { name, gzip, file: stored } = dataFile(entry);
  const stages: Transform[] = [];
  if (m.encrypted) {
    if (!ctx.keyRing) throw new JarvisError('DECRYPT_FAILED', `backup ${m.id} is encrypted and no passphrase is configured`, { hint: 'set storage.encryption.passphraseEnv and that environment variable' });
    stages.push(decryptor(ctx.keyRing, name));
  }
  if (gzip) stages.push(createGunzip());
  const file = entry.store.read(entry.key, stored);
  return stages.length ? chain(file, ...stages) : file;
}

export function isRdb(entry: CatalogEntry): boolean {
  return entry.manifest.method === 'rdb';
}

export function recordedCounts(entry: CatalogEntry): DatabaseCounts {
  return (entry.manifest.extra.databases ?? {}) as DatabaseCounts;
}

export interface Throwaway { server: RedisServer; conn: RespConnection; stop(): Promise<void> }

/**
 * A lone redis-server in a hidden scratch dir beside the backup (`.restore-<id>-<pid>`, which
 * the debris cleaner removes if we are killed), loaded from the backup's RDB when `withRdb`.
 */
export async function throwawayServer(entry: CatalogEntry, ctx: DriverContext, withRdb: boolean, config: Record<string, string> = {}): Promise<Throwaway> {
  const scratchDir = await entry.store.scratchDirectory(entry.key);
  const scratch = scratchDir.path;
  const { startRedisServer, stopRedisServer } = await import('../../scratch/servers.js');
  let server: RedisServer | null = null;
  const cleanup = async () => {
    if (server) await stopRedisServer(server.pid).catch(() => undefined);
    await scratchDir.release();
  };
  try {
    if (withRdb) {
      const { name } = dataFile(entry);
      const target = join(scratch, 'dump.rdb');
      if (name === 'dump.rdb') {
        // Redis only reads it (save is off; a SAVE would write a new file and rename it).
        const local = await entry.store.openLocalDirectory(entry.key);
        try {
          await link(join(local.path, name), target).catch(() => copyFile(join(local.path, name), target));
        } finally {
          await local.release();
        }
      } else {
        ctx.progress.note('decoding the RDB for a throwaway redis-server');
        await pipeline(openBackupData(entry, ctx), createWriteStream(target, { mode: 0o600 }));
      }
    }
    ctx.progress.note(withRdb ? 'loading the RDB into a throwaway redis-server' : 'starting a throwaway redis-server');
    try {
      const rdbBytes = withRdb ? (await stat(join(scratch, 'dump.rdb'))).size : 0;
      server = await startRedisServer({
        dir: scratch, dbfilename: 'dump.rdb', config: { maxmemory: '0', ...config }, ownerPid: process.pid,
        // Loading runs at roughly 50 MB/s on a slow machine; never give up on a large RDB too early.
        startTimeoutMs: 60_000 + Math.ceil(rdbBytes / 50e6) * 1000,
      });
    } catch (e) {
      const missing = /ENOENT|cannot start redis-server/i.test(messageOf(e));
      throw new JarvisError(missing ? 'TOOL_MISSING' : 'RESTORE_FAILED', `cannot start a throwaway redis-server${withRdb ? ' to load the RDB' : ''}: ${messageOf(e)}`, {
        cause: e, hint: missing ? 'install redis-server (Debian: apt-get install redis-server); restoring an RDB backup loads it into one' : undefined,
      });
    }
    const conn = await RespConnection.open(server.url, { name: 'jarvis-db restore source' });
    const s = server;
    return { server: s, conn, stop: async () => { conn.close(); await cleanup(); } };
  } catch (e) {
    await cleanup();
    throw e;
  }
}


/** gzip's own checks failed (bad data, bad CRC32, truncated stream). */
export function isZlibError(e: unknown): boolean {
  return typeof (e as NodeJS.ErrnoException)?.code === 'string' && (e as NodeJS.ErrnoException).code!.startsWith('Z_');
}
