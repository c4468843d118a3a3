/**
 * Checking an RDB file in Node, while it streams: the CRC64 Redis appends to every RDB
 * (version 5 and later, crc64.ts), and a walk of its structure that counts keys and expires
 * per database without keeping any value (memory stays flat whatever the RDB's size).
 * `redis-check-rdb`, when installed, is the second opinion (redis-check-rdb.ts).
 * Over 400 lines: the walk is one state machine (`RdbScanner`), its steps sharing its frames.
 *
 * The walk knows the value types up to Redis 7.2 (RDB 11). An RDB from a newer server with a
 * type it does not know is not an error: the walk stops, says why, and the CRC alone decides.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { Crc64 } from './crc64.js';
import { lzfDecompress } from './lzf.js';

/* ---------------------------------------------------------------- the structure walk */

export class RdbError extends Error {
  override name = 'RdbError';
}

export interface RdbDatabaseCount { keys: number; expires: number }

export interface RdbSummary {
  /** RDB format version (10 for Redis 7.0, 11 for 7.2). */
  version: number;
  bytes: number;
  /** AUX fields (redis-ver, redis-bits, ctime, used-mem, ...). */
  aux: Record<string, string>;
  /** Keys per database, counted by walking the file; {} when the walk could not finish. */
  databases: Record<string, RdbDatabaseCount>;
  keys: number;
  expires: number;
  /** `verified`: the stored CRC64 matches; `disabled`: saved with rdbchecksum no; `absent`: RDB < 5. */
  checksum: 'verified' | 'disabled' | 'absent';
  /** The stored CRC64 (hex), when there is one. */
  crc64: string | null;
  /** `walked`, or why the structure could not be walked (an unknown newer type). */
  structure: string;
}

const OP = {
  TOP: 0,
  STRINGS: 1, // n strings
  LENS: 2, // n lengths
  SKIP: 3, // n raw bytes
  LEN_THEN: 4, // read a length L, then run `next` L*mult times (encoded in n, see pushLenThen)
  ZSET_OLD: 5, // n × (string, old-style double)
  ZSET2: 6, // n × (string, 8-byte double)
  QUICKLIST2: 7, // n × (container length, string)
  MODULE: 8, // module opcodes until EOF
  CGROUPS: 9, // n stream consumer groups
  CONSUMERS: 10, // n stream consumers
  PEL_NACKS: 11, // n × (16-byte id, 8-byte time, length)
  PEL_IDS: 12, // n × 16-byte id
  AUX: 13, // two strings kept as text
  CHECKSUM: 14, // the 8 stored bytes after EOF
  ODOUBLE: 15, // one old-style double
  KEY: 16, // a key read whole and handed to onKey
} as const;

/** Value types whose serialisation is one string (ziplist, listpack, intset, zipmap blobs). */
const BLOB_TYPES = new Uint8Array(256);
for (const type of [0, 9, 10, 11, 12, 13, 16, 17, 20]) BLOB_TYPES[type] = 1;

const MAX_AUX_TEXT = 4096;
const MAX_SAFE_LEN = 2 ** 50;

/**
 * Walks an RDB fed in chunks of any size. `push` throws RdbError on a structural error;
 * `finish` throws when the file is truncated, has trailing bytes or fails its CRC64.
 */
export class RdbScanner {
  private readonly crc = new Crc64();
  /** The last 8 bytes seen are held back from the CRC: at the end they are the stored checksum. */
  private held: Buffer = Buffer.alloc(0);
  private bytes = 0;

  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private end = 0;
  /** Absolute offset of buf[0]. */
  private base = 0;
  private skip = 0;
  private ops: number[] = [];
  private ns: number[] = [];
  /** For LEN_THEN frames: the op to run and the multiplier. */
  private nextOps: number[] = [];
  private mults: number[] = [];
  private variants: number[] = [];

  private version = -1;
  private db = 0;
  private pendingExpire = false;
  private done = false;
  private eofOffset = -1;
  private gaveUp: string | null = null;
  private readonly aux: Record<string, string> = {};
  private auxKey: string | null = null;
  private readonly dbs = new Map<number, RdbDatabaseCount>();
  /** The counter of the current database (SELECTDB resets it). */
  private dbCount: RdbDatabaseCount | null = null;
  private keys = 0;
  private expires = 0;
  // results of the last readLen
  private lv = 0;
  private enc = false;

  /**
   * Set to receive each key (its database and name, decoded: LZF and integer encodings) as the
   * walk passes it; the cross-store checks read a backup's keys this way (src/links/point.ts).
   */
  onKey: ((db: number, key: Buffer) => void) | null = null;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.crcUpdate(chunk);
    this.bytes += chunk.length;
    if (this.gaveUp !== null) return;
    if (this.pos < this.end) {
      this.base += this.pos;
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
    } else {
      this.base += this.end;
      this.buf = chunk;
    }
    this.pos = 0;
    this.end = this.buf.length;
    this.walk();
  }

  finish(): RdbSummary {
    if (this.bytes < 9 || this.version < 0) throw new RdbError(`not an RDB file: ${this.bytes} bytes, no REDIS header`);
    let checksum: RdbSummary['checksum'] = 'absent';
    let stored: string | null = null;
    if (this.version >= 5) {
      if (this.held.length < 8) throw new RdbError('truncated: the file ends before its checksum');
      stored = Buffer.from(this.held).reverse().toString('hex');
      if (this.held.every((b) => b === 0)) checksum = 'disabled';
      else if (this.crc.equalsStored(this.held)) checksum = 'verified';
      else throw new RdbError(`CRC64 mismatch: the file says ${stored}, its content gives ${this.crc.hex()} (damaged or truncated)`);
    }
    if (this.gaveUp === null) {
      if (!this.done) throw new RdbError(`truncated: the file ends at byte ${this.bytes} before the RDB end marker`);
      const expected = this.eofOffset + 1 + (this.version >= 5 ? 8 : 0);
      if (this.bytes !== expected) throw new RdbError(`${this.bytes - expected} unexpected bytes after the RDB end marker`);
    }
    const databases: Record<string, RdbDatabaseCount> = {};
    if (this.gaveUp === null) for (const [db, c] of [...this.dbs.entries()].sort((a, b) => a[0] - b[0])) databases[String(db)] = { ...c };
    return {
      version: this.version, bytes: this.bytes, aux: { ...this.aux }, databases,
      keys: this.gaveUp === null ? this.keys : -1, expires: this.gaveUp === null ? this.expires : -1,
      checksum, crc64: stored, structure: this.gaveUp ?? 'walked',
    };
  }

  private crcUpdate(chunk: Buffer): void {
    if (chunk.length >= 8) {
      if (this.held.length) this.crc.update(this.held);
      this.crc.update(chunk, 0, chunk.length - 8);
      this.held = Buffer.from(chunk.subarray(chunk.length - 8));
    } else {
      const all = Buffer.concat([this.held, chunk]);
      const cut = Math.max(0, all.length - 8);
      if (cut) this.crc.update(all, 0, cut);
      this.held = all.subarray(cut);
    }
  }

  private corrupt(what: string): never {
    throw new RdbError(`corrupt RDB at byte ${this.base + this.pos}: ${what}`);
  }

  private frame(op: number, n: number, next = 0, mult = 1, variant = 0): void {
    this.ops.push(op);
    this.ns.push(n);
    this.nextOps.push(next);
    this.mults.push(mult);
    this.variants.push(variant);
  }

  private pop(): void {
    this.ops.pop();
    this.ns.pop();
    this.nextOps.pop();
    this.mults.pop();
    this.variants.pop();
  }

  /** Reads an RDB length at pos into lv/enc; false (pos unchanged) when more bytes are needed. */
  private readLen(): boolean {
    const b = this.buf;
    const p = this.pos;
    if (p >= this.end) return false;
    const first = b[p]!;
    const kind = first >> 6;
    if (kind === 0) {
      this.lv = first & 63; this.enc = false; this.pos = p + 1;
    } else if (kind === 3) {
      this.lv = first & 63; this.enc = true; this.pos = p + 1;
    } else if (kind === 1) {
      if (p + 2 > this.end) return false;
      this.lv = ((first & 63) << 8) | b[p + 1]!; this.enc = false; this.pos = p + 2;
    } else if (first === 0x80) {
      if (p + 5 > this.end) return false;
      this.lv = b.readUInt32BE(p + 1); this.enc = false; this.pos = p + 5;
    } else if (first === 0x81) {
      if (p + 9 > this.end) return false;
      // Not only sizes: stream ids and counters (entries_read may be -1 as uint64) are lengths too.
      this.lv = b.readUInt32BE(p + 1) * 2 ** 32 + b.readUInt32BE(p + 5); this.enc = false; this.pos = p + 9;
    } else {
      this.corrupt(`unknown length encoding 0x${first.toString(16)}`);
    }
    return true;
  }

  /** Reads a string header; sets `skip` to its body. false (pos unchanged) when more bytes are needed. */
  private readStringHeader(): boolean {
    const start = this.pos;
    if (!this.readLen()) return false;
    if (!this.enc) {
      if (this.lv > MAX_SAFE_LEN) this.corrupt(`a string of ${this.lv} bytes is not plausible`);
      this.skip = this.lv;
      return true;
    }
    switch (this.lv) {
      case 0: this.skip = 1; return true;
      case 1: this.skip = 2; return true;
      case 2: this.skip = 4; return true;
      case 3: {
        if (!this.readLen()) { this.pos = start; return false; }
        const compressed = this.lv;
        if (!this.readLen()) { this.pos = start; return false; }
        if (compressed > MAX_SAFE_LEN) this.corrupt(`a compressed string of ${compressed} bytes is not plausible`);
        this.skip = compressed;
        return true;
      }
      default:
        this.pos = start;
        return this.corrupt(`unknown string encoding ${this.lv}`);
    }
  }

  /** Reads a whole short string as text (AUX fields); null when more bytes are needed. */
  private readText(): string | null {
    const start = this.pos;
    if (!this.readLen()) return null;
    if (this.enc) {
      const b = this.buf;
      const p = this.pos;
      const size = this.lv === 0 ? 1 : this.lv === 1 ? 2 : this.lv === 2 ? 4 : -1;
      if (size < 0) {
        // LZF-compressed AUX values do not occur (they are short); skip it rather than decode.
        this.pos = start;
        if (!this.readStringHeader()) return null;
        return '';
      }
      if (p + size > this.end) { this.pos = start; return null; }
      this.pos = p + size;
      return String(size === 1 ? b.readInt8(p) : size === 2 ? b.readInt16LE(p) : b.readInt32LE(p));
    }
    if (this.lv > MAX_AUX_TEXT) {
      this.skip = this.lv;
      return '';
    }
    if (this.pos + this.lv > this.end) { this.pos = start; return null; }
    const text = this.buf.toString('utf8', this.pos, this.pos + this.lv);
    this.pos += this.lv;
    return text;
  }

  /** A whole string (a key: short), decoded; null (pos unchanged) when more bytes are needed. */
  private readWholeString(): Buffer | null {
    const start = this.pos;
    if (!this.readLen()) return null;
    const b = this.buf;
    if (!this.enc) {
      if (this.pos + this.lv > this.end) { this.pos = start; return null; }
      const out = Buffer.from(b.subarray(this.pos, this.pos + this.lv));
      this.pos += this.lv;
      return out;
    }
    if (this.lv <= 2) {
      const size = 1 << this.lv;
      const p = this.pos;
      if (p + size > this.end) { this.pos = start; return null; }
      this.pos = p + size;
      return Buffer.from(String(size === 1 ? b.readInt8(p) : size === 2 ? b.readInt16LE(p) : b.readInt32LE(p)));
    }
    if (this.lv !== 3) this.corrupt(`unknown string encoding ${this.lv}`);
    if (!this.readLen()) { this.pos = start; return null; }
    const compressed = this.lv;
    if (!this.readLen()) { this.pos = start; return null; }
    const plain = this.lv;
    if (compressed > MAX_SAFE_LEN || plain > MAX_SAFE_LEN) this.corrupt('a compressed key of implausible size');
    if (this.pos + compressed > this.end) { this.pos = start; return null; }
    let out: Buffer;
    try {
      out = lzfDecompress(b.subarray(this.pos, this.pos + compressed), plain);
    } catch (e) {
      return this.corrupt((e as Error).message);
    }
    this.pos += compressed;
    return out;
  }

  private giveUp(reason: string): void {
    this.gaveUp = reason;
    this.ops = []; this.ns = []; this.nextOps = []; this.mults = []; this.variants = [];
    this.skip = 0;
  }

  private walk(): void {
    for (;;) {
      if (this.skip > 0) {
        const s = Math.min(this.skip, this.end - this.pos);
        this.pos += s;
        this.skip -= s;
        if (this.skip > 0) return;
      }
      if (this.version < 0) {
        if (this.end - this.pos < 9) return;
        const magic = this.buf.toString('latin1', this.pos, this.pos + 9);
        if (!/^REDIS\d{4}$/.test(magic)) throw new RdbError(`not an RDB file: it starts with ${JSON.stringify(magic.replace(/[^\x20-\x7e]/g, '?'))}`);
        this.version = Number(magic.slice(5));
        this.pos += 9;
        this.frame(OP.TOP, 0);
        continue;
      }
      if (this.done) {
        if (this.pos < this.end) this.corrupt('bytes after the end of the RDB');
        return;
      }
      const depth = this.ops.length - 1;
      if (depth < 0) return;
      const op = this.ops[depth]!;
      if (op !== OP.TOP && op !== OP.MODULE && op !== OP.CHECKSUM && this.ns[depth]! <= 0) {
        this.pop();
        continue;
      }
      if (this.pos >= this.end) return;
      if (!this.step(op, depth)) return;
      if (this.gaveUp !== null) return;
    }
  }

  /** One step of the frame on top of the stack; false when it needs more bytes. */
  private step(op: number, depth: number): boolean {
    switch (op) {
      case OP.TOP: return this.topLevel();
      case OP.STRINGS:
        if (!this.readStringHeader()) return false;
        this.ns[depth]!--;
        return true;
      case OP.LENS:
        if (!this.readLen()) return false;
        this.ns[depth]!--;
        return true;
      case OP.SKIP:
        this.skip = this.ns[depth]!;
        this.ns[depth] = 0;
        return true;
      case OP.ODOUBLE: {
        const len = this.buf[this.pos]!;
        this.pos++;
        if (len < 253) this.skip = len;
        this.ns[depth]!--;
        return true;
      }
      case OP.LEN_THEN: {
        if (!this.readLen()) return false;
        if (this.lv > MAX_SAFE_LEN) this.corrupt(`a count of ${this.lv} is not plausible`);
        const count = this.lv * this.mults[depth]!;
        const next = this.nextOps[depth]!;
        const variant = this.variants[depth]!;
        this.pop();
        if (next === OP.PEL_IDS) this.frame(OP.SKIP, count * 16);
        else if (count > 0) this.frame(next, count, 0, 1, variant);
        return true;
      }
      case OP.ZSET_OLD: {
        this.ns[depth]!--;
        this.frame(OP.ODOUBLE, 1);
        this.frame(OP.STRINGS, 1);
        return true;
      }
      case OP.ZSET2:
        if (!this.readStringHeader()) return false;
        this.skip += 8;
        this.ns[depth]!--;
        return true;
      case OP.QUICKLIST2: {
        const start = this.pos;
        if (!this.readLen()) return false;
        if (!this.readStringHeader()) { this.pos = start; return false; }
        this.ns[depth]!--;
        return true;
      }
      case OP.MODULE: {
        const start = this.pos;
        if (!this.readLen()) return false;
        switch (this.lv) {
          case 0: this.pop(); return true; // RDB_MODULE_OPCODE_EOF
          case 1: case 2: if (!this.readLen()) { this.pos = start; return false; } return true;
          case 3: this.skip = 4; return true;
          case 4: this.skip = 8; return true;
          case 5: if (!this.readStringHeader()) { this.pos = start; return false; } return true;
          default: return this.corrupt(`unknown module opcode ${this.lv}`);
        }
      }
      case OP.CGROUPS: {
        // name, last id (ms, seq), [entries_read], global PEL, consumers; pushed in reverse
        const v = this.variants[depth]!;
        this.ns[depth]!--;
        this.frame(OP.LEN_THEN, 1, OP.CONSUMERS, 1, v);
        this.frame(OP.LEN_THEN, 1, OP.PEL_NACKS, 1, v);
        this.frame(OP.LENS, v >= 2 ? 3 : 2);
        this.frame(OP.STRINGS, 1);
        return true;
      }
      case OP.CONSUMERS: {
        // name, seen time (8), [active time (8), stream v3], PEL of ids
        const v = this.variants[depth]!;
        this.ns[depth]!--;
        this.frame(OP.LEN_THEN, 1, OP.PEL_IDS, 1);
        this.frame(OP.SKIP, v >= 3 ? 16 : 8);
        this.frame(OP.STRINGS, 1);
        return true;
      }
      case OP.PEL_NACKS: {
        if (this.end - this.pos < 25) return false;
        const start = this.pos;
        this.pos += 24;
        if (!this.readLen()) { this.pos = start; return false; }
        this.ns[depth]!--;
        return true;
      }
      case OP.KEY: {
        const key = this.readWholeString();
        if (key === null) return false;
        this.ns[depth]!--;
        this.onKey!(this.db, key);
        return true;
      }
      case OP.AUX: {
        const text = this.readText();
        if (text === null) return false;
        if (this.auxKey === null) {
          this.auxKey = text;
        } else {
          if (this.auxKey) this.aux[this.auxKey] = text;
          this.auxKey = null;
          this.pop();
        }
        return true;
      }
      case OP.CHECKSUM: {
        if (this.end - this.pos < 8) return false;
        this.pos += 8;
        this.pop();
        this.done = true;
        return true;
      }
      default:
        return this.corrupt(`internal: unknown walk state ${op}`);
    }
  }

  private topLevel(): boolean {
    const type = this.buf[this.pos]!;
    const start = this.pos;
    this.pos++;
    switch (type) {
      case 0xff: // EOF
        this.eofOffset = this.base + start;
        this.pop();
        if (this.version >= 5) this.frame(OP.CHECKSUM, 1);
        else this.done = true;
        return true;
      case 0xfe: // SELECTDB
        if (!this.readLen()) { this.pos = start; return false; }
        this.db = this.lv;
        this.dbCount = null;
        return true;
      case 0xfd: this.skip = 4; this.pendingExpire = true; return true; // EXPIRETIME (s)
      case 0xfc: this.skip = 8; this.pendingExpire = true; return true; // EXPIRETIME_MS
      case 0xfb: this.frame(OP.LENS, 2); return true; // RESIZEDB
      case 0xfa: this.frame(OP.AUX, 1); return true;
      case 0xf9: this.skip = 1; return true; // FREQ
      case 0xf8: this.frame(OP.LENS, 1); return true; // IDLE
      case 0xf7: // MODULE_AUX: module id, when opcode, when, then module opcodes
        this.frame(OP.MODULE, 1);
        this.frame(OP.LENS, 3);
        return true;
      case 0xf5: this.frame(OP.STRINGS, 1); return true; // FUNCTION2: the library code
      case 0xf4: this.frame(OP.LENS, 3); return true; // SLOT_INFO (7.4)
      case 0xf6:
        this.giveUp('a pre-release FUNCTION opcode (Redis 7.0 RC) is not walked');
        return true;
      default:
        return this.keyValue(type);
    }
  }

  private keyValue(type: number): boolean {
    if (type > 21 || type === 6 || type === 8) {
      this.giveUp(`value type ${type} (a newer Redis or an old module format) is not walked; the CRC64 alone was checked`);
      return true;
    }
    let count = this.dbCount;
    if (!count) {
      count = this.dbs.get(this.db) ?? { keys: 0, expires: 0 };
      this.dbs.set(this.db, count);
      this.dbCount = count;
    }
    count.keys++;
    this.keys++;
    if (this.pendingExpire) { count.expires++; this.expires++; }
    this.pendingExpire = false;
    if (BLOB_TYPES[type] === 1 && !this.onKey) {
      // Fast path for the common case (a string-like value, the key whole in this chunk):
      // no frames pushed. Otherwise the frames below do the same across chunks.
      const start = this.pos;
      if (this.readStringHeader() && this.pos + this.skip <= this.end) {
        this.pos += this.skip;
        this.skip = 0;
        if (this.readStringHeader()) return true;
      }
      this.pos = start;
      this.skip = 0;
    }
    // The value's frames first (they run after the key), then the key string on top.
    if (BLOB_TYPES[type] === 1) this.frame(OP.STRINGS, 1);
    else if (type === 1 || type === 2 || type === 14) this.frame(OP.LEN_THEN, 1, OP.STRINGS, 1);
    else if (type === 4) this.frame(OP.LEN_THEN, 1, OP.STRINGS, 2);
    else if (type === 3) this.frame(OP.LEN_THEN, 1, OP.ZSET_OLD, 1);
    else if (type === 5) this.frame(OP.LEN_THEN, 1, OP.ZSET2, 1);
    else if (type === 18) this.frame(OP.LEN_THEN, 1, OP.QUICKLIST2, 1);
    else if (type === 7) { this.frame(OP.MODULE, 1); this.frame(OP.LENS, 1); }
    else if (type === 15 || type === 19 || type === 21) {
      const v = type === 15 ? 1 : type === 19 ? 2 : 3;
      this.frame(OP.LEN_THEN, 1, OP.CGROUPS, 1, v);
      this.frame(OP.LENS, v >= 2 ? 8 : 3); // length, last id, [first id, max deleted id, entries added]
      this.frame(OP.LEN_THEN, 1, OP.STRINGS, 2); // listpacks: (master id, listpack) pairs
    } else {
      this.giveUp(`value type ${type} is not walked`);
      return true;
    }
    this.frame(this.onKey ? OP.KEY : OP.STRINGS, 1);
    return true;
  }
}

/**
 * A pass-through stream that walks and checks the RDB going through it. The stream fails
 * (and with it the pipeline, so the backup is not published) when the RDB is damaged;
 * `summary` is set once it ended well. `onFirstBytes` runs once data flows (a test pause point).
 * It also gathers the socket's small reads (16 kB from a diskless transfer) into 256 kB
 * chunks: a quarter of a copy, against a sixteenth of the stream, hash and write calls after it.
 */
export class RdbCheckStream extends Transform {
  readonly scanner = new RdbScanner();
  summary: RdbSummary | null = null;
  private started = false;
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;
  constructor(private readonly onFirstBytes?: () => Promise<void>, private readonly gatherBytes = 256 * 1024) {
    super({ highWaterMark: 1 << 20 });
  }

  private release(): Buffer | null {
    if (!this.gatheredBytes) return null;
    const out = this.gathered.length === 1 ? this.gathered[0]! : Buffer.concat(this.gathered, this.gatheredBytes);
    this.gathered = [];
    this.gatheredBytes = 0;
    return out;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.scanner.push(chunk);
    } catch (e) {
      done(e as Error);
      return;
    }
    this.gathered.push(chunk);
    this.gatheredBytes += chunk.length;
    const out = this.gatheredBytes >= this.gatherBytes ? this.release() : null;
    if (!this.started && this.onFirstBytes) {
      this.started = true;
      const first = out ?? this.release();
      this.onFirstBytes().then(() => done(null, first), done);
      return;
    }
    done(null, out ?? undefined);
  }

  override _flush(done: TransformCallback): void {
    try {
      this.summary = this.scanner.finish();
    } catch (e) {
      done(e as Error);
      return;
    }
    done(null, this.release() ?? undefined);
  }
}

/** Walks and checks a whole RDB stream. Throws RdbError when it is damaged. */
export async function scanRdb(source: Readable | AsyncIterable<Buffer>): Promise<RdbSummary> {
  const scanner = new RdbScanner();
  for await (const chunk of source) scanner.push(chunk as Buffer);
  return scanner.finish();
}
