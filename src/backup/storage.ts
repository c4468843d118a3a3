/**
 * Backup storage (docs/architecture.md §4 rule 1): a backup exists only once its manifest is published.
 *
 * Layout: <storage>/<service>/<schedule>/<id>/ holds the data files and manifest.json.
 * While it is written, a backup lives in <storage>/<service>/<schedule>/.tmp-<id>-<pid>/, a
 * hidden name the catalog never lists. Publishing:
 *   1. every data file was fsynced when written (streamed through SHA-256, optionally encrypted);
 *   2. manifest.json.tmp is written and fsynced, renamed to manifest.json, the work dir fsynced;
 *   3. the work dir is renamed to <id> (atomic) and the schedule dir fsynced.
 * A kill before step 3 leaves a hidden dir (debris, removed by `cleanDebris` once its owner pid
 * is dead); after step 3 the backup is complete. Nothing in between is visible.
 * Service-agnostic: the postgres, redis and chroma drivers all write through `BackupWriter`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import type { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { JarvisError } from '../errors.js';
import type { ServiceName } from '../config/types.js';
import { canonicalJson, fsyncPath, hashFile, HashingFileSink, listDirs, listFiles, newTimestampId, testPausePoint } from '../storage/durable.js';
import { writingStorage } from '../storage/failures.js';
import type { EncryptionSession } from '../storage/crypto.js';
import { isAlive } from '../platform/processes.js';
import { registerStaged, unregisterStaged } from '../storage/staging.js';

// The durable-file helpers live in src/storage/durable.ts (shared with retention archives).
export { canonicalJson, exists, fsyncPath, hashFile, listDirs, testPausePoint, writeFileAtomic } from '../storage/durable.js';

export const MANIFEST = 'manifest.json';

export interface FileEntry { name: string; bytes: number; sha256: string }
export interface Verification { at: string; how: 'checksum' | 'restore'; ok: boolean; message: string }
export interface BackupManifest {
  formatVersion: 1;
  id: string;
  service: ServiceName;
  schedule: string;
  method: string;
  format?: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  serverVersion?: string;
  toolVersion?: string;
  sourceBytes?: number;
  files: FileEntry[];
  totalBytes: number;
  encrypted: boolean;
  compression?: string;
  extra: Record<string, unknown>;
  verification: Verification | null;
  manifestSha256: string;
}
export interface CatalogEntry { manifest: BackupManifest; dir: string }

/** `20261124T030000Z-1a2b`: sorts by time. */
export const newBackupId = newTimestampId;

export const BACKUP_ID = /^\d{8}T\d{6}Z-[0-9a-f]{4}$/;
/** Hidden work dirs: `.tmp-<id>-<pid>` (being written), `.prune-<id>-<pid>` (being deleted), `.restore-<id>-<pid>`. */
export const WORK_DIR = /^\.(tmp|prune|restore)-(.+)-(\d+)$/;

export function manifestChecksum(manifest: Omit<BackupManifest, 'manifestSha256'> & { manifestSha256?: string }): string {
  const { manifestSha256: _omit, ...rest } = manifest;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

export function sealManifest(manifest: Omit<BackupManifest, 'manifestSha256'>): BackupManifest {
  return { ...manifest, manifestSha256: manifestChecksum(manifest) };
}

export interface BeginOptions {
  storagePath: string;
  service: ServiceName;
  schedule: string;
  now: Date;
  encryption?: EncryptionSession | null;
  env?: NodeJS.ProcessEnv;
}

export type ManifestFields = Omit<BackupManifest, 'formatVersion' | 'id' | 'service' | 'schedule' | 'files' | 'totalBytes' | 'encrypted' | 'verification' | 'manifestSha256' | 'startedAt' | 'finishedAt' | 'durationMs'>;

/** One backup being written. Drivers add files, then `publish` makes it exist. */
export class BackupWriter {
  readonly files: FileEntry[] = [];
  private published = false;
  private constructor(
    readonly id: string,
    readonly service: ServiceName,
    readonly schedule: string,
    readonly workDir: string,
    readonly finalDir: string,
    readonly startedAt: Date,
    readonly encryption: EncryptionSession | null,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async begin(options: BeginOptions): Promise<BackupWriter> {
    checkName(options.schedule, 'schedule');
    const parent = join(options.storagePath, options.service, options.schedule);
    const id = newBackupId(options.now);
    const workDir = join(parent, `.tmp-${id}-${process.pid}`);
    await writingStorage(workDir, async () => {
      await mkdir(parent, { recursive: true });
      await mkdir(workDir, { mode: 0o700 });
    });
    registerStaged(workDir);
    await fsyncPath(parent);
    const writer = new BackupWriter(id, options.service, options.schedule, workDir, join(parent, id), options.now, options.encryption ?? null, options.env ?? process.env);
    await testPausePoint('started', writer.env);
    return writer;
  }

  get encrypted(): boolean {
    return this.encryption !== null;
  }

  /** Absolute path inside the work dir (for tools that write files themselves). */
  path(name: string): string {
    return join(this.workDir, name);
  }

  /** Streams `source` (through encryption when on) into `name`, hashing the stored bytes. */
  async writeStream(name: string, source: Readable | AsyncIterable<Buffer>): Promise<FileEntry> {
    checkFileName(name);
    const target = this.path(name);
    await writingStorage(target, () => mkdir(dirname(target), { recursive: true }));
    const sink = new HashingFileSink(target);
    const stages: (Readable | AsyncIterable<Buffer> | Transform | Writable)[] = [source];
    if (this.encryption) stages.push(this.encryption.encryptor());
    stages.push(sink);
    await (pipeline as (...s: unknown[]) => Promise<void>)(...stages);
    const entry = { name, bytes: sink.bytes, sha256: sink.hash.digest('hex') };
    this.files.push(entry);
    await testPausePoint('file-written', this.env);
    return entry;
  }

  /**
   * Takes in a file a tool wrote into the work dir (`rawName`): with encryption, streams it
   * through the encryptor into `name` and removes the plain file; without, hashes and fsyncs it.
   */
  async adoptFile(rawName: string, name: string): Promise<FileEntry> {
    const raw = this.path(rawName);
    if (this.encryption) {
      const entry = await this.writeStream(name, createReadStream(raw, { highWaterMark: 1 << 20 }));
      await unlink(raw);
      return entry;
    }
    if (rawName !== name) {
      await writingStorage(this.path(name), async () => {
        await mkdir(dirname(this.path(name)), { recursive: true });
        await rename(raw, this.path(name));
      });
    }
    const { sha256, bytes } = await hashFile(this.path(name));
    await fsyncPath(this.path(name));
    const entry = { name, bytes, sha256 };
    this.files.push(entry);
    await testPausePoint('file-written', this.env);
    return entry;
  }

  /** Writes the manifest last and renames the backup into view. Returns the published entry. */
  async publish(fields: ManifestFields, finishedAt: Date = new Date()): Promise<CatalogEntry> {
    if (this.published) throw new JarvisError('INTERNAL', `backup ${this.id} published twice`);
    // Every directory that holds a data file is fsynced, so the files' names are durable.
    const dirs = new Set<string>([this.workDir, ...this.files.map((f) => dirname(this.path(f.name)))]);
    for (const dir of dirs) await fsyncPath(dir);
    const manifest = sealManifest({
      formatVersion: 1,
      id: this.id,
      service: this.service,
      schedule: this.schedule,
      ...fields,
      startedAt: this.startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - this.startedAt.getTime(),
      files: [...this.files].sort((a, b) => (a.name < b.name ? -1 : 1)),
      totalBytes: this.files.reduce((n, f) => n + f.bytes, 0),
      encrypted: this.encrypted,
      // Every file was hashed as it was written: that is a checksum verification, made now.
      verification: { at: finishedAt.toISOString(), how: 'checksum', ok: true, message: `checksummed while writing: ${this.files.length} files` },
    });
    await testPausePoint('before-manifest', this.env);
    const tmp = this.path(`${MANIFEST}.tmp`);
    await writingStorage(tmp, async () => {
      const handle = await open(tmp, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify(manifest, null, 2) + '\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
    await testPausePoint('manifest-written', this.env);
    await writingStorage(this.path(MANIFEST), () => rename(tmp, this.path(MANIFEST)));
    await fsyncPath(this.workDir);
    await testPausePoint('manifest-renamed', this.env);
    await writingStorage(this.finalDir, () => rename(this.workDir, this.finalDir));
    unregisterStaged(this.workDir);
    await testPausePoint('dir-renamed', this.env);
    await fsyncPath(dirname(this.finalDir));
    this.published = true;
    return { manifest, dir: this.finalDir };
  }

  /** Removes the work dir of a backup that failed. */
  async abort(): Promise<void> {
    if (!this.published) await rm(this.workDir, { recursive: true, force: true });
    unregisterStaged(this.workDir);
  }
}

function checkName(value: string, what: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(value)) {
    throw new JarvisError('USAGE', `invalid ${what} name "${value}": use letters, digits, '-', '_' and '.'`);
  }
}

function checkFileName(name: string): void {
  if (name.startsWith('/') || name.split('/').some((p) => p === '..' || p === '' || p === '.') || name.startsWith(MANIFEST)) {
    throw new JarvisError('INTERNAL', `invalid backup file name "${name}"`);
  }
}

/** Hidden work dirs whose owner is dead, and stray temporary manifests: what a killed run left. */
export async function findDebris(storagePath: string, services: readonly string[] = ['postgres', 'redis', 'chroma']): Promise<string[]> {
  const found: string[] = [];
  for (const service of services) {
    for (const schedule of await listDirs(join(storagePath, service))) {
      if (schedule.startsWith('.')) continue;
      const scheduleDir = join(storagePath, service, schedule);
      for (const name of await listDirs(scheduleDir)) {
        const m = WORK_DIR.exec(name);
        if (m) {
          if (!isAlive(Number(m[3]))) found.push(join(scheduleDir, name));
          continue;
        }
        // A verification rewrite that was killed leaves manifest.json.tmp-<pid> beside a valid manifest.
        const dir = join(scheduleDir, name);
        for (const file of await listFiles(dir)) {
          const t = /^manifest\.json\.tmp-(\d+)$/.exec(file);
          if (t && !isAlive(Number(t[1]))) found.push(join(dir, file));
        }
      }
    }
  }
  return found.sort();
}

/** Removes what `findDebris` finds. Returns the paths removed. */
export async function cleanDebris(storagePath: string): Promise<string[]> {
  const debris = await findDebris(storagePath);
  // An orphaned child of a killed run (pg_dump) may still be writing there: retry briefly.
  for (const path of debris) await rm(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  return debris;
}

/** Deletes a published backup: renamed out of view first (atomic), then removed. */
export async function deleteBackup(entry: CatalogEntry): Promise<void> {
  const parent = dirname(entry.dir);
  const hidden = join(parent, `.prune-${entry.manifest.id}-${process.pid}`);
  await rename(entry.dir, hidden);
  await fsyncPath(parent);
  await rm(hidden, { recursive: true, force: true });
}
