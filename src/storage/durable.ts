/**
 * Durable files, shared by backups (src/backup/storage.ts) and retention archives
 * (src/retention/store.ts): atomic publishes (temporary name, fsync, rename, fsync of the
 * directory), a sink that hashes (SHA-256) and counts while it streams and fsyncs at the end,
 * the canonical JSON that manifest checksums are taken over.
 * Moved here from src/backup/storage.ts so that both domains use one implementation.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { storageFailure, writingStorage } from './failures.js';

/** `20261124T030000Z-1a2b`: an id that sorts by time (backups, archives). */
export function newTimestampId(now: Date, random: Buffer = randomBytes(2)): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${random.toString('hex')}`;
}

/** The time a timestamp id was made at (to the second), or null for a name of another shape. */
export function timeOfTimestampId(id: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-[0-9a-f]{4}$/.exec(id);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : null;
}

/** JSON with keys sorted at every level: the form manifest checksums are taken over. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export async function fsyncPath(path: string): Promise<void> {
  await writingStorage(path, async () => {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

/** Writes a file durably and atomically: temporary name, fsync, rename, fsync of the directory. */
export async function writeFileAtomic(path: string, content: string, tmpSuffix = `.tmp-${process.pid}`): Promise<void> {
  const tmp = path + tmpSuffix;
  await writingStorage(path, async () => {
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } catch (e) {
      // a full disk must not leave a partial temporary file behind
      await handle.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await handle.close();
    await rename(tmp, path);
  });
  await fsyncPath(dirname(path));
}

/**
 * A test-only hook (inert unless JARVIS_DB_TEST_PAUSE_AT names this point): the process says
 * where it is on stderr and stops there, so a test can kill -9 it at a known moment.
 */
export async function testPausePoint(point: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const wanted = env.JARVIS_DB_TEST_PAUSE_AT;
  if (!wanted || !wanted.split(',').includes(point)) return;
  process.stderr.write(`jarvis-db: test pause at ${point}\n`);
  setInterval(() => undefined, 1 << 30);
  await new Promise<never>(() => undefined);
}

/**
 * A sink that hashes and counts what passes, writes it to a new file and fsyncs it at the end
 * (`durable: false`: not, for a scratch copy that is made again when lost).
 */
export class HashingFileSink extends Writable {
  readonly hash = createHash('sha256');
  bytes = 0;
  private handle: FileHandle | null = null;
  constructor(private readonly path: string, private readonly durable = true) {
    super({ highWaterMark: 1 << 20 });
  }
  override _construct(done: (error?: Error | null) => void): void {
    open(this.path, 'wx', 0o600).then((h) => { this.handle = h; done(); }, (e: unknown) => this.fail(e, done));
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (error?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.handle!.write(chunk).then(() => done(), (e: unknown) => this.fail(e, done));
  }
  override _writev(chunks: { chunk: Buffer }[], done: (error?: Error | null) => void): void {
    const all = Buffer.concat(chunks.map((c) => c.chunk));
    this._write(all, 'binary', done);
  }
  override _final(done: (error?: Error | null) => void): void {
    (this.durable ? this.handle!.sync() : Promise.resolve()).then(() => this.handle!.close()).then(() => { this.handle = null; done(); }, (e: unknown) => this.fail(e, done));
  }
  /** A failed write names the file (a full disk, a read-only file system) instead of only the errno. */
  private fail(e: unknown, done: (error?: Error | null) => void): void {
    void storageFailure(e, this.path).then((failure) => done(failure as Error));
  }
  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (this.handle) this.handle.close().then(() => done(error), () => done(error));
    else done(error);
  }
}

/** SHA-256 and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * The SHA-256 and size of a file another process is appending to (pg_basebackup writing its
 * tar), read as it grows, so that the hashing overlaps the writing instead of reading the whole
 * file again after it. `finished` settles when the writer has exited: the rest is read then. The
 * file may not exist yet when this starts; it must only ever be appended to.
 */
export async function hashGrowingFile(path: string, finished: Promise<unknown>, pollMs = 40): Promise<{ sha256: string; bytes: number }> {
  let done = false;
  void finished.then(() => { done = true; }, () => { done = true; });
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  let handle: FileHandle | null = null;
  try {
    for (;;) {
      const last = done; // read after the writer exited: this pass reaches the true end
      handle ??= await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' && !last) return null;
        throw e;
      });
      for (let n = 1; handle && n > 0; bytes += n) {
        n = (await handle.read(buffer, 0, buffer.length, bytes)).bytesRead;
        hash.update(buffer.subarray(0, n));
      }
      if (last) break;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } finally {
    await handle?.close();
  }
  return { sha256: hash.digest('hex'), bytes };
}

export async function listDirs(path: string): Promise<string[]> {
  try {
    const entries = await readdir(path, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** The plain files of a directory (none when it does not exist). */
export async function listFiles(path: string): Promise<string[]> {
  try {
    const entries = await readdir(path, { withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
