/**
 * Copying keys between Redis servers at the protocol level, for the logical method and for
 * restores:
 * - `dumpKeys`: SCAN on one connection, and on another, batches of pipelined DUMP and
 *   PEXPIRETIME (PTTL plus the server's clock before Redis 7), several batches in flight so
 *   the server never waits for us. Batches adapt to the values' size (about 8 MB each), so
 *   memory is bounded by the batch size and the largest value, not by the database.
 * - `restoreKeys`: pipelined `RESTORE key ttl payload ABSTTL` (REPLACE only when asked);
 *   keys already expired are skipped, counted, not written.
 */
import { JarvisError } from '../../errors.js';
import { redactUrl } from '../../services/redact.js';
import type { KeyRecord } from './logical.js';
import { RespConnection, printable } from '../../services/redis-resp.js';
import { CommandBuffer, CommandHead, RespError, type Reply } from '../../services/redis-resp-codec.js';

const TARGET_BATCH_BYTES = 8 << 20;
const DUMP = new CommandHead('DUMP');
const PEXPIRETIME = new CommandHead('PEXPIRETIME');
const PTTL = new CommandHead('PTTL');
const MIN_BATCH_KEYS = 16;
const MAX_BATCH_KEYS = 4000;

/** Milliseconds to add to Date.now() to get the server's clock (TIME). */
export async function serverClockOffset(conn: RespConnection): Promise<number> {
  const before = Date.now();
  const reply = await conn.must('TIME', 'TIME');
  const after = Date.now();
  const [sec, usec] = (reply as Buffer[]).map((b) => Number(String(b)));
  return sec! * 1000 + Math.floor(usec! / 1000) - Math.round((before + after) / 2);
}

export function majorVersion(version: string | null | undefined): number {
  return Number(/^(\d+)/.exec(version ?? '')?.[1] ?? 0);
}

function refused(conn: RespConnection, what: string, key: Buffer, db: number, reply: RespError): JarvisError {
  const acl = reply.code === 'NOPERM';
  return new JarvisError(acl ? 'BACKUP_FAILED' : 'SERVICE_ERROR', `Redis at ${redactUrl(conn.url)} refused ${what} of key ${printable(key)} in db ${db}: ${reply.message}`, {
    hint: acl ? 'the logical method needs SCAN, DUMP, PEXPIRETIME (or PTTL) and SELECT for this user (ACL +@keyspace +dump +select)' : undefined,
  });
}

export interface DumpOptions {
  /** PEXPIRETIME (Redis 7+); otherwise PTTL converted with the server's clock. */
  absoluteExpiry: boolean;
  /** Batches in flight (default 4). */
  inFlight?: number;
  /** Called after each batch with the number of keys it held. */
  onBatch?: (keys: number, bytes: number) => void;
}

interface Batch { db: number; keys: Buffer[]; replies: Promise<Reply[]> }

/**
 * Every key of `dbs` as records, in batches. `scan` and `dump` are two connections to the
 * same server (SCAN's cursor must not wait behind a batch of DUMPs).
 */
export async function* dumpKeys(scan: RespConnection, dump: RespConnection, dbs: readonly number[], options: DumpOptions): AsyncGenerator<KeyRecord[]> {
  const inFlight = Math.max(1, options.inFlight ?? 4);
  const offset = options.absoluteExpiry ? 0 : await serverClockOffset(dump);
  const expiry = options.absoluteExpiry ? PEXPIRETIME : PTTL;
  const expiryCommand = expiry.name;
  let batchKeys = 1000;
  const queue: Batch[] = [];

  const send = (db: number, keys: Buffer[], select: boolean): void => {
    const cmds = new CommandBuffer(keys.length * 64 + 64);
    if (select) cmds.add('SELECT', db);
    for (const k of keys) cmds.addKeyCommand(DUMP, k).addKeyCommand(expiry, k);
    const replies = dump.send(cmds).then((r) => (select ? checkSelect(dump, db, r) : r));
    replies.catch(() => undefined); // awaited in order below; a consumer that stops early must not leave it unhandled
    queue.push({ db, keys, replies });
  };

  const receive = async (batch: Batch): Promise<KeyRecord[]> => {
    const replies = await batch.replies;
    const now = options.absoluteExpiry ? 0 : Date.now() + offset;
    const out: KeyRecord[] = [];
    let bytes = 0;
    for (let i = 0; i < batch.keys.length; i++) {
      const key = batch.keys[i]!;
      const payload = replies[2 * i]!;
      const expiry = replies[2 * i + 1]!;
      if (payload instanceof RespError) throw refused(dump, 'DUMP', key, batch.db, payload);
      if (expiry instanceof RespError) throw refused(dump, expiryCommand, key, batch.db, expiry);
      if (payload === null || expiry === -2) continue; // deleted or expired since SCAN listed it
      const ttl = expiry as number;
      const expireAt = ttl === -1 ? -1 : options.absoluteExpiry ? ttl : now + ttl;
      out.push({ db: batch.db, key, expireAt, payload: payload as Buffer });
      bytes += key.length + (payload as Buffer).length;
    }
    const avg = out.length ? bytes / out.length : 64;
    batchKeys = Math.max(MIN_BATCH_KEYS, Math.min(MAX_BATCH_KEYS, Math.floor(TARGET_BATCH_BYTES / avg)));
    options.onBatch?.(batch.keys.length, bytes);
    return out;
  };

  for (const db of dbs) {
    await scan.must(`SELECT ${db}`, 'SELECT', db);
    let cursor = '0';
    let pending: Buffer[] = [];
    let selected = false;
    do {
      const reply = await scan.call('SCAN', cursor, 'COUNT', batchKeys);
      if (reply instanceof RespError) throw new JarvisError(reply.code === 'NOPERM' ? 'BACKUP_FAILED' : 'SERVICE_ERROR', `Redis at ${redactUrl(scan.url)} refused SCAN in db ${db}: ${reply.message}`);
      const [next, keys] = reply as [Buffer, Buffer[]];
      cursor = next.toString('latin1');
      for (const k of keys) pending.push(k);
      if (pending.length >= batchKeys || (cursor === '0' && pending.length)) {
        send(db, pending, !selected);
        selected = true;
        pending = [];
        await dump.drained();
      }
      while (queue.length >= inFlight) yield await receive(queue.shift()!);
    } while (cursor !== '0');
  }
  while (queue.length) yield await receive(queue.shift()!);
}

function checkSelect(conn: RespConnection, db: number, replies: Reply[]): Reply[] {
  const first = replies[0];
  if (first instanceof RespError) throw new JarvisError('SERVICE_ERROR', `Redis at ${redactUrl(conn.url)} refused SELECT ${db}: ${first.message}`);
  return replies.slice(1);
}

export interface RestoreCounts {
  restored: number;
  /** Already expired (or expiring within the margin): not written. */
  expired: number;
  /** Records of a key restored earlier in the same run (SCAN may list a key twice). */
  duplicates: number;
  /** Restored keys that have no expiry (they cannot vanish on their own afterwards). */
  restoredPersistent: number;
  databases: Record<string, { restored: number; expired: number; duplicates: number; persistent: number }>;
}

export interface RestoreKeysOptions {
  /** RESTORE ... REPLACE: overwrite keys that exist (the --force of `jarvis-db restore`). */
  replace: boolean;
  /** Skip keys expiring before the server's now + this margin (default 0). */
  expireMarginMs?: number;
  inFlight?: number;
  onProgress?: (restored: number) => void;
}

/** Writes records into `target` with pipelined RESTORE. Any refusal other than a duplicate stops it. */
export async function restoreKeys(target: RespConnection, source: AsyncIterable<KeyRecord[]>, options: RestoreKeysOptions): Promise<RestoreCounts> {
  const inFlight = Math.max(1, options.inFlight ?? 4);
  const offset = await serverClockOffset(target);
  const margin = options.expireMarginMs ?? 0;
  const counts: RestoreCounts = { restored: 0, expired: 0, duplicates: 0, restoredPersistent: 0, databases: {} };
  const perDb = (db: number) => (counts.databases[String(db)] ??= { restored: 0, expired: 0, duplicates: 0, persistent: 0 });
  const queue: { records: KeyRecord[]; selects: boolean[]; replies: Promise<Reply[]> }[] = [];
  let currentDb = -1;

  const check = async (item: (typeof queue)[number]): Promise<void> => {
    const replies = await item.replies;
    let r = 0;
    for (let i = 0; i < item.records.length; i++) {
      const rec = item.records[i]!;
      if (item.selects[i]) {
        const sel = replies[r++];
        if (sel instanceof RespError) throw new JarvisError('RESTORE_FAILED', `Redis at ${redactUrl(target.url)} refused SELECT ${rec.db}: ${sel.message}`);
      }
      const reply = replies[r++];
      const c = perDb(rec.db);
      if (reply instanceof RespError) {
        if (reply.code === 'BUSYKEY' && !options.replace) {
          counts.duplicates++;
          c.duplicates++;
          continue;
        }
        const version = /payload version or checksum are wrong/i.test(reply.message);
        throw new JarvisError('RESTORE_FAILED', `Redis at ${redactUrl(target.url)} refused RESTORE of key ${printable(rec.key)} in db ${rec.db}: ${reply.message}`, {
          hint: version ? 'the backup comes from a newer Redis than this server (DUMP payloads carry their RDB version): restore into a Redis at least as new as the one backed up' : undefined,
        });
      }
      counts.restored++;
      c.restored++;
      if (rec.expireAt === -1) { counts.restoredPersistent++; c.persistent++; }
    }
    options.onProgress?.(counts.restored);
  };

  for await (const batch of source) {
    const cmds = new CommandBuffer(64 * 1024);
    const records: KeyRecord[] = [];
    const selects: boolean[] = [];
    const now = Date.now() + offset + margin;
    for (const rec of batch) {
      if (rec.expireAt !== -1 && rec.expireAt <= now) {
        counts.expired++;
        perDb(rec.db).expired++;
        continue;
      }
      const select = rec.db !== currentDb;
      if (select) { cmds.add('SELECT', rec.db); currentDb = rec.db; }
      if (options.replace) cmds.add('RESTORE', rec.key, rec.expireAt === -1 ? 0 : rec.expireAt, rec.payload, 'ABSTTL', 'REPLACE');
      else cmds.add('RESTORE', rec.key, rec.expireAt === -1 ? 0 : rec.expireAt, rec.payload, 'ABSTTL');
      records.push(rec);
      selects.push(select);
    }
    if (!records.length) continue;
    const replies = target.send(cmds);
    replies.catch(() => undefined);
    queue.push({ records, selects, replies });
    await target.drained();
    while (queue.length >= inFlight) await check(queue.shift()!);
  }
  while (queue.length) await check(queue.shift()!);
  return counts;
}

/** Key count per database (DBSIZE of each, or INFO keyspace when `dbs` is omitted). */
export async function keyCounts(conn: RespConnection, dbs?: readonly number[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  if (!dbs) {
    const info = await conn.info('keyspace');
    for (const [name, value] of Object.entries(info)) {
      const m = /^db(\d+)$/.exec(name);
      const keys = /keys=(\d+)/.exec(value);
      if (m && keys) out.set(Number(m[1]), Number(keys[1]));
    }
    return out;
  }
  const cmds = new CommandBuffer(256);
  for (const db of dbs) cmds.add('SELECT', db).add('DBSIZE');
  const replies = await conn.send(cmds);
  dbs.forEach((db, i) => {
    const sel = replies[2 * i];
    const n = replies[2 * i + 1];
    if (sel instanceof RespError) throw new JarvisError('SERVICE_ERROR', `Redis at ${redactUrl(conn.url)} refused SELECT ${db}: ${sel.message}`);
    if (n instanceof RespError) throw new JarvisError('SERVICE_ERROR', `Redis at ${redactUrl(conn.url)} refused DBSIZE: ${n.message}`);
    out.set(db, n as number);
  });
  return out;
}
