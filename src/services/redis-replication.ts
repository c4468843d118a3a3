/**
 * A point-in-time RDB snapshot over the replication protocol, as `redis-cli --rdb` takes it:
 * log in, `REPLCONF capa eof` (we can read a diskless `$EOF:<mark>` stream),
 * `REPLCONF rdb-only 1` (the server sends the RDB and nothing after it), `SYNC`; then skip the
 * `\n` keep-alives the server sends while it prepares, and read either `$<len>` bytes
 * (disk-based sync) or a stream that ends with the 40-byte mark announced in `$EOF:<mark>`
 * (diskless sync). The payload is a Readable with backpressure: a slow disk pauses the
 * socket, the server's fork waits on its pipe, and memory stays flat.
 */
import { Readable } from 'node:stream';
import { JarvisError, messageOf } from '../errors.js';
import { redactUrl } from './redact.js';
import { RespConnection, isForbidden } from './redis-resp.js';
import { CommandBuffer, RespError } from './redis-resp-codec.js';
import { formatDuration } from '../render/format.js';

export const EOF_MARK_BYTES = 40;

export type SyncHeader = { transfer: 'eof-mark'; mark: Buffer } | { transfer: 'length'; size: number };

/** The server answered SYNC with an error line. */
export class SyncRefused extends Error {
  override name = 'SyncRefused';
  constructor(readonly reply: RespError) {
    super(reply.message);
  }
}

/**
 * The framing of a SYNC answer, fed chunk by chunk (pure). `feed` returns the payload pieces
 * in the chunk; `header` is set once read; `ended` once the whole payload went through.
 */
export class SyncPayloadReader {
  header: SyncHeader | null = null;
  ended = false;
  /** Payload bytes returned so far. */
  bytes = 0;
  private line = '';
  private remaining = 0;
  /** Diskless: the last 40 bytes seen are held back until we know they are not the mark. */
  private tail: Buffer = Buffer.alloc(0);

  feed(chunk: Buffer): Buffer[] {
    if (this.ended) return [];
    let start = 0;
    if (!this.header) {
      let i = 0;
      for (; i < chunk.length; i++) {
        const c = chunk[i]!;
        if (c === 10) {
          if (this.line.length === 0) continue; // a keep-alive
          break;
        }
        if (c !== 13) this.line += String.fromCharCode(c);
        if (this.line.length > 1024) throw new JarvisError('SERVICE_ERROR', 'Redis answered SYNC with an overlong line: not a Redis replication stream');
      }
      if (i === chunk.length) return [];
      this.header = parseSyncHeader(this.line);
      start = i + 1;
      if (this.header.transfer === 'length') {
        this.remaining = this.header.size;
        if (this.remaining === 0) { this.ended = true; return []; }
      }
    }
    const data = start ? chunk.subarray(start) : chunk;
    if (data.length === 0) return [];
    const h = this.header!;
    if (h.transfer === 'length') {
      const take = Math.min(this.remaining, data.length);
      this.remaining -= take;
      this.bytes += take;
      if (this.remaining === 0) this.ended = true;
      return take ? [take === data.length ? data : data.subarray(0, take)] : [];
    }
    const out: Buffer[] = [];
    const total = this.tail.length + data.length;
    const emit = total - EOF_MARK_BYTES;
    if (emit <= 0) {
      this.tail = Buffer.concat([this.tail, data]);
    } else if (emit >= this.tail.length) {
      if (this.tail.length) out.push(this.tail);
      const fromData = emit - this.tail.length;
      if (fromData) out.push(data.subarray(0, fromData));
      this.tail = Buffer.from(data.subarray(fromData));
    } else {
      out.push(this.tail.subarray(0, emit));
      this.tail = Buffer.concat([this.tail.subarray(emit), data]);
    }
    for (const piece of out) this.bytes += piece.length;
    if (this.tail.length === EOF_MARK_BYTES && this.tail.equals(h.mark)) this.ended = true;
    return out;
  }
}

/** `$EOF:<40 chars>`, `$<len>`, or an error line. */
export function parseSyncHeader(line: string): SyncHeader {
  if (line.startsWith('-')) throw new SyncRefused(new RespError(line.slice(1)));
  const eof = /^\$EOF:(.+)$/.exec(line);
  if (eof) {
    if (eof[1]!.length < EOF_MARK_BYTES) throw new JarvisError('SERVICE_ERROR', `Redis announced a malformed EOF mark: ${JSON.stringify(line)}`);
    return { transfer: 'eof-mark', mark: Buffer.from(eof[1]!.slice(0, EOF_MARK_BYTES), 'latin1') };
  }
  const len = /^\$(\d+)$/.exec(line);
  if (len) return { transfer: 'length', size: Number(len[1]) };
  throw new JarvisError('SERVICE_ERROR', `Redis answered SYNC with ${JSON.stringify(line.slice(0, 80))}, not an RDB transfer`);
}

/** The error for a server that does not let us replicate, with the way out. */
export function syncForbidden(url: string, reply: RespError): JarvisError {
  return new JarvisError('BACKUP_FAILED', `Redis at ${redactUrl(url)} does not allow replication (SYNC), which method: rdb needs: ${reply.message}`, {
    hint: 'set `method: logical` on this schedule (SCAN + DUMP; no replication rights needed), or allow SYNC and REPLCONF for this user (ACL +sync +replconf)',
  });
}

export interface RdbSnapshot {
  stream: Readable;
  header: SyncHeader;
  /** INFO server's redis_version (null when this user may not run INFO). */
  serverVersion: string | null;
  /** Payload bytes received so far. */
  received(): number;
}

export interface SnapshotOptions {
  /** Fail when the server sends nothing (not even a keep-alive) for this long. Default 120 s. */
  idleTimeoutMs?: number;
}

/** Starts a snapshot; resolves once the server announced the payload (or rejects with its refusal). */
export async function openRdbSnapshot(url: string, options: SnapshotOptions = {}): Promise<RdbSnapshot> {
  const idleMs = options.idleTimeoutMs ?? 120_000;
  const conn = await RespConnection.open(url, { name: 'jarvis-db rdb backup' });
  let serverVersion: string | null = null;
  try {
    const versionReply = await conn.call('INFO', 'server');
    if (typeof versionReply === 'string' || Buffer.isBuffer(versionReply)) {
      serverVersion = /redis_version:([^\r\n]+)/.exec(String(versionReply))?.[1] ?? null;
    }
    const [capa, rdbOnly] = await conn.send(new CommandBuffer(128).add('REPLCONF', 'capa', 'eof').add('REPLCONF', 'rdb-only', '1'));
    for (const r of [capa, rdbOnly]) if (r instanceof RespError && isForbidden(r)) throw syncForbidden(url, r);
    // Any other REPLCONF error is not fatal (as in redis-cli): an older server ignores rdb-only
    // and would go on streaming commands after the RDB; we close the connection at its end.
  } catch (e) {
    conn.close();
    throw e;
  }
  const socket = conn.detach();
  const reader = new SyncPayloadReader();
  let headerSettled = false;
  let resolveHeader!: (h: SyncHeader) => void;
  let rejectHeader!: (e: Error) => void;
  const headerKnown = new Promise<SyncHeader>((res, rej) => { resolveHeader = res; rejectHeader = rej; });

  const stream = new Readable({
    // Room for a few MB: a moment of scheduling delay on a busy machine then does not stall
    // the server's fork, which waits on its pipe whenever we stop reading.
    highWaterMark: 8 << 20,
    read() { socket.resume(); },
    destroy(error, done) { socket.destroy(); done(error); },
  });
  const failWith = (error: Error) => {
    if (!headerSettled) {
      // Nobody reads the stream yet: the error goes to the caller through the header promise.
      headerSettled = true;
      rejectHeader(error);
      stream.destroy();
    } else {
      stream.destroy(error);
    }
  };
  socket.setTimeout(idleMs, () => failWith(new JarvisError('BACKUP_FAILED', `Redis at ${redactUrl(url)} sent nothing for ${formatDuration(idleMs)} during SYNC`)));
  socket.on('data', (chunk: Buffer) => {
    let pieces: Buffer[];
    try {
      pieces = reader.feed(chunk);
    } catch (e) {
      failWith(e instanceof SyncRefused ? (isForbidden(e.reply) ? syncForbidden(url, e.reply) : new JarvisError('BACKUP_FAILED', `Redis at ${redactUrl(url)} refused SYNC: ${e.message}`)) : (e as Error));
      return;
    }
    if (reader.header && !headerSettled) { headerSettled = true; resolveHeader(reader.header); }
    let more = true;
    for (const p of pieces) more = stream.push(p) && more;
    if (reader.ended) {
      stream.push(null);
      socket.removeAllListeners('close');
      socket.destroy();
    } else if (!more) {
      socket.pause();
    }
  });
  socket.on('error', (e) => failWith(new JarvisError('BACKUP_FAILED', `connection to Redis at ${redactUrl(url)} failed during SYNC: ${messageOf(e)}`, { cause: e })));
  socket.on('close', () => {
    if (!reader.ended) {
      failWith(new JarvisError('BACKUP_FAILED', `Redis at ${redactUrl(url)} closed the connection after ${reader.bytes} bytes, before the end of the RDB (transfer truncated)`));
    }
  });
  socket.write('SYNC\r\n');
  const header = await headerKnown;
  return { stream, header, serverVersion, received: () => reader.bytes };
}
