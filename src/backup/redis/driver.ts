/**
 * The Redis backup driver: restore and verification here, creation in create.ts, the stored
 * file read back and the throwaway redis-server in stored.ts.
 *
 * - `method: rdb` (default): a point-in-time RDB over the replication protocol
 *   (services/redis-replication.ts), walked and CRC64-checked while it streams (rdb.ts), optionally
 *   gzip-compressed, into `dump.rdb[.gz][.enc]`. A server that forbids SYNC gets a clear error
 *   that points to `method: logical`.
 * - `method: logical`: every key of the chosen databases by SCAN + pipelined DUMP and
 *   PEXPIRETIME (keys.ts), in the record format of logical.ts, gzip-compressed by
 *   default, into `keys.jdbr[.gz][.enc]`.
 * - Restore into the configured Redis: logical records by pipelined RESTORE … ABSTTL; an RDB
 *   by loading it into a throwaway redis-server (the sandbox's) and copying its keys the same
 *   way, `--force` with REPLACE;
 *   `--flush` empties the target first (destructive, opt-in).
 *   A target holding any key in the databases restored into is refused unless `--force`
 *   (merge) or `--flush`; a key marks it incomplete until the restore verified.
 * - Verification: the content check re-reads the stored file (CRC64 and walk of an RDB plus
 *   `redis-check-rdb` when installed; the records and end record of a logical backup); the
 *   restore test loads it into a throwaway server and compares key counts per database with
 *   the manifest.
 *
 * Compression: `compression` is a gzip level; 0 (none) by default for RDB, which Redis already
 * compresses per value with LZF, and 1 for logical backups. Node 20's zlib has no zstd.
 */
import { formatCount, plural } from '../../render/format.js';
import { JarvisError, messageOf } from '../../errors.js';
import { redactUrl } from '../../services/redact.js';
import { redisUrl } from '../../services/redis.js';
import { RespConnection } from '../../services/redis-resp.js';
import { CommandBuffer, RespError } from '../../services/redis-resp-codec.js';
import type { BackupDriver, DriverContext, RestoreOptions, RestoreResult } from '../driver.js';
import { leftoverRefusal, markerText, parseMarker, type RestoreMarker } from '../restore-marker.js';
import { testPausePoint, type CatalogEntry } from '../storage.js';
import { create } from './create.js';
import { keyCounts, majorVersion, dumpKeys, restoreKeys, type RestoreCounts } from './keys.js';
import { LogicalDecoder, readLogical, type KeyRecord } from './logical.js';
import { RdbError, scanRdb, type RdbSummary } from './rdb.js';
import { runRedisCheckRdb } from './redis-check-rdb.js';
import { isRdb, isZlibError, openBackupData, recordedCounts, throwawayServer, type DatabaseCounts, type Throwaway } from './stored.js';

/* ---------------------------------------------------------------- restore */

/** Where the records of a backup come from: the file (logical) or a throwaway server (rdb). */
interface KeySource {
  dbs: number[];
  records(): AsyncIterable<KeyRecord[]>;
  close(): Promise<void>;
}

async function keySource(entry: CatalogEntry, ctx: DriverContext): Promise<KeySource> {
  if (!isRdb(entry)) {
    const covered = (entry.manifest.extra.coveredDatabases as number[] | undefined) ?? Object.keys(recordedCounts(entry)).map(Number);
    const records = () => readLogical(openBackupData(entry, ctx));
    return {
      dbs: covered,
      records,
      close: async () => undefined,
    };
  }
  const t = await throwawayServer(entry, ctx, true);
  try {
    const dbs = [...(await keyCounts(t.conn)).keys()].sort((a, b) => a - b);
    const version = (await t.conn.info('server')).redis_version;
    const dumpConn = await RespConnection.open(t.server.url, { name: 'jarvis-db restore source' });
    return {
      dbs: Array.from({ length: 16 }, (_, i) => i),
      records: () => dumpKeys(t.conn, dumpConn, dbs, { absoluteExpiry: majorVersion(version) >= 7 }),
      close: async () => { dumpConn.close(); await t.stop(); },
    };
  } catch (e) {
    await t.stop();
    throw e;
  }
}

async function flushTarget(target: RespConnection, entry: CatalogEntry, dbs: number[]): Promise<void> {
  // An RDB is the whole server: the whole server is emptied. A logical backup covers its databases.
  const cmds = new CommandBuffer(256);
  if (isRdb(entry)) cmds.add('FLUSHALL');
  else for (const db of dbs) cmds.add('SELECT', db).add('FLUSHDB');
  for (const r of await target.send(cmds)) {
    if (r instanceof RespError) {
      throw new JarvisError('RESTORE_FAILED', `Redis at ${redactUrl(target.url)} refused to empty the target (${isRdb(entry) ? 'FLUSHALL' : 'FLUSHDB'}): ${r.message}`, {
        hint: 'leave out --flush and restore with --force (RESTORE … REPLACE) instead',
      });
    }
  }
}

function describeCounts(c: RestoreCounts): string {
  const dbs = Object.entries(c.databases).filter(([, d]) => d.restored > 0).map(([db]) => db);
  const parts = [`${plural(c.restored, 'key')}${dbs.length ? ` in db ${dbs.join(', ')}` : ''}`];
  if (c.expired) parts.push(`${formatCount(c.expired)} already expired, skipped`);
  if (c.duplicates) parts.push(`${formatCount(c.duplicates)} listed twice by SCAN, restored once`);
  return parts.join('; ');
}

/** The key that marks a target incomplete while a restore writes into it (in the first database restored into). */
export const RESTORE_MARKER_KEY = 'jarvis-db:restore-incomplete';

async function readMarker(target: RespConnection, db: number): Promise<RestoreMarker | null> {
  await target.must(`SELECT ${db}`, 'SELECT', db);
  const value = await target.must(`GET ${RESTORE_MARKER_KEY}`, 'GET', RESTORE_MARKER_KEY);
  return value === null ? null : parseMarker(value.toString());
}

async function writeMarker(target: RespConnection, db: number, marker: RestoreMarker | null): Promise<void> {
  await target.must(`SELECT ${db}`, 'SELECT', db);
  if (marker) await target.must(`SET ${RESTORE_MARKER_KEY}`, 'SET', RESTORE_MARKER_KEY, markerText(marker));
  else await target.must(`DEL ${RESTORE_MARKER_KEY}`, 'DEL', RESTORE_MARKER_KEY);
}

/** Pure: the refusal of a restore into databases that hold keys (any key: a restore merges). */
export function notEmptyRefusal(where: string, backupId: string, counts: ReadonlyMap<number, number>, wholeServer: boolean): JarvisError {
  const held = [...counts].filter(([, n]) => n > 0).map(([db, n]) => `db ${db} holds ${n} key${n === 1 ? '' : 's'}`);
  return new JarvisError('RESTORE_REFUSED', `Redis at ${where} is not empty (${held.join(', ')}); restoring backup ${backupId} would merge into it; nothing was written`, {
    hint: `pass --force to merge (keys of the backup overwrite the same keys, the others stay), or --flush to empty ${wholeServer ? 'the server' : 'those databases'} first (destructive)`,
  });
}

async function restore(entry: CatalogEntry, ctx: DriverContext, options: RestoreOptions): Promise<RestoreResult> {
  const url = redisUrl(ctx.desired);
  const where = redactUrl(url);
  const target = await RespConnection.open(url, { name: 'jarvis-db restore' });
  let source: KeySource | null = null;
  try {
    source = await keySource(entry, ctx);
    const markerDb = source.dbs[0] ?? 0;
    const leftover = await readMarker(target, markerDb);
    if (leftover && !options.force && !options.flush) throw leftoverRefusal(`Redis at ${where}`, leftover);
    const before = await keyCounts(target, source.dbs);
    if (leftover) before.set(markerDb, (before.get(markerDb) ?? 1) - 1);
    const nonEmpty = new Set([...before.entries()].filter(([, n]) => n > 0).map(([db]) => db));
    if (options.flush) {
      ctx.progress.note(`emptying ${isRdb(entry) ? 'every database' : `db ${source.dbs.join(', ')}`} of ${where} (--flush)`);
      await flushTarget(target, entry, source.dbs);
      nonEmpty.clear();
    } else if (!options.force && nonEmpty.size) {
      throw notEmptyRefusal(where, entry.manifest.id, before, isRdb(entry));
    }
    // Marked before the first key is written, cleared once the counts verified: a kill in between leaves a target that says what it is.
    await writeMarker(target, markerDb, { backup: entry.manifest.id, startedAt: new Date().toISOString(), pid: process.pid });
    ctx.progress.note(`restoring into ${where}`);
    const expected = Number(entry.manifest.extra.keys ?? 0);
    const counts = await restoreKeys(target, source.records(), {
      replace: options.force && !options.flush,
      onProgress: (n) => ctx.progress.update(Math.min(n, expected), expected),
    });
    await testPausePoint('restore-written', ctx.env);
    // Keys without expiry cannot vanish by themselves: on a target that held none of these
    // databases' keys before, every one of them must be there now (the marker aside).
    if (nonEmpty.size === 0) {
      const after = await keyCounts(target, Object.keys(counts.databases).map(Number));
      for (const [db, c] of Object.entries(counts.databases)) {
        const n = (after.get(Number(db)) ?? 0) - (Number(db) === markerDb ? 1 : 0);
        if (n < c.persistent) throw new JarvisError('RESTORE_FAILED', `after the restore db ${db} of ${where} holds ${n} keys, fewer than the ${c.persistent} restored without expiry (another client deleting?)`);
      }
    }
    await writeMarker(target, markerDb, null);
    return {
      target: where,
      summary: `restored ${entry.manifest.id} (${entry.manifest.method}) into ${where}: ${describeCounts(counts)}`,
      details: { url: where, method: entry.manifest.method, ...counts },
    };
  } catch (e) {
    if (e instanceof RdbError || isZlibError(e)) throw new JarvisError('RESTORE_FAILED', `backup ${entry.manifest.id} is damaged: ${messageOf(e)}`, { cause: e });
    throw e;
  } finally {
    target.close();
    await source?.close();
  }
}

/* ---------------------------------------------------------------- verification */

/** Reads the stored data whole: an RDB's CRC64 and structure (and redis-check-rdb), a logical file's records. */
async function checkContent(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }> {
  if (isRdb(entry)) {
    let summary: RdbSummary;
    try {
      summary = await scanRdb(openBackupData(entry, ctx));
    } catch (e) {
      if (e instanceof RdbError || isZlibError(e)) return { ok: false, message: `the RDB is damaged: ${messageOf(e)}` };
      throw e;
    }
    const recorded = entry.manifest.extra.rdb as { crc64?: string | null } | undefined;
    if (recorded?.crc64 && summary.crc64 !== recorded.crc64) {
      return { ok: false, message: `the RDB's stored CRC64 is ${summary.crc64}, the manifest recorded ${recorded.crc64}` };
    }
    const crc = summary.checksum === 'verified' ? `CRC64 ${summary.crc64} verified` : summary.checksum === 'disabled' ? 'no CRC64 (saved with rdbchecksum no)' : 'no CRC64 (RDB < 5)';
    const tool = await runRedisCheckRdb(openBackupData(entry, ctx), ctx.env);
    if (tool.ran && !tool.ok) return { ok: false, message: tool.message };
    return { ok: true, message: `${crc}, ${summary.keys >= 0 ? `${plural(summary.keys, 'key')} walked` : summary.structure}; ${tool.ran ? tool.message : `${tool.reason}: not run`}` };
  }
  const decoder = new LogicalDecoder();
  try {
    for await (const chunk of openBackupData(entry, ctx)) decoder.push(chunk as Buffer);
    const trailer = decoder.finish();
    const recorded = recordedCounts(entry);
    for (const [db, c] of Object.entries(recorded)) {
      if ((trailer.databases[db] ?? 0) !== c.keys) return { ok: false, message: `db ${db} holds ${trailer.databases[db] ?? 0} keys, the manifest recorded ${c.keys}` };
    }
    return { ok: true, message: `${plural(trailer.keys, 'key record')} read, end record and counts match` };
  } catch (e) {
    if (e instanceof JarvisError && e.code === 'BACKUP_INVALID') return { ok: false, message: e.message };
    if (isZlibError(e)) return { ok: false, message: `the compressed data is damaged: ${messageOf(e)}` };
    throw e;
  }
}

/** Pure: per-database counts found after a test load, against what the manifest recorded. */
export function compareKeyCounts(recorded: DatabaseCounts, found: Map<number, number>, tolerateExpired: boolean): string[] {
  const problems: string[] = [];
  const dbs = new Set([...Object.keys(recorded).map(Number), ...[...found.entries()].filter(([, n]) => n > 0).map(([db]) => db)]);
  for (const db of [...dbs].sort((a, b) => a - b)) {
    const want = recorded[String(db)] ?? { keys: 0, expires: 0 };
    const got = found.get(db) ?? 0;
    const low = tolerateExpired ? want.keys - want.expires : want.keys;
    if (got > want.keys || got < low) {
      problems.push(`db ${db}: ${got} keys, the backup recorded ${want.keys}${tolerateExpired && want.expires ? ` (${want.expires} with a TTL)` : ''}`);
    }
  }
  return problems;
}

async function restoreTest(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }> {
  const recorded = recordedCounts(entry);
  const total = Number(entry.manifest.extra.keys ?? 0);
  if (isRdb(entry)) {
    let t: Throwaway;
    try {
      t = await throwawayServer(entry, ctx, true);
    } catch (e) {
      if (e instanceof JarvisError && e.code === 'RESTORE_FAILED') return { ok: false, message: e.message };
      throw e;
    }
    try {
      const persistence = await t.conn.info('persistence');
      const found = await keyCounts(t.conn);
      const loaded = Number(persistence.rdb_last_load_keys_loaded ?? [...found.values()].reduce((a, b) => a + b, 0));
      const expired = Number(persistence.rdb_last_load_keys_expired ?? 0);
      const problems = compareKeyCounts(recorded, found, true);
      if (total >= 0 && loaded + expired !== total) problems.unshift(`the server loaded ${loaded} keys and dropped ${expired} expired ones, the backup recorded ${total}`);
      if (problems.length) return { ok: false, message: problems.join('; ') };
      return { ok: true, message: `loaded into a throwaway redis-server: ${plural(loaded, 'key')}${expired ? ` (${formatCount(expired)} expired since the backup)` : ''}, per-database counts match` };
    } finally {
      await t.stop();
    }
  }
  // Active expiry off on the throwaway, and keys expiring within 5 s skipped: what is counted
  // afterwards is exactly what was written.
  const t = await throwawayServer(entry, ctx, false, { 'enable-debug-command': 'yes' });
  try {
    await t.conn.must('DEBUG SET-ACTIVE-EXPIRE 0', 'DEBUG', 'SET-ACTIVE-EXPIRE', '0');
    let counts: RestoreCounts;
    try {
      counts = await restoreKeys(t.conn, readLogical(openBackupData(entry, ctx)), { replace: false, expireMarginMs: 5000 });
    } catch (e) {
      if (e instanceof JarvisError && (e.code === 'BACKUP_INVALID' || e.code === 'RESTORE_FAILED')) return { ok: false, message: e.message };
      throw e;
    }
    const found = await keyCounts(t.conn, Object.keys(recorded).map(Number));
    const problems: string[] = [];
    for (const [db, c] of Object.entries(recorded)) {
      const r = counts.databases[db] ?? { restored: 0, expired: 0, duplicates: 0, persistent: 0 };
      if (r.restored + r.expired + r.duplicates !== c.keys) problems.push(`db ${db}: ${r.restored + r.expired + r.duplicates} records, the backup recorded ${c.keys}`);
      if ((found.get(Number(db)) ?? 0) !== r.restored) problems.push(`db ${db}: ${found.get(Number(db)) ?? 0} keys after restoring ${r.restored}`);
    }
    if (problems.length) return { ok: false, message: problems.join('; ') };
    return { ok: true, message: `restored into a throwaway redis-server: ${describeCounts(counts)}; per-database counts match` };
  } finally {
    await t.stop();
  }
}

export const redisDriver: BackupDriver = { service: 'redis', create, restore, restoreTest, checkContent };
