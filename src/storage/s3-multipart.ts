/**
 * Streaming an object into S3 with bounded memory (docs/architecture.md §6, "S3 repositories"):
 * a Writable that sends what it receives as one PutObject when it is smaller than a part, else as
 * a multipart upload whose parts are filled into buffers taken from one pool shared by every
 * upload of the process. Memory is therefore PART_SIZE × PARTS_IN_MEMORY whatever the number of
 * files uploaded at once, and no part buffer is allocated per part (lib-storage's Upload
 * concatenated every part into a fresh 8 MiB buffer: the garbage of a large copy held the
 * process's RSS ~30 MB higher, bench/RESULTS.md).
 *
 * A failure aborts the multipart upload (best effort: one left behind by a kill is debris that
 * the store's cleanup aborts).
 */
import { Writable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { s3Sdk } from '../services/s3.js';

/** 8 MiB parts: a file can be up to 10,000 parts (78 GiB). */
export const PART_SIZE = 8 * 1024 * 1024;
/** Part buffers of the whole process: one being filled per upload, the others in flight. */
export const PARTS_IN_MEMORY = 4;

/** Fixed-size buffers lent to uploads; allocated on first need, never freed (reused). */
class PartPool {
  private readonly free: Buffer[] = [];
  private allocated = 0;
  private readonly waiting: ((buffer: Buffer) => void)[] = [];

  constructor(private readonly size: number, private readonly capacity: number) {}

  async acquire(): Promise<Buffer> {
    const buffer = this.free.pop();
    if (buffer) return buffer;
    if (this.allocated < this.capacity) {
      this.allocated++;
      return Buffer.allocUnsafe(this.size);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(buffer: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(buffer);
    else this.free.push(buffer);
  }
}

const pool = new PartPool(PART_SIZE, PARTS_IN_MEMORY);

export interface ObjectSinkOptions {
  client: S3Client;
  bucket: string;
  key: string;
  /** Turns an SDK failure into the repository's error (services/s3.ts s3Failure). */
  failure: (e: unknown, doing: string) => Error;
  /** Runs once the first part is acknowledged and the second handed over (a test pause point). */
  afterSecondPart?: () => Promise<void>;
}

/** A Writable that stores what is written to it as the object `key` once it finishes. */
export class S3ObjectSink extends Writable {
  /** Before the data reaches a part's size it may be a single PutObject: kept as it came. */
  private head: Buffer[] = [];
  private headBytes = 0;
  private uploadId: string | null = null;
  private current: Buffer | null = null;
  private filled = 0;
  private partNumber = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly parts: { PartNumber: number; ETag: string }[] = [];
  private firstPartDone: Promise<void> | null = null;
  private failed: Error | null = null;
  private completed = false;
  private cleanedUp: Promise<void> | null = null;

  constructor(private readonly options: ObjectSinkOptions) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.accept(chunk).then(() => done(), done);
  }

  override _final(done: (error?: Error | null) => void): void {
    this.finish().then(() => done(), done);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.cleanedUp = this.cleanUp();
    void this.cleanedUp.finally(() => done(error));
  }

  /**
   * Resolves once a failed upload is cleaned up (its parts settled, the multipart upload
   * aborted): a pipeline rejects as soon as a stage fails, before that.
   */
  async settled(): Promise<void> {
    await this.cleanedUp;
  }

  private async accept(chunk: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.uploadId === null) {
      if (this.headBytes + chunk.length <= PART_SIZE) {
        this.head.push(chunk);
        this.headBytes += chunk.length;
        return;
      }
      this.uploadId = await this.call('starting a multipart upload', async () => {
        const r = await this.options.client.send(new (s3Sdk().s3.CreateMultipartUploadCommand)({ Bucket: this.options.bucket, Key: this.options.key }));
        return r.UploadId!;
      });
      const head = this.head;
      this.head = [];
      this.headBytes = 0;
      for (const b of head) await this.copyIn(b);
    }
    await this.copyIn(chunk);
  }

  private async copyIn(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      this.current ??= await pool.acquire();
      const n = chunk.copy(this.current, this.filled, offset);
      offset += n;
      this.filled += n;
      if (this.filled === PART_SIZE) await this.sendPart();
    }
  }

  private async sendPart(): Promise<void> {
    const buffer = this.current!;
    const length = this.filled;
    this.current = null;
    this.filled = 0;
    const PartNumber = ++this.partNumber;
    const sent: Promise<void> = this.call(`uploading part ${PartNumber}`, () => this.options.client.send(new (s3Sdk().s3.UploadPartCommand)({
      Bucket: this.options.bucket, Key: this.options.key, UploadId: this.uploadId!, PartNumber, Body: buffer.subarray(0, length), ContentLength: length,
    }))).then((r) => {
      this.parts.push({ PartNumber, ETag: r.ETag! });
    }, (e: unknown) => {
      this.failed ??= e as Error;
    }).finally(() => {
      pool.release(buffer);
      this.inFlight.delete(sent);
    });
    this.inFlight.add(sent);
    if (PartNumber === 1) this.firstPartDone = sent;
    if (PartNumber === 2 && this.options.afterSecondPart) {
      await this.firstPartDone;
      if (this.failed) throw this.failed;
      await this.options.afterSecondPart();
    }
  }

  private async finish(): Promise<void> {
    if (this.uploadId === null) {
      const body = Buffer.concat(this.head);
      this.head = [];
      await this.call('uploading', () => this.options.client.send(new (s3Sdk().s3.PutObjectCommand)({ Bucket: this.options.bucket, Key: this.options.key, Body: body, ContentLength: body.length })));
      this.completed = true;
      return;
    }
    if (this.filled > 0) await this.sendPart();
    await Promise.all(this.inFlight);
    if (this.failed) throw this.failed;
    const parts = [...this.parts].sort((a, b) => a.PartNumber - b.PartNumber);
    await this.call('completing the multipart upload', () => this.options.client.send(new (s3Sdk().s3.CompleteMultipartUploadCommand)({
      Bucket: this.options.bucket, Key: this.options.key, UploadId: this.uploadId!, MultipartUpload: { Parts: parts },
    })));
    this.completed = true;
  }

  private async cleanUp(): Promise<void> {
    await Promise.allSettled(this.inFlight);
    if (this.current) {
      pool.release(this.current);
      this.current = null;
    }
    this.head = [];
    if (this.uploadId !== null && !this.completed) {
      await this.options.client.send(new (s3Sdk().s3.AbortMultipartUploadCommand)({ Bucket: this.options.bucket, Key: this.options.key, UploadId: this.uploadId })).catch(() => undefined);
    }
  }

  private async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.options.failure(e, doing);
    }
  }
}
