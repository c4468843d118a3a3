/**
 * A small RESP2 client for the bulk paths of the Redis backups: thousands of pipelined
 * DUMP / PEXPIRETIME / RESTORE commands per batch, written as one buffer and answered as one
 * array, and the raw socket handed over for SYNC. ioredis (src/services/redis.ts) builds a
 * command object and a promise per command, which measured about 20k keys/s here; this runs
 * at the server's pace. Binary-safe: keys and values are Buffers throughout.
 */
import { JarvisError, messageOf } from '../errors.js';
import { runningHint } from './endpoint.js';
import { openRedisSocket, parseRedisUrl, type RedisSocket } from './redis.js';
import { redactUrl } from './redact.js';

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

/* ---------------------------------------------------------------- the connection */

interface Pending { count: number; replies: Reply[]; resolve: (r: Reply[]) => void; reject: (e: Error) => void }

export interface RespOpenOptions {
  /** Shown in CLIENT LIST. */
  name?: string;
  connectTimeoutMs?: number;
}

/** Text fit for a message: a key or value that may be binary, escaped and shortened. */
export function printable(value: Buffer | string, max = 60): string {
  const text = typeof value === 'string' ? value : value.toString('latin1');
  const escaped = JSON.stringify(text.length > max ? text.slice(0, max) : text);
  return text.length > max ? `${escaped.slice(0, -1)}…"` : escaped;
}

/** True for the replies of a server that does not let this user run a command (renamed away or denied by ACL). */
export function isForbidden(error: RespError): boolean {
  return error.code === 'NOPERM' || /^ERR unknown command|no permissions|not allowed/i.test(error.message);
}

/**
 * One connection, commands pipelined: `send` writes a batch and resolves with its replies
 * (in order; errors are RespError values in the array, not rejections).
 */
export class RespConnection {
  private readonly queue: Pending[] = [];
  private failure: Error | null = null;
  private readonly parser: RespParser;
  private detached = false;

  private constructor(readonly socket: RedisSocket, readonly url: string) {
    this.parser = new RespParser((r) => this.onReply(r));
    socket.on('data', this.onData);
    socket.on('error', (e) => this.fail(this.lost(e)));
    socket.on('close', () => this.fail(this.lost(new Error('connection closed'))));
  }

  /** Connects and logs in (AUTH with the URL's user and password). A refused login is one clear line. */
  static async open(url: string, options: RespOpenOptions = {}): Promise<RespConnection> {
    const target = parseRedisUrl(url);
    const socket = await openRedisSocket(url, { connectTimeoutMs: options.connectTimeoutMs });
    const conn = new RespConnection(socket, url);
    try {
      const setup = new CommandBuffer(256);
      if (target.password !== undefined) {
        if (target.username) setup.add('AUTH', target.username, target.password);
        else setup.add('AUTH', target.password);
      }
      setup.add('CLIENT', 'SETNAME', options.name ?? 'jarvis-db');
      const replies = await conn.send(setup);
      const auth = replies[0];
      if (target.password !== undefined && auth instanceof RespError) throw authError(url, auth);
      const named = replies[replies.length - 1];
      if (named instanceof RespError && named.code === 'NOAUTH') throw authError(url, named);
    } catch (e) {
      conn.close();
      throw e;
    }
    return conn;
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.parser.feed(chunk);
    } catch (e) {
      this.fail(e as Error);
      this.socket.destroy();
    }
  };

  private lost(e: Error): JarvisError {
    return new JarvisError('SERVICE_UNREACHABLE', `connection to Redis at ${redactUrl(this.url)} lost: ${messageOf(e)}`, { cause: e, hint: runningHint('redis', this.url) });
  }

  private onReply(reply: Reply): void {
    const head = this.queue[0];
    if (!head) {
      this.fail(new JarvisError('SERVICE_ERROR', 'Redis sent a reply nobody asked for'));
      return;
    }
    head.replies.push(reply);
    if (head.replies.length === head.count) {
      this.queue.shift();
      head.resolve(head.replies);
    }
  }

  private fail(error: Error): void {
    if (this.detached) return;
    if (!this.failure) this.failure = error;
    for (const p of this.queue.splice(0)) p.reject(this.failure);
  }

  /** Writes the commands; resolves with one reply per command once all arrived. */
  send(commands: CommandBuffer): Promise<Reply[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (commands.count === 0) return Promise.resolve([]);
    return new Promise<Reply[]>((resolve, reject) => {
      this.queue.push({ count: commands.count, replies: [], resolve, reject });
      this.socket.write(commands.toBuffer());
    });
  }

  /** Resolves when the socket's write buffer has drained (backpressure for large pipelines). */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.failure) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { this.socket.off('drain', done); this.socket.off('close', done); resolve(); };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** One command; a RespError reply is returned, not thrown. */
  async call(...args: (string | number | Buffer)[]): Promise<Reply> {
    return (await this.send(new CommandBuffer(256).add(...args)))[0]!;
  }

  /** One command whose error reply becomes a JarvisError (`what` says what was being done). */
  async must(what: string, ...args: (string | number | Buffer)[]): Promise<Reply> {
    const r = await this.call(...args);
    if (r instanceof RespError) {
      if (r.code === 'NOAUTH' || r.code === 'WRONGPASS') throw authError(this.url, r);
      throw new JarvisError('SERVICE_ERROR', `Redis at ${redactUrl(this.url)} refused ${what}: ${r.message}`);
    }
    return r;
  }

  /** `INFO section` as a map. */
  async info(section: string): Promise<Record<string, string>> {
    const text = String(await this.must(`INFO ${section}`, 'INFO', section));
    const out: Record<string, string> = {};
    for (const line of text.split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
    }
    return out;
  }

  /**
   * Hands the socket over (for SYNC, whose payload is not RESP): nothing is pending by then.
   * (The server sends nothing unasked, so no received byte is left behind.)
   */
  detach(): RedisSocket {
    if (this.queue.length) throw new JarvisError('INTERNAL', 'detach with replies pending');
    this.detached = true;
    this.socket.removeListener('data', this.onData);
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('close');
    return this.socket;
  }

  close(): void {
    this.detached = true;
    for (const p of this.queue.splice(0)) p.reject(new JarvisError('INTERNAL', 'connection closed with replies pending'));
    this.socket.destroy();
  }
}

/** A refused login: one line, the URL redacted (the server's message never contains the password). */
export function authError(url: string, reply: RespError): JarvisError {
  const hint = reply.code === 'NOAUTH'
    ? 'the server needs a password: put it in services.redis.url (redis://:PASSWORD@host:port/db, from an environment variable)'
    : 'check the user and password in services.redis.url';
  return new JarvisError('SERVICE_UNREACHABLE', `cannot log in to Redis at ${redactUrl(url)}: ${reply.message}`, { hint });
}
