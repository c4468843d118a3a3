/**
 * The backup catalog (docs/architecture.md §4 rule 2): it is the set of manifests in storage, beside the
 * backups, never a table inside the database they protect. Listing does cheap checks (JSON,
 * the manifest's own checksum, every named file present with its size); `verifyChecksums`
 * reads every byte.
 */
import { JarvisError, messageOf } from '../errors.js';
import { SERVICE_NAMES } from '../config/types.js';
import { formatAge } from '../render/format.js';
import { repositoriesAt, type Repository, type RepositoryPlace } from '../storage/repositories.js';
import type { SealedStore } from '../storage/sealed-store.js';
import { baseStartOf } from '../wal/prune.js';
import {
  BACKUP_ID, MANIFEST, backupKey, manifestChecksum, manifestText, sealManifest,
  type BackupManifest, type CatalogEntry, type Verification,
} from './storage.js';

export type { BackupManifest, CatalogEntry, FileEntry, Verification } from './storage.js';

/** A directory that looks like a published backup but whose manifest does not hold. */
export interface InvalidBackup { dir: string; id: string; service: string; schedule: string; problem: string; repository: string }

/** A repository whose catalog could not be read (an S3 endpoint down, wrong credentials). */
export interface UnreachableRepository { repository: string; location: string; message: string; cause?: unknown }

/** The catalog: the manifests in each repository (docs/architecture.md §6), one entry per copy. */
export interface StorageScan { valid: CatalogEntry[]; invalid: InvalidBackup[]; unreachable: UnreachableRepository[] }

/** Checks one backup cheaply. Returns the manifest or the first problem found. */
export async function readManifest(store: SealedStore, expect: { id: string; service: string; schedule: string }): Promise<BackupManifest | string> {
  const key = backupKey(expect);
  let text: string | null;
  try {
    text = await store.readText(key, MANIFEST);
  } catch {
    text = null;
  }
  if (text === null) return `${MANIFEST} is missing`;
  let m: BackupManifest;
  try {
    m = JSON.parse(text) as BackupManifest;
  } catch {
    return `${MANIFEST} is not valid JSON`;
  }
  if (!m || typeof m !== 'object' || m.formatVersion !== 1 || !Array.isArray(m.files)) return `${MANIFEST} has an unknown format`;
  if (typeof m.manifestSha256 !== 'string' || manifestChecksum(m) !== m.manifestSha256) return `${MANIFEST} fails its own checksum`;
  if (m.id !== expect.id || m.service !== expect.service || m.schedule !== expect.schedule) {
    return `${MANIFEST} names ${m.service}/${m.schedule}/${m.id}, not the directory it is in`;
  }
  for (const f of m.files) {
    const size = await store.size(key, f.name).catch(() => null);
    if (size === null) return `${f.name} is missing`;
    if (size !== f.bytes) return `${f.name} has ${size} bytes, the manifest says ${f.bytes}`;
  }
  return m;
}

/** Every published backup in one repository, split into valid and invalid (throws when it cannot be read). */
async function scanRepository(repository: Repository): Promise<{ valid: CatalogEntry[]; invalid: InvalidBackup[] }> {
  const store = repository.store('', MANIFEST);
  const valid: CatalogEntry[] = [];
  const invalid: InvalidBackup[] = [];
  for (const service of SERVICE_NAMES) {
    for (const schedule of await store.list(service)) {
      for (const id of await store.list(`${service}/${schedule}`)) {
        if (!BACKUP_ID.test(id)) continue;
        const key = backupKey({ service, schedule, id });
        const dir = store.location(key);
        const result = await readManifest(store, { id, service, schedule });
        if (typeof result === 'string') invalid.push({ dir, id, service, schedule, problem: result, repository: repository.name });
        else valid.push({ manifest: result, key, dir, store, repository: repository.name });
      }
    }
  }
  return { valid, invalid };
}

/**
 * Every published backup in every repository (a storage path: its implicit one), split into
 * valid and invalid, newest first (copies of one backup in repository order). A repository that
 * cannot be read is listed as unreachable; the others are still read.
 */
export async function scanStorage(place: RepositoryPlace): Promise<StorageScan> {
  const scan: StorageScan = { valid: [], invalid: [], unreachable: [] };
  for (const repository of repositoriesAt(place)) {
    try {
      const one = await scanRepository(repository);
      scan.valid.push(...one.valid);
      scan.invalid.push(...one.invalid);
    } catch (e) {
      scan.unreachable.push({ repository: repository.name, location: repository.location, message: messageOf(e), cause: e });
    }
  }
  scan.valid.sort(newestFirst);
  return scan;
}

/** Throws when no repository could be read: an empty listing would hide it. */
function requireSomeReachable(place: RepositoryPlace, scan: StorageScan): void {
  const total = repositoriesAt(place).length;
  const first = scan.unreachable[0];
  if (first && scan.unreachable.length === total) {
    if (total === 1 && first.cause instanceof JarvisError) throw first.cause;
    throw new JarvisError('STORAGE_FAILED', total === 1 ? first.message : `no repository can be read: ${scan.unreachable.map((u) => `${u.repository}: ${u.message}`).join('; ')}`);
  }
}

/** ISO times, then ids (ASCII both): compared as code units, without the cost of a locale's collator. */
function newestFirst(a: CatalogEntry, b: CatalogEntry): number {
  const order = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return order(b.manifest.startedAt, a.manifest.startedAt) || order(b.manifest.id, a.manifest.id);
}

/** Only published backups with a valid manifest, newest first (every copy). Fails when no repository can be read. */
export async function listBackups(place: RepositoryPlace): Promise<CatalogEntry[]> {
  const scan = await scanStorage(place);
  requireSomeReachable(place, scan);
  return scan.valid;
}

/**
 * A backup by id or unique id prefix. An id that names a backup whose manifest does not hold is
 * an error that says what is wrong with it and what to do (VERIFY_FAILED), not "not found".
 */
export async function findBackup(place: RepositoryPlace, idOrPrefix: string): Promise<CatalogEntry> {
  return (await findBackupCopies(place, idOrPrefix))[0]!;
}

/**
 * Every valid copy of the backup an id (or unique id prefix) names, in repository order: a
 * restore reads the first whose checksums hold. Not found, ambiguous or damaged everywhere: as
 * `findBackup` says.
 */
export async function findBackupCopies(place: RepositoryPlace, idOrPrefix: string): Promise<CatalogEntry[]> {
  const repositories = repositoriesAt(place);
  const scan = await scanStorage(repositories);
  requireSomeReachable(repositories, scan);
  const order = new Map(repositories.map((r, i) => [r.name, i]));
  const hits = scan.valid.filter((e) => e.manifest.id.startsWith(idOrPrefix));
  const bad = scan.invalid.filter((e) => e.id.startsWith(idOrPrefix));
  const ids = [...new Set([...hits.map((h) => h.manifest.id), ...bad.map((b) => b.id)])];
  if (ids.length > 1) {
    throw new JarvisError('USAGE', `backup id "${idOrPrefix}" is ambiguous: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}`);
  }
  if (hits.length > 0) return hits.sort((a, b) => order.get(a.repository)! - order.get(b.repository)!);
  if (bad.length > 0) {
    const b = bad[0]!;
    // Without a manifest that holds there is nothing to check the files against (nor to know how to
    // read them), so no command uses such a backup, restore --force included.
    throw new JarvisError('VERIFY_FAILED', `backup ${b.id} (${b.service}/${b.schedule}) is damaged: ${b.problem}${repositories.length > 1 ? ` (in ${bad.map((x) => x.repository).join(', ')})` : ''}`, {
      hint: 'restore another backup (`jarvis-db backup list` shows them): a backup whose manifest does not hold is refused even with --force',
    });
  }
  const where = repositories.length === 1 ? repositories[0]!.location : repositories.map((r) => `${r.name} (${r.location})`).join(', ');
  const unreachable = scan.unreachable.length ? `; not read: ${scan.unreachable.map((u) => `${u.repository} (${u.message})`).join('; ')}` : '';
  throw new JarvisError('BACKUP_NOT_FOUND', `no backup "${idOrPrefix}" in ${where}${unreachable}`, { hint: 'jarvis-db backup list shows the ids' });
}

export interface ChecksumResult { ok: boolean; bad: { name: string; problem: string }[]; bytes: number }

/** Reads every file of a backup and compares sizes and SHA-256 with the manifest. */
export async function verifyChecksums(entry: CatalogEntry, onFile?: (name: string, bytes: number) => void): Promise<ChecksumResult> {
  const bad: { name: string; problem: string }[] = [];
  let bytes = 0;
  for (const f of entry.manifest.files) {
    try {
      const actual = await entry.store.hash(entry.key, f.name);
      if (!actual) {
        bad.push({ name: f.name, problem: 'missing' });
        onFile?.(f.name, f.bytes);
        continue;
      }
      bytes += actual.bytes;
      if (actual.bytes !== f.bytes) bad.push({ name: f.name, problem: `size ${actual.bytes}, expected ${f.bytes}` });
      else if (actual.sha256 !== f.sha256) bad.push({ name: f.name, problem: 'SHA-256 mismatch' });
    } catch (e) {
      bad.push({ name: f.name, problem: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : String(e) });
    }
    onFile?.(f.name, f.bytes);
  }
  return { ok: bad.length === 0, bad, bytes };
}

/** Records the outcome of a verification in the manifest (atomic rewrite, new checksum). */
export async function recordVerification(entry: CatalogEntry, verification: Verification): Promise<CatalogEntry> {
  const { manifestSha256: _old, ...rest } = entry.manifest;
  const manifest = sealManifest({ ...rest, verification });
  await entry.store.writeRecord(entry.key, MANIFEST, manifestText(manifest));
  return { ...entry, manifest };
}

/**
 * Pure: what the VERIFIED column of `backup list` says: how and how long ago the last
 * verification was made (`checksum 2h ago`, `restore 1d ago`), `FAILED (…)`, or `never`.
 */
export function verificationLabel(verification: Verification | null, nowMs: number): string {
  if (!verification) return 'never';
  const when = `${verification.how} ${formatAge(Math.max(nowMs - Date.parse(verification.at), 0))} ago`;
  return verification.ok ? when : `FAILED (${when})`;
}

/** The observed part of the backup module (plain JSON, the contract in the team rules): one copy. */
export interface ObservedBackup {
  id: string;
  /** The repository that holds this copy (absent in observations made before repositories: the first). */
  repository?: string;
  service: string;
  schedule: string;
  startedAt: string;
  finishedAt: string;
  totalBytes: number;
  verified: boolean | null;
  /** A physical PostgreSQL base backup: where its WAL starts (what the WAL prune keeps from). */
  walStart?: { timeline: number; startLsn: string };
}

export function toObserved(entry: CatalogEntry): ObservedBackup {
  const m = entry.manifest;
  const base = baseStartOf(m);
  return {
    id: m.id, repository: entry.repository, service: m.service, schedule: m.schedule, startedAt: m.startedAt, finishedAt: m.finishedAt, totalBytes: m.totalBytes,
    verified: m.verification ? m.verification.ok : null, ...(base ? { walStart: { timeline: base.timeline, startLsn: base.startLsn } } : {}),
  };
}
