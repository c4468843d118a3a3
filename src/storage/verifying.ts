/**
 * Streams that hash and count what passes (docs/architecture.md §6), shared by the sealed-store
 * implementations: `VerifyingStream` fails at the end of a read whose bytes differ from what the
 * manifest records; `HashingStream` hashes and counts the bytes being stored on their way to an
 * object store (a local file has HashingFileSink in durable.ts).
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { JarvisError } from '../errors.js';
import type { StoredFile } from './sealed-store.js';

/** Passes bytes through and fails (VERIFY_FAILED) at the end when they differ from what `file` records. */
export class VerifyingStream extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  /** `location` names the stored file in the hint; `what` names it in the message (default: its name). */
  constructor(private readonly file: StoredFile, private readonly location: string, private readonly what = file.name) {
    super({ highWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    const hint = `${this.location} is damaged: use another backup or archive`;
    if (this.bytes !== this.file.bytes) {
      done(new JarvisError('VERIFY_FAILED', `${this.what} has ${this.bytes} bytes, the manifest says ${this.file.bytes}`, { hint }));
    } else if (this.hash.digest('hex') !== this.file.sha256) {
      done(new JarvisError('VERIFY_FAILED', `${this.what} does not match its SHA-256`, { hint }));
    } else {
      done();
    }
  }
}

/**
 * Hashes (SHA-256) and counts the bytes that pass. `gate`, when given, runs before each chunk
 * passes with the count so far (a test pause point waits there for an upload to reach a part).
 */
export class HashingStream extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly gate?: (bytesSoFar: number) => Promise<void>) {
    super({ highWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const pass = (): void => {
      this.hash.update(chunk);
      this.bytes += chunk.length;
      done(null, chunk);
    };
    if (!this.gate) return pass();
    this.gate(this.bytes).then(pass, (e: unknown) => done(e as Error));
  }
  digest(): StoredFile['sha256'] {
    return this.hash.digest('hex');
  }
}
