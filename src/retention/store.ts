/**
 * Archive storage (docs/architecture.md §4 rules 1-3 applied to retention): the archives live with the
 * backups, under `<storage>/archives/<policy>/<archive id>/`:
 *
 *   archive.json               the header: policy, table, cut-off, database, writer pid
 *   chunk-000001.jsonl.gz      a batch of rows (src/retention/chunk.ts)
 *   chunk-000001.json          its manifest; its presence publishes the chunk
 *   chunk-000001.committed     the transaction that deleted the chunk's rows committed
 *
 * A chunk is written (data fsynced, renamed, manifest fsynced and renamed, directory fsynced)
 * BEFORE the transaction that deletes its rows commits. So a published chunk is in one of
 * three states: committed (its rows are gone from the table: it counts), aborted (the delete
 * rolled back, the rows are still in the table: the chunk is void and removed, so a restore
 * never inserts those rows a second time), or pending (not known yet: resolved against the
 * server's commit log by `resolve.ts`). `.committed` markers cache the answer.
 * An archive being created is a hidden `.tmp-<id>-<pid>` directory until its header is durable.
 */
import { hostname } from 'node:os';
import { mkdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JarvisError, messageOf } from '../errors.js';
import type { EncryptionSession, KeyRing } from '../storage/crypto.js';
import { isAlive } from '../platform/processes.js';
import { exists, fsyncPath, listDirs, listFiles, newTimestampId, testPausePoint, writeFileAtomic } from '../storage/durable.js';
import { writingStorage } from '../storage/failures.js';
import { registerStaged, unregisterStaged } from '../storage/staging.js';
import { chunkBaseName, manifestDigest, readChunk, sealChunkManifest, writeChunkData, type ChunkManifest, type ChunkPart, type ChunkReadResult, type ChunkTable } from './chunk.js';

export const ARCHIVES = 'archives';
export const HEADER = 'archive.json';
export const ARCHIVE_ID = /^\d{8}T\d{6}Z-[0-9a-f]{4}$/;
const CHUNK_MANIFEST = /^chunk-(\d{6})\.json$/;
const CHUNK_DATA = /^chunk-(\d{6})\.jsonl\.gz(\.enc)?$/;
const CHUNK_MARK = /^chunk-(\d{6})\.committed$/;
const WORK = /^\.(tmp|prune)-(.+)-(\d+)$/;
/** Fast compression: archiving must keep pace with a plain DELETE; JSON lines still shrink 4-8×. */
const GZIP_LEVEL = 1;

export interface DatabaseIdentity {
  /** pg_control_system().system_identifier: which cluster the xids belong to. */
  systemIdentifier: string;
  database: string;
}

export interface ArchiveHeader {
  formatVersion: 1;
  kind: 'jarvis-db-archive';
  id: string;
  policy: string;
  /** `schema.name` */
  table: string;
  children: string[];
  ageColumn: string;
  cutoff: string;
  createdAt: string;
  writer: { pid: number; host: string };
  database: DatabaseIdentity;
  encrypted: boolean;
}

export type ChunkState = 'committed' | 'pending';

export interface ChunkEntry {
  manifest: ChunkManifest;
  state: ChunkState;
}

export interface ArchiveEntry {
  header: ArchiveHeader;
  dir: string;
  chunks: ChunkEntry[];
  /** Chunk manifests that fail their own checksum, or unreadable ones. */
  damaged: { name: string; problem: string }[];
}

export function archivesRoot(storagePath: string): string {
  return join(storagePath, ARCHIVES);
}

function checkPolicyName(policy: string): void {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(policy)) throw new JarvisError('USAGE', `invalid policy name "${policy}" for an archive directory`);
}

function isOwnerAlive(header: Pick<ArchiveHeader, 'writer'>): boolean {
  return header.writer.host === hostname() && isAlive(header.writer.pid);
}

/** One archive being written by this process: chunks are published one by one. */
export class ArchiveWriter {
  private next = 1;
  private readonly committed: number[] = [];
  private constructor(readonly header: ArchiveHeader, readonly dir: string, private readonly encryption: EncryptionSession | null, private readonly env: NodeJS.ProcessEnv) {}

  static async begin(storagePath: string, fields: Omit<ArchiveHeader, 'formatVersion' | 'kind' | 'id' | 'createdAt' | 'writer' | 'encrypted'>, options: { now: Date; encryption: EncryptionSession | null; env: NodeJS.ProcessEnv }): Promise<ArchiveWriter> {
    checkPolicyName(fields.policy);
    const parent = join(archivesRoot(storagePath), fields.policy);
    const id = newTimestampId(options.now);
    const header: ArchiveHeader = {
      formatVersion: 1, kind: 'jarvis-db-archive', id, ...fields, createdAt: options.now.toISOString(),
      writer: { pid: process.pid, host: hostname() }, encrypted: options.encryption !== null,
    };
    const work = join(parent, `.tmp-${id}-${process.pid}`);
    await writingStorage(work, async () => {
      await mkdir(parent, { recursive: true });
      await mkdir(work, { mode: 0o700 });
    });
    registerStaged(work);
    await writeFileAtomic(join(work, HEADER), JSON.stringify(header, null, 2) + '\n');
    const dir = join(parent, id);
    await writingStorage(dir, () => rename(work, dir));
    unregisterStaged(work);
    await fsyncPath(parent);
    return new ArchiveWriter(header, dir, options.encryption, options.env);
  }

  /**
   * Writes one chunk durably and publishes it. After this returns the chunk survives a crash;
   * it counts once the transaction `xid` (which must delete exactly these rows) commits.
   */
  async publishChunk(parts: (ChunkPart & { meta: Omit<ChunkTable, 'rows' | 'table'> })[], fields: { xid: string; now: Date }): Promise<ChunkManifest> {
    const chunk = this.next++;
    const base = chunkBaseName(chunk);
    const dataName = `${base}.jsonl.gz${this.encryption ? '.enc' : ''}`;
    const tmp = join(this.dir, `.tmp-${base}-${process.pid}`);
    registerStaged(tmp);
    const { bytes, sha256 } = await writeChunkData(tmp, parts, { gzipLevel: GZIP_LEVEL, encryption: this.encryption });
    await testPausePoint('chunk-data-written', this.env);
    await writingStorage(join(this.dir, dataName), () => rename(tmp, join(this.dir, dataName)));
    unregisterStaged(tmp);
    const manifest = sealChunkManifest({
      formatVersion: 1, kind: 'jarvis-db-archive-chunk', archiveId: this.header.id, policy: this.header.policy, chunk,
      xid: fields.xid, createdAt: fields.now.toISOString(), cutoff: this.header.cutoff, ageColumn: this.header.ageColumn,
      tables: parts.map((p) => ({ table: p.table, ...p.meta, rows: p.lines.length })),
      rows: parts.reduce((n, p) => n + p.lines.length, 0),
      file: { name: dataName, bytes, sha256, compression: 'gzip', encrypted: this.encryption !== null },
    });
    // writeFileAtomic fsyncs the manifest and the directory (which also makes the data's rename durable).
    await writeFileAtomic(join(this.dir, `${base}.json`), JSON.stringify(manifest, null, 2) + '\n');
    return manifest;
  }

  /** The delete committed: cache it (the server's commit log is the truth until then). */
  async markCommitted(chunk: number): Promise<void> {
    const marker = join(this.dir, `${chunkBaseName(chunk)}.committed`);
    await writingStorage(marker, () => writeFile(marker, '', { mode: 0o600 }));
    this.committed.push(chunk);
  }

  /** The delete rolled back: the rows are still in the table, so the chunk must not count. */
  async voidChunk(manifest: ChunkManifest): Promise<void> {
    await removeChunk(this.dir, manifest);
  }

  get committedChunks(): number {
    return this.committed.length;
  }

  /** Makes the markers durable; removes the archive if no chunk committed. */
  async finish(): Promise<boolean> {
    if (this.committed.length === 0) {
      const chunks = (await listFiles(this.dir)).filter((f) => CHUNK_MANIFEST.test(f));
      if (chunks.length === 0) {
        await removeArchiveDir(this.dir, this.header.id);
        return false;
      }
    }
    await fsyncPath(this.dir);
    return true;
  }
}

/** Unpublishes a chunk (manifest first), then removes its data and marker. */
export async function removeChunk(dir: string, manifest: Pick<ChunkManifest, 'chunk' | 'file'>): Promise<void> {
  const base = chunkBaseName(manifest.chunk);
  await unlink(join(dir, `${base}.json`)).catch(ignoreMissing);
  await fsyncPath(dir);
  await unlink(join(dir, manifest.file.name)).catch(ignoreMissing);
  await unlink(join(dir, `${base}.committed`)).catch(ignoreMissing);
}

function ignoreMissing(e: NodeJS.ErrnoException): void {
  if (e.code !== 'ENOENT') throw e;
}

async function removeArchiveDir(dir: string, id: string): Promise<void> {
  const parent = join(dir, '..');
  const hidden = join(parent, `.prune-${id}-${process.pid}`);
  await rename(dir, hidden);
  await fsyncPath(parent);
  await rm(hidden, { recursive: true, force: true });
}

/** Deletes a whole archive (deleteAfter expiry): renamed out of view first, then removed. */
export async function deleteArchive(entry: ArchiveEntry): Promise<void> {
  await removeArchiveDir(entry.dir, entry.header.id);
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

async function readArchive(dir: string, id: string): Promise<ArchiveEntry | { problem: string }> {
  let header: ArchiveHeader;
  try {
    header = await readJson<ArchiveHeader>(join(dir, HEADER));
  } catch (e) {
    return { problem: `unreadable ${HEADER}: ${messageOf(e)}` };
  }
  if (header.kind !== 'jarvis-db-archive' || header.id !== id) return { problem: `${HEADER} does not describe archive ${id}` };
  const files = await listFiles(dir);
  const marks = new Set(files.filter((f) => CHUNK_MARK.test(f)).map((f) => Number(CHUNK_MARK.exec(f)![1])));
  const chunks: ChunkEntry[] = [];
  const damaged: ArchiveEntry['damaged'] = [];
  for (const name of files.filter((f) => CHUNK_MANIFEST.test(f))) {
    try {
      const manifest = await readJson<ChunkManifest>(join(dir, name));
      if (manifest.kind !== 'jarvis-db-archive-chunk' || manifestDigest(manifest) !== manifest.manifestSha256) {
        damaged.push({ name, problem: 'the manifest does not match its own checksum' });
        continue;
      }
      if (manifest.archiveId !== id || `${chunkBaseName(manifest.chunk)}.json` !== name) {
        damaged.push({ name, problem: 'the manifest belongs to another archive or chunk' });
        continue;
      }
      chunks.push({ manifest, state: marks.has(manifest.chunk) ? 'committed' : 'pending' });
    } catch (e) {
      damaged.push({ name, problem: `unreadable: ${messageOf(e)}` });
    }
  }
  chunks.sort((a, b) => a.manifest.chunk - b.manifest.chunk);
  return { header, dir, chunks, damaged };
}

export interface ArchiveScan {
  archives: ArchiveEntry[];
  invalid: { dir: string; problem: string }[];
}

/** Every published archive under the storage path, oldest first. */
export async function scanArchives(storagePath: string): Promise<ArchiveScan> {
  const root = archivesRoot(storagePath);
  const archives: ArchiveEntry[] = [];
  const invalid: ArchiveScan['invalid'] = [];
  for (const policy of await listDirs(root)) {
    if (policy.startsWith('.')) continue;
    for (const id of await listDirs(join(root, policy))) {
      if (!ARCHIVE_ID.test(id)) continue;
      const dir = join(root, policy, id);
      const read = await readArchive(dir, id);
      if ('problem' in read) invalid.push({ dir, problem: read.problem });
      else archives.push(read);
    }
  }
  archives.sort((a, b) => a.header.createdAt.localeCompare(b.header.createdAt) || a.header.id.localeCompare(b.header.id));
  return { archives, invalid };
}

export async function findArchive(storagePath: string, id: string): Promise<ArchiveEntry> {
  const { archives } = await scanArchives(storagePath);
  const matches = archives.filter((a) => a.header.id === id || a.header.id.startsWith(id));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1 && id.length > 0) {
    throw new JarvisError('USAGE', `"${id}" matches ${matches.length} archives: ${matches.map((a) => a.header.id).join(', ')}`);
  }
  throw new JarvisError('ARCHIVE_INVALID', `no archive "${id}" in ${archivesRoot(storagePath)}`, { hint: 'list them with `jarvis-db archive list`' });
}

/** Re-reads an archive's chunk states (after resolution). */
export async function reloadArchive(entry: ArchiveEntry): Promise<ArchiveEntry> {
  const read = await readArchive(entry.dir, entry.header.id);
  if ('problem' in read) throw new JarvisError('ARCHIVE_INVALID', `archive ${entry.header.id}: ${read.problem}`);
  return read;
}

export async function markCommitted(entry: ArchiveEntry, chunk: number): Promise<void> {
  const marker = join(entry.dir, `${chunkBaseName(chunk)}.committed`);
  await writingStorage(marker, () => writeFile(marker, '', { mode: 0o600 }));
  await fsyncPath(entry.dir);
}

/**
 * What killed writers left: hidden work directories, chunk data without a manifest, markers
 * without a chunk, and archives with no chunk at all, all of writers that are no longer alive.
 */
export async function findArchiveDebris(storagePath: string): Promise<string[]> {
  const root = archivesRoot(storagePath);
  const found: string[] = [];
  for (const policy of await listDirs(root)) {
    const policyDir = join(root, policy);
    for (const name of await listDirs(policyDir)) {
      const work = WORK.exec(name);
      if (work) {
        if (!isAlive(Number(work[3]))) found.push(join(policyDir, name));
        continue;
      }
      if (!ARCHIVE_ID.test(name)) continue;
      const dir = join(policyDir, name);
      let header: ArchiveHeader;
      try {
        header = await readJson<ArchiveHeader>(join(dir, HEADER));
      } catch {
        continue; // reported as invalid by scanArchives, never removed silently
      }
      if (isOwnerAlive(header)) continue;
      const files = await listFiles(dir);
      const published = new Set(files.filter((f) => CHUNK_MANIFEST.test(f)).map((f) => CHUNK_MANIFEST.exec(f)![1]));
      if (published.size === 0) {
        found.push(dir);
        continue;
      }
      for (const f of files) {
        const data = CHUNK_DATA.exec(f) ?? CHUNK_MARK.exec(f);
        if ((data && !published.has(data[1]!)) || f.startsWith('.tmp-') || /\.tmp-\d+$/.test(f)) found.push(join(dir, f));
      }
    }
  }
  return found.sort();
}

export async function cleanArchiveDebris(storagePath: string): Promise<string[]> {
  const debris = await findArchiveDebris(storagePath);
  for (const path of debris) await rm(path, { recursive: true, force: true });
  return debris;
}

export interface ChunkVerification extends ChunkReadResult {
  chunk: number;
  state: ChunkState;
}

/** Reads every chunk of an archive end to end (sizes, SHA-256, decompression, row counts). */
export async function verifyArchive(entry: ArchiveEntry, ring: KeyRing | null): Promise<{ ok: boolean; chunks: ChunkVerification[]; problems: string[] }> {
  const chunks: ChunkVerification[] = [];
  const problems = entry.damaged.map((d) => `${d.name}: ${d.problem}`);
  for (const c of entry.chunks) {
    const path = join(entry.dir, c.manifest.file.name);
    const result: ChunkReadResult = (await exists(path))
      ? await readChunk(path, c.manifest, ring)
      : { ok: false, problem: `${c.manifest.file.name} is missing`, bytes: 0, sha256: '', rowsByTable: {} };
    chunks.push({ ...result, chunk: c.manifest.chunk, state: c.state });
    if (!result.ok) problems.push(`${chunkBaseName(c.manifest.chunk)}: ${result.problem}`);
  }
  return { ok: problems.length === 0, chunks, problems };
}

/** A summary of an archive for plans and listings. Plain JSON. */
export interface ArchiveSummary {
  id: string;
  policy: string;
  table: string;
  cutoff: string;
  createdAt: string;
  chunks: number;
  pending: number;
  damaged: number;
  rows: number;
  bytes: number;
  encrypted: boolean;
  writerAlive: boolean;
}

export function summarize(entry: ArchiveEntry): ArchiveSummary {
  const committed = entry.chunks.filter((c) => c.state === 'committed');
  return {
    id: entry.header.id, policy: entry.header.policy, table: entry.header.table, cutoff: entry.header.cutoff, createdAt: entry.header.createdAt,
    chunks: committed.length, pending: entry.chunks.length - committed.length, damaged: entry.damaged.length,
    rows: committed.reduce((n, c) => n + c.manifest.rows, 0),
    bytes: entry.chunks.reduce((n, c) => n + c.manifest.file.bytes, 0),
    encrypted: entry.header.encrypted, writerAlive: isOwnerAlive(entry.header),
  };
}

