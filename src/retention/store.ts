/**
 * Archive storage (docs/architecture.md §4 rules 1-3 applied to retention): the archives live with the
 * backups, under `<storage>/archives/<policy>/<archive id>/`:
 *
 *   archive.json               the header: policy, table, cut-off, database, writer pid
 *   chunk-000001.jsonl.zst     a batch of rows (src/retention/chunk.ts; .jsonl.gz where zstd is not available)
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
 *
 * On the sealed store (storage/sealed-store.ts, docs/architecture.md §6) an archive is an item
 * keyed `<policy>/<archive id>` whose manifest is the header, published when the archive is
 * created; each chunk's data is a file added to it and its manifest a record written after it,
 * so the chunk lifecycle above holds on any store.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable, Transform } from 'node:stream';
import { JarvisError, messageOf } from '../errors.js';
import type { EncryptionSession, KeyRing } from '../storage/crypto.js';
import { isAlive } from '../platform/processes.js';
import { newTimestampId } from '../storage/durable.js';
import type { Desired } from '../config/types.js';
import { openLocalStore } from '../storage/local-store.js';
import { openRepositories, type Repository } from '../storage/repositories.js';
import type { Debris, SealedStore } from '../storage/sealed-store.js';
import { chunkCompression, SUFFIX, type ChunkCompression } from './compression.js';
import { chunkBaseName, chunkData, manifestDigest, readChunk, sealChunkManifest, streamedChunkData, type ChunkManifest, type ChunkPart, type ChunkReadResult, type ChunkTable, type CopyTextLines } from './chunk.js';

export const ARCHIVES = 'archives';
export const HEADER = 'archive.json';
export const ARCHIVE_ID = /^\d{8}T\d{6}Z-[0-9a-f]{4}$/;
const CHUNK_MANIFEST = /^chunk-(\d{6})\.json$/;
const CHUNK_DATA = /^chunk-(\d{6})\.jsonl\.(?:gz|zst)(\.enc)?$/;
const CHUNK_MARK = /^chunk-(\d{6})\.committed$/;

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
  /**
   * An archive of a whole partition (retention_drop_partitions): its name and range, so that a
   * restore through the parent can create it again when no partition takes its rows.
   */
  partition?: { schema: string; name: string; from: string; to: string };
}

export type ChunkState = 'committed' | 'pending';

export interface ChunkEntry {
  manifest: ChunkManifest;
  state: ChunkState;
}

export interface ArchiveEntry {
  header: ArchiveHeader;
  /** Its key in `store` (`<policy>/<id>`); `dir` says where it is, for messages. */
  key: string;
  store: SealedStore;
  dir: string;
  chunks: ChunkEntry[];
  /** Chunk manifests that fail their own checksum, or unreadable ones. */
  damaged: { name: string; problem: string }[];
}

export function archivesRoot(storagePath: string): string {
  return join(storagePath, ARCHIVES);
}

/**
 * Where archives are: a repository (archives are written to the first one, under `archives/`),
 * or a storage path (its implicit repository).
 */
export type ArchivePlace = string | Repository;

/** The sealed store that holds the archives of a repository (docs/architecture.md §6). */
export function archiveStore(place: ArchivePlace): SealedStore {
  if (typeof place === 'string') return openLocalStore(archivesRoot(place), { manifestName: HEADER });
  return place.store(`${ARCHIVES}/`, HEADER);
}

/** The first repository of `desired`: where retention archives are written and read. */
export function archiveRepository(desired: Pick<Desired, 'storage' | 'repositories'>, env: NodeJS.ProcessEnv = process.env): Repository {
  return openRepositories(desired, env)[0]!;
}

function archivesLocation(place: ArchivePlace): string {
  return typeof place === 'string' ? archivesRoot(place) : place.kind === 'local' ? join(place.location, ARCHIVES) : `${place.location}${ARCHIVES}/`;
}

function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
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
  private constructor(readonly header: ArchiveHeader, private readonly store: SealedStore, readonly key: string, private readonly encryption: EncryptionSession | null, private readonly env: NodeJS.ProcessEnv) {}

  static async begin(place: ArchivePlace, fields: Omit<ArchiveHeader, 'formatVersion' | 'kind' | 'id' | 'createdAt' | 'writer' | 'encrypted'>, options: { now: Date; encryption: EncryptionSession | null; env: NodeJS.ProcessEnv }): Promise<ArchiveWriter> {
    checkPolicyName(fields.policy);
    const store = archiveStore(place);
    const id = newTimestampId(options.now);
    const header: ArchiveHeader = {
      formatVersion: 1, kind: 'jarvis-db-archive', id, ...fields, createdAt: options.now.toISOString(),
      writer: { pid: store.owner.pid, host: store.owner.host }, encrypted: options.encryption !== null,
    };
    const key = `${fields.policy}/${id}`;
    const item = await store.begin(key, { env: options.env });
    try {
      await item.publish(jsonText(header));
    } catch (e) {
      await item.abort();
      throw e;
    }
    return new ArchiveWriter(header, store, key, options.encryption, options.env);
  }

  /** Where the archive is (a directory for a local store). */
  get dir(): string {
    return this.store.location(this.key);
  }

  /**
   * Writes one chunk durably and publishes it. After this returns the chunk survives a crash;
   * it counts once the transaction `xid` (which must delete exactly these rows) commits.
   */
  async publishChunk(parts: (ChunkPart & { meta: Omit<ChunkTable, 'rows' | 'table'> })[], fields: { xid: string; now: Date }): Promise<ChunkManifest> {
    return this.publish(parts.map((p) => ({ table: p.table, meta: p.meta, rows: p.lines.length })), fields, (options) => chunkData(parts, options));
  }

  /**
   * publishChunk for one table whose lines stream in (`body` counts them as they pass): the
   * chunk's size is bounded by nothing but the rows, its memory by the stream's buffers.
   */
  async publishStreamedChunk(part: Pick<ChunkPart, 'table' | 'columns'> & { meta: Omit<ChunkTable, 'rows' | 'table'> }, body: CopyTextLines, fields: { xid: string; now: Date }): Promise<ChunkManifest> {
    return this.publish([{ table: part.table, meta: part.meta, get rows() { return body.lines; } }], fields, (options) => streamedChunkData(part, body, options));
  }

  private async publish(tables: { table: string; meta: Omit<ChunkTable, 'rows' | 'table'>; readonly rows: number }[], fields: { xid: string; now: Date }, data: (options: { compression: ChunkCompression; encryption: EncryptionSession | null }) => { source: Readable; transforms: Transform[] }): Promise<ChunkManifest> {
    const chunk = this.next++;
    const base = chunkBaseName(chunk);
    const compression = chunkCompression(this.env);
    const dataName = `${base}.jsonl${SUFFIX[compression]}${this.encryption ? '.enc' : ''}`;
    const { source, transforms } = data({ compression, encryption: this.encryption });
    const { bytes, sha256 } = await this.store.addFile(this.key, dataName, source, { transforms, stagedPause: 'chunk-data-written', env: this.env });
    // The rows are counted once the data is stored (a streamed chunk counts them as they pass).
    const manifest = sealChunkManifest({
      formatVersion: 1, kind: 'jarvis-db-archive-chunk', archiveId: this.header.id, policy: this.header.policy, chunk,
      xid: fields.xid, createdAt: fields.now.toISOString(), cutoff: this.header.cutoff, ageColumn: this.header.ageColumn,
      tables: tables.map((t) => ({ table: t.table, ...t.meta, rows: t.rows })),
      rows: tables.reduce((n, t) => n + t.rows, 0),
      file: { name: dataName, bytes, sha256, compression, encrypted: this.encryption !== null },
    });
    // The record is written atomically and durably (locally that also makes the data's rename durable).
    await this.store.writeRecord(this.key, `${base}.json`, jsonText(manifest));
    return manifest;
  }

  /** The delete committed: cache it (the server's commit log is the truth until then). */
  async markCommitted(chunk: number): Promise<void> {
    await this.store.writeRecord(this.key, `${chunkBaseName(chunk)}.committed`, '');
    this.committed.push(chunk);
  }

  /** The delete rolled back: the rows are still in the table, so the chunk must not count. */
  async voidChunk(manifest: ChunkManifest): Promise<void> {
    await removeChunkFiles(this.store, this.key, manifest);
  }

  get committedChunks(): number {
    return this.committed.length;
  }

  /** Removes the archive if no chunk committed and none is published; says whether it is kept. */
  async finish(): Promise<boolean> {
    if (this.committed.length === 0) {
      const chunks = (await this.store.files(this.key)).filter((f) => CHUNK_MANIFEST.test(f));
      if (chunks.length === 0) {
        await this.store.delete(this.key);
        return false;
      }
    }
    return true;
  }
}

/** Unpublishes a chunk (manifest first), then removes its data and marker. */
async function removeChunkFiles(store: SealedStore, key: string, manifest: Pick<ChunkManifest, 'chunk' | 'file'>): Promise<void> {
  const base = chunkBaseName(manifest.chunk);
  await store.removeFiles(key, [`${base}.json`, manifest.file.name, `${base}.committed`]);
}

export async function removeChunk(entry: ArchiveEntry, manifest: Pick<ChunkManifest, 'chunk' | 'file'>): Promise<void> {
  await removeChunkFiles(entry.store, entry.key, manifest);
}

/** A chunk's stored data, checked against its manifest's size and SHA-256 as it is read. */
export function openChunk(entry: ArchiveEntry, manifest: ChunkManifest): Readable {
  return entry.store.read(entry.key, manifest.file);
}

/** Deletes a whole archive (deleteAfter expiry): out of the listing first, then removed. */
export async function deleteArchive(entry: ArchiveEntry): Promise<void> {
  await entry.store.delete(entry.key);
}

async function readArchive(store: SealedStore, policy: string, id: string): Promise<ArchiveEntry | { problem: string }> {
  const key = `${policy}/${id}`;
  let header: ArchiveHeader;
  try {
    const text = await store.readText(key, HEADER);
    if (text === null) return { problem: `unreadable ${HEADER}: ${store.location(key, HEADER)} does not exist` };
    header = JSON.parse(text) as ArchiveHeader;
  } catch (e) {
    return { problem: `unreadable ${HEADER}: ${messageOf(e)}` };
  }
  if (header.kind !== 'jarvis-db-archive' || header.id !== id) return { problem: `${HEADER} does not describe archive ${id}` };
  const files = await store.files(key);
  const marks = new Set(files.filter((f) => CHUNK_MARK.test(f)).map((f) => Number(CHUNK_MARK.exec(f)![1])));
  const chunks: ChunkEntry[] = [];
  const damaged: ArchiveEntry['damaged'] = [];
  for (const name of files.filter((f) => CHUNK_MANIFEST.test(f))) {
    try {
      const manifest = JSON.parse((await store.readText(key, name)) ?? 'null') as ChunkManifest;
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
  return { header, key, store, dir: store.location(key), chunks, damaged };
}

export interface ArchiveScan {
  archives: ArchiveEntry[];
  invalid: { dir: string; problem: string }[];
}

/** Every published archive under the storage path, oldest first. */
export async function scanArchives(place: ArchivePlace): Promise<ArchiveScan> {
  const store = archiveStore(place);
  const archives: ArchiveEntry[] = [];
  const invalid: ArchiveScan['invalid'] = [];
  for (const policy of await store.list('')) {
    for (const id of await store.list(policy)) {
      if (!ARCHIVE_ID.test(id)) continue;
      const read = await readArchive(store, policy, id);
      if ('problem' in read) invalid.push({ dir: store.location(`${policy}/${id}`), problem: read.problem });
      else archives.push(read);
    }
  }
  archives.sort((a, b) => a.header.createdAt.localeCompare(b.header.createdAt) || a.header.id.localeCompare(b.header.id));
  return { archives, invalid };
}

export async function findArchive(place: ArchivePlace, id: string): Promise<ArchiveEntry> {
  const { archives } = await scanArchives(place);
  const matches = archives.filter((a) => a.header.id === id || a.header.id.startsWith(id));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1 && id.length > 0) {
    throw new JarvisError('USAGE', `"${id}" matches ${matches.length} archives: ${matches.map((a) => a.header.id).join(', ')}`);
  }
  throw new JarvisError('ARCHIVE_INVALID', `no archive "${id}" in ${archivesLocation(place)}`, { hint: 'list them with `jarvis-db archive list`' });
}

/** Re-reads an archive's chunk states (after resolution). */
export async function reloadArchive(entry: ArchiveEntry): Promise<ArchiveEntry> {
  const read = await readArchive(entry.store, entry.header.policy, entry.header.id);
  if ('problem' in read) throw new JarvisError('ARCHIVE_INVALID', `archive ${entry.header.id}: ${read.problem}`);
  return read;
}

export async function markCommitted(entry: ArchiveEntry, chunk: number): Promise<void> {
  await entry.store.writeRecord(entry.key, `${chunkBaseName(chunk)}.committed`, '');
}

/**
 * What killed writers left: staged or half-deleted archives, chunk data without a manifest,
 * markers without a chunk, files being written, and archives with no chunk at all, all of
 * writers that are no longer alive.
 */
async function archiveDebris(store: SealedStore): Promise<Debris[]> {
  const found: Debris[] = [];
  for (const policy of await store.list('')) {
    found.push(...(await store.findDebris(policy)));
    for (const id of await store.list(policy)) {
      if (!ARCHIVE_ID.test(id)) continue;
      const key = `${policy}/${id}`;
      let header: ArchiveHeader;
      try {
        header = JSON.parse((await store.readText(key, HEADER)) ?? 'null') as ArchiveHeader;
        if (!header?.writer) continue;
      } catch {
        continue; // reported as invalid by scanArchives, never removed silently
      }
      if (isOwnerAlive(header)) continue;
      const files = await store.files(key);
      const published = new Set(files.filter((f) => CHUNK_MANIFEST.test(f)).map((f) => CHUNK_MANIFEST.exec(f)![1]));
      if (published.size === 0) {
        found.push({ key, location: store.location(key) });
        continue;
      }
      for (const f of files) {
        const data = CHUNK_DATA.exec(f) ?? CHUNK_MARK.exec(f);
        if (data && !published.has(data[1]!)) found.push({ key, name: f, location: store.location(key, f) });
      }
      // The writer is dead: whatever it was writing is debris, whoever's pid names it.
      found.push(...(await store.leftovers(key)));
    }
  }
  return found.sort((a, b) => (a.location < b.location ? -1 : a.location > b.location ? 1 : 0));
}

export async function findArchiveDebris(place: ArchivePlace): Promise<string[]> {
  return (await archiveDebris(archiveStore(place))).map((d) => d.location);
}

export async function cleanArchiveDebris(place: ArchivePlace): Promise<string[]> {
  const store = archiveStore(place);
  const debris = await archiveDebris(store);
  await store.removeDebris(debris);
  return debris.map((d) => d.location);
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
    const result: ChunkReadResult = (await entry.store.size(entry.key, c.manifest.file.name)) !== null
      ? await readChunk(openChunk(entry, c.manifest), c.manifest, ring)
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
  /** Listings of several repositories: the ones that hold it, the first first. */
  repositories?: string[];
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

