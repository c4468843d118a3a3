/**
 * Backup storage (docs/architecture.md §4 rule 1): a backup exists only once its manifest is published.
 *
 * A backup is an item of the sealed store (storage/sealed-store.ts, docs/architecture.md §6) keyed
 * `<service>/<schedule>/<id>`, whose manifest is manifest.json. Locally (storage/local-store.ts)
 * that is <storage>/<service>/<schedule>/<id>/, written as the hidden .tmp-<id>-<pid>/ until the
 * manifest is published: a kill before leaves debris, removed by `cleanDebris` once its owner pid
 * is dead; after, the backup is complete. Nothing in between is visible.
 * Service-agnostic: the postgres, redis and chroma drivers all write through `BackupWriter`.
 */
import { createHash } from 'node:crypto';
import { addAbortSignal, Readable } from 'node:stream';
import { JarvisError } from '../errors.js';
import type { ServiceName } from '../config/types.js';
import { canonicalJson, newTimestampId, testPausePoint } from '../storage/durable.js';
import type { EncryptionSession } from '../storage/crypto.js';
import { repositoriesAt, storagePathRepository, type Repository, type RepositoryPlace } from '../storage/repositories.js';
import type { Debris, LocalDirectory, SealedStore, StagedItem } from '../storage/sealed-store.js';

// The drivers' test pause points, and the hash tests reseal a tampered manifest with.
export { hashFile, testPausePoint } from '../storage/durable.js';

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
/**
 * A published backup in one repository: its manifest, its key in `store`, `dir`, where it is (for
 * messages and `--json`: a path for a local store, a URL otherwise), and the repository's name.
 * Its files are read through `store`, never through `dir`.
 */
export interface CatalogEntry { manifest: BackupManifest; key: string; dir: string; store: SealedStore; repository: string }

/** The sealed store that holds the backups of a repository (a storage path: its implicit one), docs/architecture.md §6. */
export function backupStore(place: string | Repository): SealedStore {
  return (typeof place === 'string' ? storagePathRepository(place) : place).store('', MANIFEST);
}

export function backupKey(m: { service: string; schedule: string; id: string }): string {
  return `${m.service}/${m.schedule}/${m.id}`;
}

/** `20261124T030000Z-1a2b`: sorts by time. */
export const newBackupId = newTimestampId;

export const BACKUP_ID = /^\d{8}T\d{6}Z-[0-9a-f]{4}$/;

export function manifestChecksum(manifest: Omit<BackupManifest, 'manifestSha256'> & { manifestSha256?: string }): string {
  const { manifestSha256: _omit, ...rest } = manifest;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

export function sealManifest(manifest: Omit<BackupManifest, 'manifestSha256'>): BackupManifest {
  return { ...manifest, manifestSha256: manifestChecksum(manifest) };
}

export interface BeginOptions {
  /** Where the backup is written (a storage path: its implicit repository). */
  repository: string | Repository;
  service: ServiceName;
  schedule: string;
  now: Date;
  encryption?: EncryptionSession | null;
  env?: NodeJS.ProcessEnv;
  /** Aborted when the backup is to stop: every stream being written is destroyed, no new one starts. */
  signal?: AbortSignal;
}

export type ManifestFields = Omit<BackupManifest, 'formatVersion' | 'id' | 'service' | 'schedule' | 'files' | 'totalBytes' | 'encrypted' | 'verification' | 'manifestSha256' | 'startedAt' | 'finishedAt' | 'durationMs'>;

/** One backup being written. Drivers add files, then `publish` makes it exist. */
export class BackupWriter {
  readonly files: FileEntry[] = [];
  private constructor(
    readonly id: string,
    readonly service: ServiceName,
    readonly schedule: string,
    private readonly store: SealedStore,
    readonly repository: string,
    private readonly item: StagedItem,
    readonly startedAt: Date,
    readonly encryption: EncryptionSession | null,
    private readonly env: NodeJS.ProcessEnv,
    private readonly signal?: AbortSignal,
  ) {}

  static async begin(options: BeginOptions): Promise<BackupWriter> {
    checkName(options.schedule, 'schedule');
    const id = newBackupId(options.now);
    const env = options.env ?? process.env;
    const repository = typeof options.repository === 'string' ? storagePathRepository(options.repository) : options.repository;
    const store = backupStore(repository);
    const item = await store.begin(backupKey({ service: options.service, schedule: options.schedule, id }), { env });
    const writer = new BackupWriter(id, options.service, options.schedule, store, repository.name, item, options.now, options.encryption ?? null, env, options.signal);
    await testPausePoint('started', writer.env);
    return writer;
  }

  get encrypted(): boolean {
    return this.encryption !== null;
  }

  /** Where the backup is while it is written (a hidden work dir for a local store). */
  get workDir(): string {
    return this.item.stagedLocation;
  }

  /** A local directory `name` for a tool that writes files itself (pg_dump -Fd, a staged copy); take its files in with `adoptFile`. */
  stageLocalDirectory(name: string): Promise<LocalDirectory> {
    return this.item.stageLocalDirectory(name);
  }

  /** Streams `source` (through encryption when on) into `name`, hashing the stored bytes. */
  async writeStream(name: string, source: Readable | AsyncIterable<Buffer>): Promise<FileEntry> {
    this.signal?.throwIfAborted();
    const stoppable = this.signal ? addAbortSignal(this.signal, source instanceof Readable ? source : Readable.from(source)) : source;
    const entry = await this.item.writeFile(name, stoppable, this.encryption ? [this.encryption.encryptor()] : []);
    this.files.push(entry);
    await testPausePoint('file-written', this.env);
    return entry;
  }

  /**
   * Takes in a file a tool wrote under a staged local directory (`localPath`) as `name`: with
   * encryption, streamed through the encryptor (the plain file removed); without, hashed (unless
   * `hashed` was taken while the tool wrote it) and fsynced.
   */
  async adoptFile(localPath: string, name: string, hashed?: { sha256: string; bytes: number }): Promise<FileEntry> {
    this.signal?.throwIfAborted();
    const entry = await this.item.adoptLocalFile(localPath, name, this.encryption ? [this.encryption.encryptor()] : [], hashed);
    this.files.push(entry);
    await testPausePoint('file-written', this.env);
    return entry;
  }

  /** Writes the manifest last and publishes the backup. Returns the published entry. */
  async publish(fields: ManifestFields, finishedAt: Date = new Date()): Promise<CatalogEntry> {
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
    await this.item.publish(manifestText(manifest));
    return { manifest, key: this.item.key, dir: this.item.location, store: this.store, repository: this.repository };
  }

  /** Removes what was written of a backup that failed. */
  async abort(): Promise<void> {
    await this.item.abort();
  }
}

export function manifestText(manifest: BackupManifest): string {
  return JSON.stringify(manifest, null, 2) + '\n';
}

function checkName(value: string, what: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(value)) {
    throw new JarvisError('USAGE', `invalid ${what} name "${value}": use letters, digits, '-', '_' and '.'`);
  }
}

/** What killed runs left: staged or half-deleted backups, stray manifest rewrites, of owners no longer alive. */
export async function debrisOf(store: SealedStore, services: readonly string[]): Promise<Debris[]> {
  const found: Debris[] = [];
  for (const service of services) {
    for (const schedule of await store.list(service)) {
      const prefix = `${service}/${schedule}`;
      found.push(...(await store.findDebris(prefix)));
      // A verification rewrite that was killed leaves manifest.json.tmp-<pid> beside a valid manifest.
      for (const id of await store.list(prefix)) found.push(...(await store.leftovers(`${prefix}/${id}`)).filter((l) => !l.ownerAlive));
    }
  }
  return found.sort((a, b) => (a.location < b.location ? -1 : a.location > b.location ? 1 : 0));
}

const ALL_SERVICES = ['postgres', 'redis', 'chroma'] as const;

/**
 * Where the debris of killed runs is in every repository (paths for a local store, URLs
 * otherwise). A repository that cannot be read is skipped: the catalog scan reports it.
 */
export async function findDebris(place: RepositoryPlace, services: readonly string[] = ALL_SERVICES): Promise<string[]> {
  const found: string[] = [];
  for (const repository of repositoriesAt(place)) {
    const store = backupStore(repository);
    const debris = await debrisOf(store, services).catch(() => [] as Debris[]);
    found.push(...debris.map((d) => d.location));
  }
  return found;
}

/** Removes what `findDebris` finds, in every repository that answers. Returns where it was. */
export async function cleanDebris(place: RepositoryPlace): Promise<string[]> {
  return removeDebrisIn(place, backupStore, (store) => debrisOf(store, ALL_SERVICES));
}

/**
 * Removes the debris `find` finds in each repository's store (`storeOf`: backups, recovery
 * points), in every repository that answers. Returns where it was.
 */
export async function removeDebrisIn(place: RepositoryPlace, storeOf: (repository: Repository) => SealedStore, find: (store: SealedStore) => Promise<Debris[]>): Promise<string[]> {
  const removed: string[] = [];
  for (const repository of repositoriesAt(place)) {
    const store = storeOf(repository);
    let debris: Debris[];
    try {
      debris = await find(store);
    } catch {
      continue; // unreachable: its actions are held back by the plan, its debris waits for the next run
    }
    await store.removeDebris(debris);
    removed.push(...debris.map((d) => d.location));
  }
  return removed;
}

/** Deletes a published backup: out of the listing first, then its files. */
export async function deleteBackup(entry: CatalogEntry): Promise<void> {
  await entry.store.delete(entry.key);
}
