/**
 * The sealed-store contract (sealed-store.ts, docs/architecture.md §6) on an S3-compatible object
 * store. S3 has no rename, so the staged state is a marker object beside the item's files:
 *   - item `a/b/<id>` is the objects `<prefix><subPrefix>a/b/<id>/<file>`;
 *   - begin PUTs `<id>/.staged` (run id, pid, host, startedAt, heartbeat) and rewrites it every
 *     heartbeat while staged; files are streamed (s3-multipart.ts: 8 MiB parts from one pool of 4 for the process) and hashed
 *     as they go; publish PUTs the manifest once every upload is acknowledged, then deletes the
 *     marker. A listed item (manifest, no marker) is therefore complete;
 *   - delete PUTs `<id>/.deleting`, deletes the manifest, then the other files, the marker last;
 *   - debris: a marker whose owner is gone (this host and a dead pid, or no heartbeat for a
 *     lease), files without manifest or marker, and multipart uploads left under such an item.
 * Every S3 failure is a JarvisError('REPOSITORY') naming the repository (services/s3.ts).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { JarvisError } from '../errors.js';
import { mapLimit } from '../platform/concurrency.js';
import { isAlive } from '../platform/processes.js';
import { createS3Client, isNotFound, loadS3Sdk, s3ErrorCode, s3Failure, s3Sdk, s3Url, type S3Target } from '../services/s3.js';
import { testPausePoint } from './durable.js';
import { checkKey, type AddFileOptions, type Debris, type FileSource, type Leftover, type LocalDirectory, type RunOwner, type SealedStore, type StagedItem, type StageOptions, type StoredFile } from './sealed-store.js';
import { registerStaged, unregisterStaged } from './staging.js';
import { HashingStream, VerifyingStream } from './verifying.js';
import { S3ObjectSink } from './s3-multipart.js';

export { PART_SIZE } from './s3-multipart.js';

/** Where a repository's objects are: `s3://bucket/prefix`. */
export interface S3Location {
  bucket: string;
  /** '' or ending in '/'. */
  prefix: string;
  region: string;
  /** An S3-compatible server (MinIO, Ceph, R2, s3rver); absent for AWS itself. */
  endpoint?: string;
  forcePathStyle: boolean;
}

export interface S3StoreOptions {
  /** The repository's name, for messages ("repository offsite (s3://bucket/prefix): ..."). */
  repository: string;
  /** The file whose presence publishes an item (manifest.json, archive.json). */
  manifestName: string;
  /** A folder below the repository's prefix ('archives/'), '' for its root. */
  subPrefix?: string;
  /** Where the AWS credential chain and the test pause points read their settings. */
  env?: NodeJS.ProcessEnv;
  /** Who this store's markers name (default: this process on this host). */
  owner?: RunOwner;
  /** How long a marker without a heartbeat stays its owner's (default 10 minutes). */
  leaseMs?: number;
  /** How often a staged item's marker is rewritten (default 1 minute). */
  heartbeatMs?: number;
  /** For tests: runs between unpublishing an item and removing its files (a throw simulates a crash there). */
  afterUnpublish?: (key: string) => Promise<void>;
}

export const STAGED_MARKER = '.staged';
export const DELETING_MARKER = '.deleting';
const MARKERS = new Set([STAGED_MARKER, DELETING_MARKER]);
/** Files uploaded or downloaded at once by one transfer (a copy, a download). */
export const TRANSFER_CONCURRENCY = 2;
const DEFAULT_LEASE_MS = 10 * 60_000;
const DEFAULT_HEARTBEAT_MS = 60_000;
/** DeleteObjects takes at most 1000 keys. */
const DELETE_BATCH = 1000;
/** Items whose top level is read at once while listing. */
const LISTING_CONCURRENCY = 8;
/**
 * A file being added to a published item: `.tmp-<stem>-<host tag>-<pid>` (as locally, with the
 * first 8 hex digits of the host name's SHA-256: a pid says nothing on another host).
 */
const ADDING_FILE = /^\.tmp-.+-([0-9a-f]{8})-(\d+)$/;

function hostTag(host: string): string {
  return createHash('sha256').update(host).digest('hex').slice(0, 8);
}

/** What a marker object holds. */
interface Marker { runId: string; pid: number; host: string; startedAt: string; heartbeat: string }

/** The objects directly under an item's prefix (its top level). */
interface TopLevel { files: { name: string; lastModified?: Date }[] }

type Stage = Readable | AsyncIterable<Buffer> | Transform | Writable;
const runPipeline = pipeline as (...stages: Stage[]) => Promise<void>;

/** Whether JARVIS_DB_TEST_PAUSE_AT names `point` (to arm a pause that needs setting up). */
function pauseWanted(point: string, env: NodeJS.ProcessEnv): boolean {
  return (env.JARVIS_DB_TEST_PAUSE_AT ?? '').split(',').includes(point);
}

/** File names inside an item: segments of the key charset, none a marker's name. */
function checkFileName(name: string): void {
  checkKey(name, 'file name');
  if (MARKERS.has(name)) throw new JarvisError('INTERNAL', `"${name}" is a marker's name, not a file's`);
}

const LOCAL_TEMP_PREFIX = 'jarvis-db-s3-';
/** `jarvis-db-s3-<kind>-<item>-<pid>-<mkdtemp suffix>`. */
const LOCAL_TEMP = /^jarvis-db-s3-.+-(\d+)-[A-Za-z0-9]{6}$/;

async function removeDeadLocalTemps(): Promise<void> {
  const names = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const name of names) {
    const m = LOCAL_TEMP.exec(name);
    if (m && !isAlive(Number(m[1]))) await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => undefined);
  }
}

export class S3SealedStore implements SealedStore {
  readonly manifestName: string;
  readonly owner: RunOwner;
  private clientInstance: S3Client | undefined;
  private readonly clientEnv: NodeJS.ProcessEnv | undefined;
  /** `<prefix><subPrefix>`: '' or ending in '/'. */
  readonly root: string;
  private readonly target: S3Target;
  private readonly env: NodeJS.ProcessEnv;
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  private readonly afterUnpublish: ((key: string) => Promise<void>) | undefined;

  constructor(readonly where: S3Location, options: S3StoreOptions) {
    this.manifestName = options.manifestName;
    this.owner = options.owner ?? { pid: process.pid, host: hostname() };
    this.env = options.env ?? process.env;
    this.root = `${where.prefix}${options.subPrefix ?? ''}`;
    this.target = { repository: options.repository, bucket: where.bucket, prefix: where.prefix, ...(where.endpoint ? { endpoint: where.endpoint } : {}) };
    this.clientEnv = options.env;
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.afterUnpublish = options.afterUnpublish;
  }

  // ------------------------------------------------------------ keys and calls

  /** The object key of an item's file, or the item's prefix (ending in '/') without a name; '' is the root. */
  objectKey(key: string, name?: string): string {
    const base = key === '' ? this.root : `${this.root}${checkKey(key).join('/')}/`;
    return name === undefined ? base : `${base}${name}`;
  }

  location(key: string, name?: string): string {
    const prefix = this.objectKey(key);
    const path = key === '' ? prefix : prefix.slice(0, -1);
    return s3Url(this.where.bucket, name === undefined ? path : `${prefix}${name}`);
  }

  /** Made on first use, once the SDK is loaded (`call`, `upload` and `uploads` load it). */
  get client(): S3Client {
    this.clientInstance ??= createS3Client(this.where, this.clientEnv);
    return this.clientInstance;
  }

  /** Runs one S3 call, its failure as the repository's one line. */
  async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      await loadS3Sdk();
      return await fn();
    } catch (e) {
      throw s3Failure(e, this.target, doing, this.env);
    }
  }

  /** One level below `prefix` (ending in '/'), page by page: the sub-prefixes' names and the objects'. */
  private async *levelPages(prefix: string): AsyncGenerator<{ folders: string[]; files: { name: string; lastModified?: Date }[] }> {
    let token: string | undefined;
    do {
      const page = await this.call(`listing ${s3Url(this.where.bucket, prefix)}`, () => this.client.send(new (s3Sdk().s3.ListObjectsV2Command)({
        Bucket: this.where.bucket, Prefix: prefix, Delimiter: '/', ...(token ? { ContinuationToken: token } : {}),
      })));
      yield {
        folders: (page.CommonPrefixes ?? []).map((p) => p.Prefix!.slice(prefix.length, -1)).filter((n) => n !== ''),
        files: (page.Contents ?? []).map((o) => ({ name: o.Key!.slice(prefix.length), ...(o.LastModified ? { lastModified: o.LastModified } : {}) })),
      };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Every object key below `prefix`, page by page. */
  private async *allKeys(prefix: string): AsyncGenerator<string[]> {
    let token: string | undefined;
    do {
      const page = await this.call(`listing ${s3Url(this.where.bucket, prefix)}`, () => this.client.send(new (s3Sdk().s3.ListObjectsV2Command)({
        Bucket: this.where.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}),
      })));
      yield (page.Contents ?? []).map((o) => o.Key!);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private async topLevel(prefix: string): Promise<TopLevel> {
    const top: TopLevel = { files: [] };
    for await (const page of this.levelPages(prefix)) top.files.push(...page.files);
    return top;
  }

  /** Incomplete multipart uploads below `prefix`. A server without the call (NotImplemented) has none to list. */
  private async uploads(prefix: string): Promise<{ key: string; uploadId: string; initiated?: Date }[]> {
    const found: { key: string; uploadId: string; initiated?: Date }[] = [];
    await loadS3Sdk();
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(new (s3Sdk().s3.ListMultipartUploadsCommand)({
          Bucket: this.where.bucket, Prefix: prefix, ...(keyMarker ? { KeyMarker: keyMarker } : {}), ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
        }));
      } catch (e) {
        if (s3ErrorCode(e) === 'NotImplemented') return found;
        throw s3Failure(e, this.target, `listing the multipart uploads of ${s3Url(this.where.bucket, prefix)}`, this.env);
      }
      for (const u of page.Uploads ?? []) found.push({ key: u.Key!, uploadId: u.UploadId!, ...(u.Initiated ? { initiated: u.Initiated } : {}) });
      if (!page.IsTruncated) return found;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  private async abortUploads(uploads: readonly { key: string; uploadId: string }[]): Promise<void> {
    for (const u of uploads) {
      await this.call(`aborting the upload of ${s3Url(this.where.bucket, u.key)}`, async () => {
        try {
          await this.client.send(new (s3Sdk().s3.AbortMultipartUploadCommand)({ Bucket: this.where.bucket, Key: u.key, UploadId: u.uploadId }));
        } catch (e) {
          if (s3ErrorCode(e) !== 'NoSuchUpload') throw e;
        }
      });
    }
  }

  async putText(objectKey: string, text: string): Promise<void> {
    await this.call(`writing ${s3Url(this.where.bucket, objectKey)}`, () => this.client.send(new (s3Sdk().s3.PutObjectCommand)({
      Bucket: this.where.bucket, Key: objectKey, Body: text, ContentType: 'application/json',
    })));
  }

  private async getText(objectKey: string): Promise<string | null> {
    return this.call(`reading ${s3Url(this.where.bucket, objectKey)}`, async () => {
      try {
        const out = await this.client.send(new (s3Sdk().s3.GetObjectCommand)({ Bucket: this.where.bucket, Key: objectKey }));
        return await out.Body!.transformToString('utf8');
      } catch (e) {
        if (isNotFound(e)) return null;
        throw e;
      }
    });
  }

  private async head(objectKey: string): Promise<{ bytes: number } | null> {
    return this.call(`reading ${s3Url(this.where.bucket, objectKey)}`, async () => {
      try {
        const out = await this.client.send(new (s3Sdk().s3.HeadObjectCommand)({ Bucket: this.where.bucket, Key: objectKey }));
        return { bytes: out.ContentLength ?? 0 };
      } catch (e) {
        if (isNotFound(e)) return null;
        throw e;
      }
    });
  }

  async deleteObject(objectKey: string): Promise<void> {
    await this.call(`deleting ${s3Url(this.where.bucket, objectKey)}`, () => this.client.send(new (s3Sdk().s3.DeleteObjectCommand)({ Bucket: this.where.bucket, Key: objectKey })));
  }

  /** Deletes objects in batches of 1000, in the order given batch by batch. */
  async deleteObjects(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const out = await this.call(`deleting objects under ${this.location('')}`, () => this.client.send(new (s3Sdk().s3.DeleteObjectsCommand)({
        Bucket: this.where.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      })));
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length) {
        const first = failed[0]!;
        throw s3Failure(Object.assign(new Error(first.Message ?? 'delete failed'), { name: first.Code ?? 'DeleteFailed' }), this.target, `deleting ${s3Url(this.where.bucket, first.Key ?? '')}`, this.env);
      }
    }
  }

  /**
   * Removes everything under an item's prefix so that it never lists on the way: its uploads
   * aborted, the manifest first, the other files, the markers last.
   */
  async removeItem(key: string): Promise<void> {
    const prefix = this.objectKey(key);
    await this.abortUploads(await this.uploads(prefix));
    const keys: string[] = [];
    for await (const page of this.allKeys(prefix)) keys.push(...page);
    const manifest = `${prefix}${this.manifestName}`;
    const markers = [...MARKERS].map((m) => `${prefix}${m}`);
    if (keys.includes(manifest)) await this.deleteObject(manifest);
    await this.deleteObjects(keys.filter((k) => k !== manifest && !markers.includes(k)));
    for (const m of markers) if (keys.includes(m)) await this.deleteObject(m);
  }

  /**
   * Streams `source` through `transforms` into the object `objectKey` (multipart when larger than
   * a part), hashing and counting the stored bytes. `pause` names a test pause point reached
   * once the first part is acknowledged (a kill there leaves an incomplete multipart upload).
   */
  async upload(objectKey: string, source: FileSource, transforms: readonly Transform[], options: { pause?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ bytes: number; sha256: string }> {
    const env = options.env ?? this.env;
    await loadS3Sdk();
    const pause = options.pause && pauseWanted(options.pause, env) ? options.pause : undefined;
    const hasher = new HashingStream();
    const where = s3Url(this.where.bucket, objectKey);
    const sink = new S3ObjectSink({
      client: this.client, bucket: this.where.bucket, key: objectKey,
      failure: (e, doing) => s3Failure(e, this.target, `${doing} ${where}`, this.env),
      ...(pause ? { afterSecondPart: () => testPausePoint(pause, env) } : {}),
    });
    // An S3 failure arrives as the repository's JarvisError; a source's failure as it was.
    try {
      await runPipeline(source, ...transforms, hasher, sink);
    } catch (e) {
      await sink.settled();
      throw e;
    }
    return { bytes: hasher.bytes, sha256: hasher.digest() };
  }

  private get thisHost(): string {
    return hostname();
  }

  /** Whether a marker's owner still holds it: its heartbeat is within the lease, and on this host its pid lives. */
  markerAlive(marker: Marker | null, lastModified: Date | undefined, now = Date.now()): boolean {
    const beat = marker ? Date.parse(marker.heartbeat) : lastModified?.getTime() ?? 0;
    if (!Number.isFinite(beat) || now - beat > this.leaseMs) return false;
    if (marker && marker.host === this.thisHost) return isAlive(marker.pid);
    return true;
  }

  async readMarker(objectKey: string): Promise<Marker | null> {
    const text = await this.getText(objectKey);
    if (text === null) return null;
    try {
      const m = JSON.parse(text) as Partial<Marker>;
      return typeof m.pid === 'number' && typeof m.host === 'string' && typeof m.heartbeat === 'string' ? (m as Marker) : null;
    } catch {
      return null;
    }
  }

  newMarker(runId: string, startedAt: string): Marker {
    return { runId, pid: this.owner.pid, host: this.owner.host, startedAt, heartbeat: new Date().toISOString() };
  }

  // ------------------------------------------------------------ the contract

  async begin(key: string, options: StageOptions = {}): Promise<StagedItem> {
    const env = options.env ?? this.env;
    const prefix = this.objectKey(key);
    // An item is written once: staging over existing objects would let abort delete them.
    const existing = await this.call(`listing ${this.location(key)}`, () => this.client.send(new (s3Sdk().s3.ListObjectsV2Command)({ Bucket: this.where.bucket, Prefix: prefix, MaxKeys: 1 })));
    if (existing.KeyCount || existing.Contents?.length) {
      throw new JarvisError('REPOSITORY', `repository ${this.target.repository} (${s3Url(this.where.bucket, this.where.prefix)}): ${this.location(key)} already exists`, {
        hint: 'an item is written once under a new id; remove the debris of a killed run first if that is what is there',
      });
    }
    const marker = this.newMarker(randomUUID(), new Date().toISOString());
    await this.putText(`${prefix}${STAGED_MARKER}`, JSON.stringify(marker));
    const item = new S3StagedItem(this, key, marker, env);
    await testPausePoint('s3.after-marker', env);
    return item;
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.objectKey(prefix);
    const names: string[] = [];
    for await (const page of this.levelPages(base)) {
      // A folder (a schedule, a policy) has only deeper objects; an item is listed once published and unmarked.
      const shown = await mapLimit(page.folders, LISTING_CONCURRENCY, async (name) => {
        const top = await this.topLevel(`${base}${name}/`);
        const files = new Set(top.files.map((f) => f.name));
        if (files.has(STAGED_MARKER) || files.has(DELETING_MARKER)) return false;
        return files.has(this.manifestName) || files.size === 0;
      });
      names.push(...page.folders.filter((_, i) => shown[i]));
    }
    return names.sort();
  }

  async files(key: string): Promise<string[]> {
    const top = await this.topLevel(this.objectKey(key));
    return top.files.map((f) => f.name).filter((n) => !MARKERS.has(n)).sort();
  }

  async readText(key: string, name: string): Promise<string | null> {
    checkKey(name, 'file name');
    return this.getText(this.objectKey(key, name));
  }

  async size(key: string, name: string): Promise<number | null> {
    checkKey(name, 'file name');
    return (await this.head(this.objectKey(key, name)))?.bytes ?? null;
  }

  async hash(key: string, name: string): Promise<{ sha256: string; bytes: number } | null> {
    checkKey(name, 'file name');
    const objectKey = this.objectKey(key, name);
    const body = await this.call(`reading ${s3Url(this.where.bucket, objectKey)}`, async () => {
      try {
        return (await this.client.send(new (s3Sdk().s3.GetObjectCommand)({ Bucket: this.where.bucket, Key: objectKey }))).Body as Readable;
      } catch (e) {
        if (isNotFound(e)) return null;
        throw e;
      }
    });
    if (!body) return null;
    const hash = createHash('sha256');
    let bytes = 0;
    await this.call(`reading ${s3Url(this.where.bucket, objectKey)}`, async () => {
      for await (const chunk of body) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
    });
    return { sha256: hash.digest('hex'), bytes };
  }

  read(key: string, file: StoredFile): Readable {
    checkKey(file.name, 'file name');
    const objectKey = this.objectKey(key, file.name);
    const url = s3Url(this.where.bucket, objectKey);
    const check = new VerifyingStream(file, url, url);
    this.call(`reading ${url}`, () => this.client.send(new (s3Sdk().s3.GetObjectCommand)({ Bucket: this.where.bucket, Key: objectKey }))).then((out) => {
      const body = out.Body as Readable;
      // A reader that gave up before the object came frees the connection at once.
      if (check.destroyed) return void body.destroy();
      body.on('error', (e) => check.destroy(s3Failure(e, this.target, `reading ${url}`, this.env)));
      check.on('close', () => body.destroy());
      body.pipe(check);
    }, (e: unknown) => check.destroy(e as Error));
    return check;
  }

  async writeRecord(key: string, name: string, text: string): Promise<void> {
    checkFileName(name);
    // A PUT replaces an object atomically: readers see the old record or the new one.
    await this.putText(this.objectKey(key, name), text);
  }

  async addFile(key: string, name: string, source: FileSource, options: AddFileOptions = {}): Promise<StoredFile> {
    checkFileName(name);
    const env = options.env ?? this.env;
    const staged = this.objectKey(key, this.stagedFileName(name));
    const final = this.objectKey(key, name);
    const file = await this.upload(staged, source, options.transforms ?? [], { pause: 's3.add-file-part', env });
    if (options.stagedPause) await testPausePoint(options.stagedPause, env);
    await testPausePoint('s3.add-file-staged', env);
    // CopyObject puts the complete file in place in one step (up to 5 GB: chunks are far smaller).
    await this.call(`copying to ${s3Url(this.where.bucket, final)}`, () => this.client.send(new (s3Sdk().s3.CopyObjectCommand)({
      Bucket: this.where.bucket, Key: final, CopySource: `${this.where.bucket}/${staged.split('/').map(encodeURIComponent).join('/')}`,
    })));
    await testPausePoint('s3.add-file-copied', env);
    await this.deleteObject(staged);
    return { name, ...file };
  }

  async removeFiles(key: string, names: readonly string[]): Promise<void> {
    // One at a time, in order: a record goes before its data. Deleting a missing object succeeds.
    for (const name of names) {
      checkFileName(name);
      await this.deleteObject(this.objectKey(key, name));
    }
  }

  async delete(key: string): Promise<void> {
    const prefix = this.objectKey(key);
    const manifest = `${prefix}${this.manifestName}`;
    if (!(await this.head(manifest))) {
      throw new JarvisError('REPOSITORY', `repository ${this.target.repository} (${s3Url(this.where.bucket, this.where.prefix)}): ${this.location(key)} is not a published item`, {
        hint: 'list the repository again: it may have been deleted already',
      });
    }
    const env = this.env;
    const now = new Date().toISOString();
    await this.putText(`${prefix}${DELETING_MARKER}`, JSON.stringify(this.newMarker(randomUUID(), now)));
    await testPausePoint('s3.after-deleting-marker', env);
    await this.deleteObject(manifest);
    await testPausePoint('s3.after-manifest-delete', env);
    await this.afterUnpublish?.(key);
    await this.removeItem(key);
  }

  async findDebris(prefix: string): Promise<Debris[]> {
    const base = this.objectKey(prefix);
    const found = new Map<string, Debris>();
    const seen = new Set<string>();
    const keyOf = (name: string): string => (prefix === '' ? name : `${prefix}/${name}`);
    for await (const page of this.levelPages(base)) {
      const debris = await mapLimit(page.folders, LISTING_CONCURRENCY, async (name) => {
        seen.add(name);
        const itemPrefix = `${base}${name}/`;
        const top = await this.topLevel(itemPrefix);
        const byName = new Map(top.files.map((f) => [f.name, f]));
        for (const markerName of [DELETING_MARKER, STAGED_MARKER]) {
          const marker = byName.get(markerName);
          if (marker) return !this.markerAlive(await this.readMarker(`${itemPrefix}${markerName}`), marker.lastModified);
        }
        // Files without a manifest and without a marker: what a killed delete or abort left.
        return top.files.length > 0 && !byName.has(this.manifestName);
      });
      page.folders.forEach((name, i) => { if (debris[i]) found.set(name, { key: keyOf(name), location: this.location(keyOf(name)) }); });
    }
    // Multipart uploads of an item with no object left (its removal was killed before the aborts).
    for (const u of await this.uploads(base)) {
      const name = u.key.slice(base.length).split('/')[0]!;
      if (!seen.has(name) && !found.has(name)) found.set(name, { key: keyOf(name), location: this.location(keyOf(name)) });
    }
    return [...found.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  /** The staged name of a file being added to a published item. */
  stagedFileName(name: string): string {
    return `.tmp-${name.split('.')[0]!}-${hostTag(this.owner.host)}-${this.owner.pid}`;
  }

  async leftovers(key: string): Promise<Leftover[]> {
    const prefix = this.objectKey(key);
    const found = new Map<string, Leftover>();
    // Alive: this host's and its pid lives, or another host's and younger than a lease.
    const alive = (m: RegExpExecArray, since: Date | undefined): boolean => {
      if (m[1] === hostTag(hostname())) return isAlive(Number(m[2]));
      return since !== undefined && Date.now() - since.getTime() <= this.leaseMs;
    };
    for (const f of (await this.topLevel(prefix)).files) {
      const m = ADDING_FILE.exec(f.name);
      if (m) found.set(f.name, { key, name: f.name, location: this.location(key, f.name), ownerAlive: alive(m, f.lastModified) });
    }
    // A staged file still being uploaded in parts, or whose upload a kill left incomplete.
    for (const u of await this.uploads(prefix)) {
      const name = u.key.slice(prefix.length);
      const m = ADDING_FILE.exec(name);
      if (m && !found.has(name)) found.set(name, { key, name, location: this.location(key, name), ownerAlive: alive(m, u.initiated) });
    }
    return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async removeDebris(debris: readonly Debris[]): Promise<void> {
    for (const d of debris) {
      if (d.name === undefined) {
        await this.removeItem(d.key);
        continue;
      }
      const objectKey = this.objectKey(d.key, d.name);
      await this.abortUploads((await this.uploads(objectKey)).filter((u) => u.key === objectKey));
      await this.deleteObject(objectKey);
    }
  }

  async openLocalDirectory(key: string): Promise<LocalDirectory> {
    const prefix = this.objectKey(key);
    const dir = await this.localTemp(key, 'open');
    try {
      // The manifest's files ({ name, bytes, sha256 }) are verified as they are downloaded.
      const recorded = new Map<string, StoredFile>();
      const manifest = await this.getText(`${prefix}${this.manifestName}`);
      try {
        const files = (JSON.parse(manifest ?? '{}') as { files?: unknown }).files;
        if (Array.isArray(files)) {
          for (const f of files as Partial<StoredFile>[]) {
            if (typeof f.name === 'string' && typeof f.bytes === 'number' && typeof f.sha256 === 'string') recorded.set(f.name, f as StoredFile);
          }
        }
      } catch {
        // not JSON with files: the files are downloaded as they are
      }
      for await (const page of this.allKeys(prefix)) {
        const names = page.map((objectKey) => objectKey.slice(prefix.length)).filter((name) => !MARKERS.has(name) && !ADDING_FILE.test(name));
        await mapLimit(names, TRANSFER_CONCURRENCY, async (name) => {
          const objectKey = `${prefix}${name}`;
          const out = join(dir.path, ...name.split('/'));
          await mkdir(dirname(out), { recursive: true });
          const file = recorded.get(name);
          const source = file ? this.read(key, file) : await this.call(`reading ${s3Url(this.where.bucket, objectKey)}`, async () => (await this.client.send(new (s3Sdk().s3.GetObjectCommand)({ Bucket: this.where.bucket, Key: objectKey }))).Body as Readable);
          await runPipeline(source, createWriteStream(out, { mode: 0o600 }));
        });
      }
    } catch (e) {
      await dir.release();
      throw e;
    }
    return dir;
  }

  async scratchDirectory(key: string): Promise<LocalDirectory> {
    return this.localTemp(key, 'restore');
  }

  /**
   * A local temporary directory for work on an item, removed by a forced exit (storage/staging.ts).
   * A kill -9 cannot remove it: the next one made on this host removes those whose pid is dead
   * (a staged pg_dump or a download can be as large as a backup).
   */
  async localTemp(key: string, kind: string): Promise<LocalDirectory> {
    const last = checkKey(key).pop()!;
    await removeDeadLocalTemps();
    const path = await mkdtemp(join(tmpdir(), `${LOCAL_TEMP_PREFIX}${kind}-${last}-${process.pid}-`));
    registerStaged(path);
    return {
      path,
      release: async () => {
        await rm(path, { recursive: true, force: true });
        unregisterStaged(path);
      },
    };
  }
}

class S3StagedItem implements StagedItem {
  readonly location: string;
  readonly stagedLocation: string;
  private readonly localDirs = new Map<string, { name: string; dir: LocalDirectory }>();
  private readonly heartbeat: NodeJS.Timeout;
  private done = false;

  constructor(private readonly store: S3SealedStore, readonly key: string, private readonly marker: Marker, private readonly env: NodeJS.ProcessEnv) {
    this.location = store.location(key);
    this.stagedLocation = store.location(key);
    // The marker's heartbeat keeps the item this run's while it lives (a lease for other hosts).
    // One beat at a time (a slow PUT is not overtaken by an older one); a failed beat is retried at the next.
    let beating = false;
    this.heartbeat = setInterval(() => {
      if (beating || this.done) return;
      beating = true;
      this.store.putText(this.objectKey(STAGED_MARKER), JSON.stringify({ ...this.marker, heartbeat: new Date().toISOString() }))
        .catch(() => undefined)
        .finally(() => { beating = false; });
    }, store.heartbeatMs);
    this.heartbeat.unref();
  }

  private objectKey(name: string): string {
    return this.store.objectKey(this.key, name);
  }

  private checkName(name: string): void {
    checkFileName(name);
    if (this.done) throw new JarvisError('INTERNAL', `${this.key} is no longer staged`);
    if (name === this.store.manifestName || name.startsWith(`${this.store.manifestName}.`)) throw new JarvisError('INTERNAL', `"${name}" is the manifest's name: it is written by publish`);
  }

  async writeFile(name: string, source: FileSource, transforms: Transform[] = []): Promise<StoredFile> {
    this.checkName(name);
    const file = await this.store.upload(this.objectKey(name), source, transforms, { pause: 's3.upload-part', env: this.env });
    await testPausePoint('s3.file-uploaded', this.env);
    return { name, ...file };
  }

  async stageLocalDirectory(name: string): Promise<LocalDirectory> {
    this.checkName(name);
    const dir = await this.store.localTemp(this.key, 'stage');
    this.localDirs.set(dir.path, { name, dir });
    return {
      path: dir.path,
      release: async () => {
        this.localDirs.delete(dir.path);
        await dir.release();
      },
    };
  }

  async adoptLocalFile(localPath: string, name: string, transforms: Transform[] = []): Promise<StoredFile> {
    this.checkName(name);
    const inside = [...this.localDirs.keys()].some((root) => {
      const rel = relative(root, localPath);
      return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
    });
    if (!inside) throw new JarvisError('INTERNAL', `${localPath} is not in a staged local directory of ${this.key}`);
    const file = await this.store.upload(this.objectKey(name), createReadStream(localPath, { highWaterMark: 1 << 20 }), transforms, { pause: 's3.upload-part', env: this.env });
    // Uploaded: the local copy is no longer needed (a large dump would otherwise take the disk twice).
    await unlink(localPath).catch(() => undefined);
    await testPausePoint('s3.file-uploaded', this.env);
    return { name, ...file };
  }

  private async finish(): Promise<void> {
    this.done = true;
    clearInterval(this.heartbeat);
    for (const { dir } of this.localDirs.values()) await dir.release();
    this.localDirs.clear();
  }

  async publish(manifest: string): Promise<void> {
    if (this.done) throw new JarvisError('INTERNAL', `${this.key} published twice`);
    // Every upload was acknowledged when its writeFile/adoptLocalFile returned: the manifest goes last.
    await testPausePoint('s3.before-manifest', this.env);
    // A cleaner that took the item for debris (a lease expired under a stalled run) removed the
    // marker with the files: publishing now would list an incomplete item.
    if ((await this.store.readMarker(this.objectKey(STAGED_MARKER)))?.runId !== this.marker.runId) {
      await this.finish();
      throw new JarvisError('REPOSITORY', `${this.location}: the staged item was removed before it was published (taken for debris: its marker's heartbeat was older than the lease)`, {
        hint: 'run it again; if it happens again, look for a cleaner on another host and for what stalled this run',
      });
    }
    await this.store.putText(this.objectKey(this.store.manifestName), manifest);
    await testPausePoint('s3.after-manifest', this.env);
    await this.finish();
    await this.store.deleteObject(this.objectKey(STAGED_MARKER));
  }

  async abort(): Promise<void> {
    if (this.done) return;
    await this.finish();
    await this.store.removeItem(this.key);
  }
}

export function openS3Store(location: S3Location, options: S3StoreOptions): SealedStore {
  return new S3SealedStore(location, options);
}
