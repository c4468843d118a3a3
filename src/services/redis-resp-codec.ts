/**
 * RESP2 as bytes, for the client in redis-resp.ts: commands encoded into one growing buffer,
 * replies parsed from chunks of any size. Pure: no I/O. Binary-safe: keys and values are
 * Buffers throughout.
 */
import { JarvisError } from '../errors.js';

/** A `-ERR ...` reply. Not an Error: building stacks for thousands of BUSYKEY replies would cost. */
export class RespError {
  constructor(readonly message: string) {}
  /** The error code: `ERR`, `NOPERM`, `BUSYKEY`, `WRONGPASS`, ... */
  get code(): string {
    return /^\S+/.exec(this.message)?.[0] ?? 'ERR';
  }
}

export type Reply = Buffer | string | number | null | RespError | Reply[];

/* ---------------------------------------------------------------- encoding */

/**
 * Accumulates commands in one growing buffer: a pipeline is written with one syscall.
 * Written byte by byte in JavaScript for the short parts (lengths, names, small keys): a call
 * into C++ per fragment (Buffer#write, #copy) cost more than the bytes themselves here.
 */
export class CommandBuffer {
  private buf: Buffer;
  private len = 0;
  count = 0;
  constructor(initial = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + extra));
    next.set(this.buf.subarray(0, this.len), 0);
    this.buf = next;
  }

  /** A non-negative integer in decimal. */
  private digits(n: number): void {
    const buf = this.buf;
    if (n < 10) { buf[this.len++] = 48 + n; return; }
    const start = this.len;
    let v = n;
    while (v > 0) { buf[this.len++] = 48 + (v % 10); v = Math.floor(v / 10); }
    for (let i = start, j = this.len - 1; i < j; i++, j--) { const c = buf[i]!; buf[i] = buf[j]!; buf[j] = c; }
  }

  private crlf(): void {
    this.buf[this.len++] = 13;
    this.buf[this.len++] = 10;
  }

  /** `$<len>\r\n<bytes>\r\n` */
  private bulk(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n + 24);
    const buf = this.buf;
    buf[this.len++] = 36; // $
    this.digits(n);
    this.crlf();
    if (n <= 32) for (let i = 0; i < n; i++) buf[this.len++] = bytes[i]!;
    else { buf.set(bytes, this.len); this.len += n; }
    this.crlf();
  }

  private bulkString(s: string): void {
    // ASCII (command names, numbers): no encoding needed; anything else through UTF-8.
    let ascii = s.length <= 64;
    for (let i = 0; ascii && i < s.length; i++) if (s.charCodeAt(i) > 127) ascii = false;
    if (!ascii) { this.bulk(Buffer.from(s)); return; }
    this.ensure(s.length + 24);
    const buf = this.buf;
    buf[this.len++] = 36;
    this.digits(s.length);
    this.crlf();
    for (let i = 0; i < s.length; i++) buf[this.len++] = s.charCodeAt(i);
    this.crlf();
  }

  add(...args: (string | number | Buffer)[]): this {
    this.ensure(16);
    this.buf[this.len++] = 42; // *
    this.digits(args.length);
    this.crlf();
    for (const a of args) {
      if (typeof a === 'string') this.bulkString(a);
      else if (typeof a === 'number') this.bulkString(String(a));
      else this.bulk(a);
    }
    this.count++;
    return this;
  }

  /** A command of one name and one key (DUMP k, PTTL k, EXISTS k), from a pre-encoded head. */
  addKeyCommand(head: CommandHead, key: Buffer): this {
    this.ensure(head.bytes.length);
    this.buf.set(head.bytes, this.len);
    this.len += head.bytes.length;
    this.bulk(key);
    this.count++;
    return this;
  }

  get bytes(): number {
    return this.len;
  }

  toBuffer(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/** `*2\r\n$<n>\r\n<NAME>\r\n`: the fixed part of a one-key command, encoded once. */
export class CommandHead {
  readonly bytes: Buffer;
  constructor(readonly name: string) {
    this.bytes = Buffer.from(`*2\r\n$${name.length}\r\n${name}\r\n`, 'latin1');
  }
}

export function encodeCommand(...args: (string | number | Buffer)[]): Buffer {
  return new CommandBuffer(256).add(...args).toBuffer();
}

/* ---------------------------------------------------------------- decoding */

/**
 * An incremental RESP2 reply parser: feed chunks of any size, get whole replies. A bulk
 * string that spans chunks is copied once into its own buffer (never re-parsed), so a 500 MB
 * value costs one copy, not a quadratic number; a bulk inside one chunk is a zero-copy slice.
 */
export class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Open arrays, innermost last. */
  private readonly arrays: { items: Reply[]; remaining: number }[] = [];
  /** A bulk string being filled across chunks. */
  private bulk: Buffer | null = null;
  private bulkFilled = 0;
  /** CR LF still to skip after a bulk filled across chunks. */
  private crlfToSkip = 0;

  constructor(private readonly onReply: (reply: Reply) => void) {}

  feed(chunk: Buffer): void {
    if (this.pos < this.buf.length) {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
    } else {
      this.buf = chunk;
    }
    this.pos = 0;
    const buf = this.buf;
    const end = buf.length;
    for (;;) {
      if (this.bulk) {
        const n = Math.min(this.bulk.length - this.bulkFilled, end - this.pos);
        buf.copy(this.bulk, this.bulkFilled, this.pos, this.pos + n);
        this.bulkFilled += n;
        this.pos += n;
        if (this.bulkFilled < this.bulk.length) return;
        const done = this.bulk;
        this.bulk = null;
        this.crlfToSkip = 2;
        this.deliver(done);
      }
      if (this.crlfToSkip) {
        const n = Math.min(this.crlfToSkip, end - this.pos);
        this.pos += n;
        this.crlfToSkip -= n;
        if (this.crlfToSkip) return;
      }
      if (this.pos >= end) return;
      const lf = buf.indexOf(10, this.pos);
      if (lf < 0) return;
      const start = this.pos;
      const type = buf[start]!;
      const lineEnd = lf - 1; // the CR
      if (buf[lineEnd] !== 13) throw new JarvisError('SERVICE_ERROR', 'Redis protocol error: a line without CR LF');
      this.pos = lf + 1;
      switch (type) {
        case 0x2b: // +
          this.deliver(buf.toString('latin1', start + 1, lineEnd));
          break;
        case 0x2d: // -
          this.deliver(new RespError(buf.toString('utf8', start + 1, lineEnd)));
          break;
        case 0x3a: // :
          this.deliver(parseInteger(buf, start + 1, lineEnd));
          break;
        case 0x24: { // $
          const len = parseInteger(buf, start + 1, lineEnd);
          if (len < 0) {
            this.deliver(null);
          } else if (lf + 1 + len + 2 <= end) {
            this.pos = lf + 1 + len + 2;
            this.deliver(buf.subarray(lf + 1, lf + 1 + len));
          } else {
            this.bulk = Buffer.allocUnsafe(len);
            this.bulkFilled = 0;
          }
          break;
        }
        case 0x2a: { // *
          const n = parseInteger(buf, start + 1, lineEnd);
          if (n < 0) this.deliver(null);
          else if (n === 0) this.deliver([]);
          else this.arrays.push({ items: [], remaining: n });
          break;
        }
        default:
          throw new JarvisError('SERVICE_ERROR', `Redis protocol error: unexpected reply type ${JSON.stringify(String.fromCharCode(type))}`);
      }
    }
  }

  private deliver(reply: Reply): void {
    let r = reply;
    for (;;) {
      const open = this.arrays[this.arrays.length - 1];
      if (!open) {
        this.onReply(r);
        return;
      }
      open.items.push(r);
      if (--open.remaining > 0) return;
      this.arrays.pop();
      r = open.items;
    }
  }
}

function parseInteger(buf: Buffer, start: number, end: number): number {
  let i = start;
  let negative = false;
  if (buf[i] === 0x2d) { negative = true; i++; }
  let n = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) throw new JarvisError('SERVICE_ERROR', `Redis protocol error: bad integer ${JSON.stringify(buf.toString('latin1', start, end))}`);
    n = n * 10 + d;
  }
  return negative ? -n : n;
}
