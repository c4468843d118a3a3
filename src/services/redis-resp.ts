/**
 * A small RESP2 client for the bulk paths of the Redis backups: thousands of pipelined
 * DUMP / PEXPIRETIME / RESTORE commands per batch, written as one buffer and answered as one
 * array, and the raw socket handed over for SYNC. ioredis (src/services/redis.ts) builds a
 * command object and a promise per command, which measured about 20k keys/s here; this runs
 * at the server's pace. Binary-safe: keys and values are Buffers throughout. The protocol's
 * encoding and parsing are redis-resp-codec.ts.
 */
import { JarvisError, messageOf } from '../errors.js';
import { runningHint } from './endpoint.js';
import { openRedisSocket, parseRedisUrl, type RedisSocket } from './redis.js';
import { redactUrl } from './redact.js';
import { CommandBuffer, RespError, RespParser, type Reply } from './redis-resp-codec.js';

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

  /** The connection failed or was closed: a kept one is dropped and made again (health/connections.ts). */
  get broken(): boolean {
    return this.failure !== null || this.detached || this.socket.destroyed;
  }

  close(): void {
    this.detached = true;
    for (const p of this.queue.splice(0)) p.reject(new JarvisError('INTERNAL', 'connection closed with replies pending'));
    this.socket.destroy();
  }
}

/**
 * A connection for the probes (the plan's reachability probe, health checks) on the URL's
 * database, failing in connectRedis's words ("cannot connect to Redis at …"): a plan or a check
 * does not load ioredis (~100 ms of CPU at start) for a few commands.
 */
export async function openRedisProbe(url: string, options: RespOpenOptions = {}): Promise<RespConnection> {
  let conn: RespConnection;
  try {
    conn = await RespConnection.open(url, options);
  } catch (e) {
    if (e instanceof JarvisError && e.message.startsWith(LOGIN_REFUSED)) {
      throw new JarvisError('SERVICE_UNREACHABLE', `cannot connect to Redis at${e.message.slice(LOGIN_REFUSED.length)}`, { cause: e, ...(e.hint ? { hint: e.hint } : {}) });
    }
    throw e;
  }
  const { db } = parseRedisUrl(url);
  if (db !== 0) {
    const selected = await conn.call('SELECT', db).catch((e: unknown) => e as Error);
    if (selected instanceof RespError || selected instanceof Error) {
      conn.close();
      throw new JarvisError('SERVICE_UNREACHABLE', `cannot connect to Redis at ${redactUrl(url)}: ${selected.message}`, { hint: runningHint('redis', url) });
    }
  }
  return conn;
}

const LOGIN_REFUSED = 'cannot log in to Redis at';

/** A refused login: one line, the URL redacted (the server's message never contains the password). */
export function authError(url: string, reply: RespError): JarvisError {
  const hint = reply.code === 'NOAUTH'
    ? 'the server needs a password: put it in services.redis.url (redis://:PASSWORD@host:port/db, from an environment variable)'
    : 'check the user and password in services.redis.url';
  return new JarvisError('SERVICE_UNREACHABLE', `${LOGIN_REFUSED} ${redactUrl(url)}: ${reply.message}`, { hint });
}
