/**
 * The file format of `method: logical` Redis backups: one record per key, with its database,
 * its absolute expiry and the server's DUMP payload (type, value, RDB version and the
 * payload's own CRC64), then an end record with the counts, so a truncated file is an error
 * and never a smaller backup. Compressed with gzip around it (the CRC32 and length of gzip
 * catch damage too); SHA-256 of the stored bytes is in the manifest like for every file.
 *
 *   magic   "jarvis-db redis keys 1\n"
 *   key     'K' | db u8 | key length u32 LE | expires at (unix ms, -1 = never) int48 LE |
 *           payload length uint48 LE | key | payload
 *   end     'E' | length u32 LE | JSON { keys, databases: { "<db>": count } }
 *
 * Decoding streams: a record is assembled from the chunks it spans (one copy of a large
 * payload), and records are handed out in batches.
 */
import { JarvisError } from '../../errors.js';

export const LOGICAL_MAGIC = Buffer.from('jarvis-db redis keys 1\n', 'latin1');
const KEY_HEAD = 18;
const KEY = 0x4b;
const END = 0x45;
const CHUNK = 1 << 20;

export interface KeyRecord {
  db: number;
  key: Buffer;
  /** Absolute expiry in unix milliseconds; -1 when the key does not expire. */
  expireAt: number;
  /** DUMP's serialisation of the value. */
  payload: Buffer;
}

export interface LogicalTrailer {
  keys: number;
  databases: Record<string, number>;
}

/** Encodes records into ~1 MB chunks. */
export class LogicalEncoder {
  private out: Buffer[] = [];
  private current = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  readonly counts = new Map<number, number>();
  keys = 0;

  constructor() {
    this.write(LOGICAL_MAGIC);
  }

  private write(data: Buffer): void {
    const size = data.length;
    if (size <= 64 && this.current.length - this.used >= size) {
      // Short keys and payloads: a byte loop beats a call into Buffer#copy.
      const out = this.current;
      let u = this.used;
      for (let i = 0; i < size; i++) out[u++] = data[i]!;
      this.used = u;
      return;
    }
    let offset = 0;
    while (offset < size) {
      if (this.used === this.current.length) this.flushCurrent();
      const n = Math.min(size - offset, this.current.length - this.used);
      this.current.set(data.subarray(offset, offset + n), this.used);
      this.used += n;
      offset += n;
    }
  }

  private flushCurrent(): void {
    if (this.used) this.out.push(this.current.subarray(0, this.used));
    this.current = Buffer.allocUnsafe(CHUNK);
    this.used = 0;
  }

  add(record: KeyRecord): void {
    if (record.db < 0 || record.db > 255) throw new JarvisError('INTERNAL', `database ${record.db} out of range`);
    if (this.current.length - this.used < KEY_HEAD) this.flushCurrent();
    const head = this.current;
    const at = this.used;
    head[at] = KEY;
    head[at + 1] = record.db;
    head.writeUInt32LE(record.key.length, at + 2);
    head.writeIntLE(record.expireAt, at + 6, 6);
    head.writeUIntLE(record.payload.length, at + 12, 6);
    this.used += KEY_HEAD;
    this.write(record.key);
    this.write(record.payload);
    this.counts.set(record.db, (this.counts.get(record.db) ?? 0) + 1);
    this.keys++;
  }

  /** Chunks that are complete (call after a batch of `add`). */
  take(): Buffer[] {
    const chunks = this.out;
    this.out = [];
    return chunks;
  }

  trailer(): LogicalTrailer {
    const databases: Record<string, number> = {};
    for (const [db, n] of [...this.counts.entries()].sort((a, b) => a[0] - b[0])) databases[String(db)] = n;
    return { keys: this.keys, databases };
  }

  /** The end record and everything not yet taken. */
  finish(): Buffer[] {
    const json = Buffer.from(JSON.stringify(this.trailer()));
    const head = Buffer.allocUnsafe(5);
    head[0] = END;
    head.writeUInt32LE(json.length, 1);
    this.write(head);
    this.write(json);
    this.flushCurrent();
    return this.take();
  }
}

/** Decodes a logical backup stream into batches of records; throws ARCHIVE-style errors on damage. */
export class LogicalDecoder {
  private pending: Buffer[] = [];
  private head = 0;
  private pendingBytes = 0;
  private magicSeen = false;
  trailer: LogicalTrailer | null = null;
  private readonly counts = new Map<number, number>();
  private keys = 0;

  /** Feeds a chunk; returns the records completed by it. */
  push(chunk: Buffer): KeyRecord[] {
    if (this.trailer) {
      if (chunk.length) throw damaged('bytes after the end record');
      return [];
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out: KeyRecord[] = [];
    for (;;) {
      if (!this.magicSeen) {
        if (this.pendingBytes < LOGICAL_MAGIC.length) return out;
        const magic = this.take(LOGICAL_MAGIC.length);
        if (!magic.equals(LOGICAL_MAGIC)) throw damaged('it does not start like a jarvis-db logical Redis backup');
        this.magicSeen = true;
      }
      if (this.pendingBytes < 1) return out;
      const kind = this.peek(1)[0]!;
      if (kind === KEY) {
        if (this.pendingBytes < KEY_HEAD) return out;
        const head = this.peek(KEY_HEAD);
        const keyLen = head.readUInt32LE(2);
        const payloadLen = head.readUIntLE(12, 6);
        if (this.pendingBytes < KEY_HEAD + keyLen + payloadLen) return out;
        this.take(KEY_HEAD);
        const db = head[1]!;
        const expireAt = head.readIntLE(6, 6);
        const key = this.take(keyLen);
        const payload = this.take(payloadLen);
        out.push({ db, key, expireAt, payload });
        this.counts.set(db, (this.counts.get(db) ?? 0) + 1);
        this.keys++;
      } else if (kind === END) {
        if (this.pendingBytes < 5) return out;
        const len = this.peek(5).readUInt32LE(1);
        if (this.pendingBytes < 5 + len) return out;
        this.take(5);
        let trailer: LogicalTrailer;
        try {
          trailer = JSON.parse(this.take(len).toString('utf8')) as LogicalTrailer;
        } catch {
          throw damaged('its end record is not valid JSON');
        }
        if (trailer.keys !== this.keys) throw damaged(`its end record counts ${trailer.keys} keys but it holds ${this.keys}`);
        for (const [db, n] of Object.entries(trailer.databases)) {
          if ((this.counts.get(Number(db)) ?? 0) !== n) throw damaged(`its end record counts ${n} keys in db ${db} but it holds ${this.counts.get(Number(db)) ?? 0}`);
        }
        this.trailer = trailer;
        if (this.pendingBytes) throw damaged('bytes after the end record');
        return out;
      } else {
        throw damaged(`unknown record type 0x${kind.toString(16)} after ${this.keys} keys`);
      }
    }
  }

  /** Throws unless the end record was read. */
  finish(): LogicalTrailer {
    if (!this.magicSeen) throw damaged('it is empty or shorter than its header');
    if (!this.trailer) throw damaged(`it ends after ${this.keys} keys without its end record (truncated)`);
    return this.trailer;
  }

  private peek(n: number): Buffer {
    const first = this.pending[this.head]!;
    if (first.length >= n) return first.subarray(0, n);
    const parts: Buffer[] = [];
    let got = 0;
    for (let i = this.head; i < this.pending.length && got < n; i++) {
      parts.push(this.pending[i]!);
      got += this.pending[i]!.length;
    }
    return Buffer.concat(parts).subarray(0, n);
  }

  /** Drops consumed chunks from the front (an index, not Array.shift: a 500 MB value spans thousands of chunks). */
  private advance(): void {
    this.head++;
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.pending[this.head]!;
    let out: Buffer;
    if (first.length > n) {
      out = first.subarray(0, n);
      this.pending[this.head] = first.subarray(n);
    } else if (first.length === n) {
      out = first;
      this.advance();
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.pending[this.head]!;
        const k = Math.min(chunk.length, n - filled);
        chunk.copy(out, filled, 0, k);
        filled += k;
        if (k === chunk.length) this.advance();
        else this.pending[this.head] = chunk.subarray(k);
      }
    }
    this.pendingBytes -= n;
    return out;
  }
}

function damaged(what: string): JarvisError {
  return new JarvisError('BACKUP_INVALID', `the logical Redis backup is damaged: ${what}`);
}

/** Decodes a whole stream into batches (about `batchKeys` records each); checks the end record. */
export async function* readLogical(source: AsyncIterable<Buffer>, onTrailer?: (t: LogicalTrailer) => void, batchKeys = 1000): AsyncGenerator<KeyRecord[]> {
  const decoder = new LogicalDecoder();
  let batch: KeyRecord[] = [];
  for await (const chunk of source) {
    for (const r of decoder.push(chunk)) {
      batch.push(r);
      if (batch.length >= batchKeys) { yield batch; batch = []; }
    }
  }
  const trailer = decoder.finish();
  if (batch.length) yield batch;
  onTrailer?.(trailer);
}
