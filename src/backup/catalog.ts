/**
 * The backup catalog (docs/architecture.md §4 rule 2): it is the set of manifests in storage, beside the
 * backups, never a table inside the database they protect. Listing does cheap checks (JSON,
 * the manifest's own checksum, every named file present with its size); `verifyChecksums`
 * reads every byte.
 */
import { JarvisError } from '../errors.js';
import { SERVICE_NAMES } from '../config/types.js';
import { formatAge } from '../render/format.js';
import type { SealedStore } from '../storage/sealed-store.js';
import {
  BACKUP_ID, MANIFEST, backupKey, backupStore, manifestChecksum, manifestText, sealManifest,
  type BackupManifest, type CatalogEntry, type Verification,
} from './storage.js';

export type { BackupManifest, CatalogEntry, FileEntry, Verification } from './storage.js';

/** A directory that looks like a published backup but whose manifest does not hold. */
export interface InvalidBackup { dir: string; id: string; service: string; schedule: string; problem: string }

export interface StorageScan { valid: CatalogEntry[]; invalid: InvalidBackup[] }

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

/** Every published backup under storage, split into valid and invalid. */
export async function scanStorage(storagePath: string): Promise<StorageScan> {
  const store = backupStore(storagePath);
  const valid: CatalogEntry[] = [];
  const invalid: InvalidBackup[] = [];
  for (const service of SERVICE_NAMES) {
    for (const schedule of await store.list(service)) {
      for (const id of await store.list(`${service}/${schedule}`)) {
        if (!BACKUP_ID.test(id)) continue;
        const key = backupKey({ service, schedule, id });
        const dir = store.location(key);
        const result = await readManifest(store, { id, service, schedule });
        if (typeof result === 'string') invalid.push({ dir, id, service, schedule, problem: result });
        else valid.push({ manifest: result, key, dir, store });
      }
    }
  }
  valid.sort(newestFirst);
  return { valid, invalid };
}

function newestFirst(a: CatalogEntry, b: CatalogEntry): number {
  const t = b.manifest.startedAt.localeCompare(a.manifest.startedAt);
  return t !== 0 ? t : b.manifest.id.localeCompare(a.manifest.id);
}

/** Only published backups with a valid manifest, newest first. */
export async function listBackups(storagePath: string): Promise<CatalogEntry[]> {
  return (await scanStorage(storagePath)).valid;
}

/**
 * A backup by id or unique id prefix. An id that names a backup whose manifest does not hold is
 * an error that says what is wrong with it and what to do (VERIFY_FAILED), not "not found".
 */
export async function findBackup(storagePath: string, idOrPrefix: string): Promise<CatalogEntry> {
  const { valid, invalid } = await scanStorage(storagePath);
  const hits = valid.filter((e) => e.manifest.id.startsWith(idOrPrefix));
  const bad = invalid.filter((e) => e.id.startsWith(idOrPrefix));
  if (hits.length + bad.length > 1) {
    const ids = [...hits.map((h) => h.manifest.id), ...bad.map((b) => b.id)];
    throw new JarvisError('USAGE', `backup id "${idOrPrefix}" is ambiguous: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}`);
  }
  if (hits.length === 1) return hits[0]!;
  if (bad.length === 1) {
    const b = bad[0]!;
    // Without a manifest that holds there is nothing to check the files against (nor to know how to
    // read them), so no command uses such a backup, restore --force included.
    throw new JarvisError('VERIFY_FAILED', `backup ${b.id} (${b.service}/${b.schedule}) is damaged: ${b.problem}`, {
      hint: 'restore another backup (`jarvis-db backup list` shows them): a backup whose manifest does not hold is refused even with --force',
    });
  }
  throw new JarvisError('BACKUP_NOT_FOUND', `no backup "${idOrPrefix}" in ${storagePath}`, { hint: 'jarvis-db backup list shows the ids' });
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

/** The observed part of the backup module (plain JSON, the contract in the team rules). */
export interface ObservedBackup {
  id: string;
  service: string;
  schedule: string;
  startedAt: string;
  finishedAt: string;
  totalBytes: number;
  verified: boolean | null;
}

export function toObserved(entry: CatalogEntry): ObservedBackup {
  const m = entry.manifest;
  return { id: m.id, service: m.service, schedule: m.schedule, startedAt: m.startedAt, finishedAt: m.finishedAt, totalBytes: m.totalBytes, verified: m.verification ? m.verification.ok : null };
}
