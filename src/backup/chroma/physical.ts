/**
 * The physical Chroma backup: the data directory of a local server (`services.chroma.path`).
 *
 * chroma.sqlite3 is copied through SQLite's online-backup API (a consistent snapshot even while
 * the server has it open); the segment directories (HNSW index files) are plain files that the
 * server rewrites when it persists an index. Both go into one brotli-compressed tar. The two
 * are consistent with each other only if the server writes nothing during the copy, so the
 * copy is bracketed by two observations (SQLite's data_version seen by one open connection,
 * and the size and mtime of every segment file): if anything changed, the backup fails and
 * says so. Hence "a quiet server": reads are fine, writes are not; the logical method has no
 * such need.
 *
 * Restore writes a data directory. The server must be stopped (a process holding a file in
 * the directory, or the configured server answering on it, makes it refuse); the archive is
 * unpacked beside the target, checked (SQLite integrity, record counts against the manifest),
 * and only then swapped in. `--target-dir` restores into another directory instead.
 */
import { lstat, mkdir, readdir, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Transform } from 'node:stream';
import { createBrotliDecompress } from 'node:zlib';
import Database from 'better-sqlite3';
import * as tar from 'tar';
import type { ChromaService } from '../../config/types.js';
import type { Progress } from '../../engine/types.js';
import { JarvisError, messageOf } from '../../errors.js';
import { plural } from '../../render/format.js';
import { isAlive } from '../../platform/processes.js';
import { ChromaRest } from '../../services/chroma.js';
import { redactUrl } from '../../services/redact.js';
import { countRecords, listCollections } from '../../services/chroma-collections.js';
import { BROTLI_QUALITY, compressor, digestCollection } from './logical.js';
import { decryptor, type KeyRing } from '../../storage/crypto.js';
import type { DriverContext, RestoreOptions, RestoreResult } from '../driver.js';
import { testPausePoint, type BackupWriter, type CatalogEntry, type FileEntry, type ManifestFields } from '../storage.js';

export const SQLITE_FILE = 'chroma.sqlite3';
const SQLITE_SIDECARS = new Set([SQLITE_FILE, `${SQLITE_FILE}-journal`, `${SQLITE_FILE}-wal`, `${SQLITE_FILE}-shm`]);

export interface PhysicalCollection { name: string; id: string; count: number; dimension: number | null }

/** Size and mtime of every file below the segment directories: what a write would change. */
async function segmentState(dataDir: string, entries: string[]): Promise<Map<string, string>> {
  const state = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    const s = await lstat(join(dataDir, rel));
    if (s.isDirectory()) {
      for (const name of (await readdir(join(dataDir, rel))).sort()) await walk(join(rel, name));
    } else {
      state.set(rel, `${s.size}:${s.mtimeMs}`);
    }
  };
  for (const e of entries) await walk(e);
  return state;
}

function changedFiles(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of before) if (after.get(k) !== v) out.push(k);
  for (const k of after.keys()) if (!before.has(k)) out.push(k);
  return out;
}

/** Records per collection in a chroma.sqlite3 (its metadata segments). */
export function countsInSqlite(file: string): PhysicalCollection[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare(`
      SELECT c.id AS id, c.name AS name, c.dimension AS dimension,
             (SELECT count(*) FROM segments s JOIN embeddings e ON e.segment_id = s.id WHERE s.collection = c.id AND s.scope = 'METADATA') AS count
      FROM collections c ORDER BY c.name`).all() as PhysicalCollection[];
    return rows.map((r) => ({ name: r.name, id: r.id, count: Number(r.count), dimension: r.dimension === null ? null : Number(r.dimension) }));
  } finally {
    db.close();
  }
}

function dataDirOf(service: ChromaService): string {
  if (!service.path) {
    throw new JarvisError('CONFIG_INVALID', 'the physical method copies the data directory: services.chroma.path is not set', { hint: 'set services.chroma.path, or use method: logical' });
  }
  return service.path;
}

export async function createPhysical(service: ChromaService, writer: BackupWriter, progress: Progress, env: NodeJS.ProcessEnv): Promise<ManifestFields> {
  const dataDir = dataDirOf(service);
  const sqlitePath = join(dataDir, SQLITE_FILE);
  try {
    await stat(sqlitePath);
  } catch {
    throw new JarvisError('BACKUP_FAILED', `${dataDir} is not a Chroma data directory (no ${SQLITE_FILE})`, { hint: 'services.chroma.path must be the directory given to `chroma run --path`' });
  }
  const entries = (await readdir(dataDir, { withFileTypes: true }))
    .filter((e) => !SQLITE_SIDECARS.has(e.name) && (e.isDirectory() || e.isFile()))
    .map((e) => e.name)
    .sort();
  const staged = await writer.stageLocalDirectory('stage');
  const stage = staged.path;
  // One connection stays open across the copy: its data_version changes if anyone else commits.
  const watcher = new Database(sqlitePath, { readonly: true, fileMustExist: true });
  let stagedSqlite = 0;
  try {
    const version = () => Number(watcher.pragma('data_version', { simple: true }));
    const v0 = version();
    const before = await segmentState(dataDir, entries);
    progress.note(`copying ${SQLITE_FILE} (online backup)`);
    await watcher.backup(join(stage, SQLITE_FILE));
    stagedSqlite = (await stat(join(stage, SQLITE_FILE))).size;
    await testPausePoint('sqlite-copied', env);
    for (const e of entries) await symlink(join(dataDir, e), join(stage, e));
    const collections = countsInSqlite(join(stage, SQLITE_FILE));
    progress.note(`archiving ${SQLITE_FILE} and ${plural(entries.length, 'segment entry', 'segment entries')}`);
    const name = `data.tar.br${writer.encrypted ? '.enc' : ''}`;
    const pack = tar.c({ cwd: stage, follow: true, portable: true }, [SQLITE_FILE, ...entries]) as unknown as NodeJS.ReadableStream;
    const compressed = compressor('binary');
    await Promise.all([pipeline(pack, compressed), writer.writeStream(name, compressed)]);
    const after = await segmentState(dataDir, entries);
    const changed = changedFiles(before, after);
    if (version() !== v0 || changed.length) {
      const what = [version() !== v0 ? SQLITE_FILE : '', ...changed.slice(0, 3)].filter(Boolean).join(', ');
      throw new JarvisError('BACKUP_FAILED', `Chroma wrote to ${dataDir} during the physical backup (${what}${changed.length > 3 ? ', …' : ''}): the copy would not be consistent`, {
        hint: 'run the physical method when no client writes (or with the server stopped), or use method: logical, which works online',
      });
    }
    const segmentBytes = [...after.values()].reduce((n, v) => n + Number(v.split(':')[0]), 0);
    return {
      method: 'physical',
      format: 'tar',
      compression: `brotli:${BROTLI_QUALITY}`,
      sourceBytes: stagedSqlite + segmentBytes,
      extra: {
        dataDir,
        collections,
        records: collections.reduce((n, c) => n + c.count, 0),
        sqliteBytes: stagedSqlite,
        segmentBytes,
        segments: entries,
      },
    };
  } finally {
    watcher.close();
    await staged.release();
  }
}

// ------------------------------------------------------------------ restore

function physicalCollections(entry: CatalogEntry): PhysicalCollection[] {
  const list = entry.manifest.extra.collections;
  if (!Array.isArray(list)) throw new JarvisError('BACKUP_INVALID', `backup ${entry.manifest.id} has no list of collections in its manifest`);
  return list as PhysicalCollection[];
}

function archiveFile(entry: CatalogEntry): FileEntry {
  const f = entry.manifest.files.find((x) => x.name.startsWith('data.tar'));
  if (!f) throw new JarvisError('BACKUP_INVALID', `backup ${entry.manifest.id} has no data.tar file`);
  return f;
}

/** Unpacks the archive into `dir` (which must not exist yet). */
async function unpack(entry: CatalogEntry, keyRing: KeyRing | null, dir: string): Promise<void> {
  const file = archiveFile(entry);
  const name = file.name;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stages: (NodeJS.ReadableStream | Transform | NodeJS.WritableStream)[] = [entry.store.read(entry.key, file)];
  if (name.endsWith('.enc')) {
    if (!keyRing) throw new JarvisError('DECRYPT_FAILED', `backup ${entry.manifest.id} is encrypted and no passphrase is configured`, { hint: 'set storage.encryption.passphraseEnv and that environment variable' });
    stages.push(decryptor(keyRing, name));
  }
  stages.push(createBrotliDecompress(), tar.x({ cwd: dir, strict: true }) as unknown as NodeJS.WritableStream);
  try {
    await (pipeline as (...s: unknown[]) => Promise<void>)(...stages);
  } catch (e) {
    if (e instanceof JarvisError) throw e;
    throw new JarvisError('BACKUP_INVALID', `${name} of backup ${entry.manifest.id} cannot be unpacked: ${messageOf(e)}`, { cause: e });
  }
}

/** SQLite's integrity check and the record counts of an unpacked directory, against the manifest. */
export function checkUnpacked(dir: string, expected: PhysicalCollection[]): string[] {
  const file = join(dir, SQLITE_FILE);
  const problems: string[] = [];
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const result = db.pragma('integrity_check', { simple: true });
      if (result !== 'ok') problems.push(`${SQLITE_FILE} fails SQLite's integrity check: ${String(result)}`);
    } finally {
      db.close();
    }
  } catch (e) {
    return [`${SQLITE_FILE} cannot be opened: ${messageOf(e)}`];
  }
  if (problems.length) return problems;
  const actual = countsInSqlite(file);
  for (const c of expected) {
    const a = actual.find((x) => x.id === c.id);
    if (!a) problems.push(`collection ${c.name} is missing`);
    else if (a.count !== c.count) problems.push(`collection ${c.name} has ${a.count} records, the manifest says ${c.count}`);
  }
  return problems;
}

/** Processes holding a file below `dir` open (Linux /proc; elsewhere none are found). */
export async function processesUsing(dir: string): Promise<number[]> {
  const root = resolve(dir) + '/';
  const found: number[] = [];
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
  } catch {
    return [];
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (target.startsWith(root)) {
        found.push(Number(pid));
        break;
      }
    }
  }
  return found;
}

async function refuseIfRunning(target: string, service: ChromaService): Promise<void> {
  const pids = await processesUsing(target);
  if (pids.length) {
    throw new JarvisError('RESTORE_REFUSED', `a process (pid ${pids.join(', ')}) has files of ${target} open: stop the Chroma server before restoring its data directory`, {
      hint: 'stop it, or restore into a new directory with --target-dir DIR',
    });
  }
  if (service.path && resolve(service.path) === resolve(target)) {
    const rest = new ChromaRest(service);
    const answers = await rest.request('GET', '/api/v2/heartbeat').then((r) => r.status === 200, () => false);
    rest.close();
    if (answers) {
      throw new JarvisError('RESTORE_REFUSED', `Chroma answers at ${redactUrl(service.url)}, and ${target} is its data directory: stop the server before restoring it`, {
        hint: 'stop it, or restore into a new directory with --target-dir DIR',
      });
    }
  }
}

async function isNonEmptyDir(path: string): Promise<boolean> {
  try {
    return (await readdir(path)).length > 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

const SIBLING = /^(.+)\.jarvis-db-(restore|old)-(\d+)$/;

/** Leftovers of killed restores beside `target`: unpacked copies, and old directories once the target is back. */
async function cleanSiblings(target: string): Promise<void> {
  const parent = dirname(target);
  const targetExists = await stat(target).then(() => true, () => false);
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const m = SIBLING.exec(name);
    if (!m || m[1] !== basename(target) || isAlive(Number(m[3]))) continue;
    if (m[2] === 'restore' || targetExists) await rm(join(parent, name), { recursive: true, force: true });
  }
}

export async function restorePhysical(entry: CatalogEntry, service: ChromaService, ctx: DriverContext, options: RestoreOptions): Promise<RestoreResult> {
  const target = resolve(options.targetDir ?? dataDirOf(service));
  await refuseIfRunning(target, service);
  const replacing = await isNonEmptyDir(target);
  if (replacing && !options.force) {
    throw new JarvisError('RESTORE_REFUSED', `${target} is not empty; restoring would replace the Chroma data in it`, {
      hint: 'restore into a new directory (--target-dir DIR) or pass --force to replace it',
    });
  }
  await mkdir(dirname(target), { recursive: true });
  await cleanSiblings(target);
  const unpacked = `${target}.jarvis-db-restore-${process.pid}`;
  const old = `${target}.jarvis-db-old-${process.pid}`;
  try {
    ctx.progress.note(`unpacking ${entry.manifest.id} beside ${target}`);
    await unpack(entry, ctx.keyRing, unpacked);
    const expected = physicalCollections(entry);
    const problems = checkUnpacked(unpacked, expected);
    if (problems.length) throw new JarvisError('RESTORE_FAILED', `backup ${entry.manifest.id} unpacked, but ${problems.join('; ')}`);
    await testPausePoint('physical-unpacked', ctx.env);
    // the server may have started while we unpacked
    await refuseIfRunning(target, service);
    const exists = await stat(target).then(() => true, () => false);
    if (exists) await rename(target, old);
    await rename(unpacked, target);
    if (exists) await rm(old, { recursive: true, force: true });
    const records = expected.reduce((n, c) => n + c.count, 0);
    return {
      target,
      summary: `restored ${entry.manifest.id} into ${target}: ${plural(expected.length, 'collection')}, ${plural(records, 'record')}; SQLite integrity and record counts match${replacing ? ' (the previous data was replaced)' : ''}`,
      details: { dataDir: target, collections: expected.map((c) => ({ name: c.name, count: c.count })), records, replaced: replacing },
    };
  } finally {
    await rm(unpacked, { recursive: true, force: true });
  }
}

/**
 * Unpacks into a scratch directory beside the backup, checks SQLite and the counts, then runs
 * a throwaway Chroma server on it and reads every record of every collection back through it.
 */
export async function restoreTestPhysical(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }> {
  const scratchDir = await entry.store.scratchDirectory(entry.key);
  const scratch = scratchDir.path;
  try {
    const expected = physicalCollections(entry);
    try {
      await unpack(entry, ctx.keyRing, join(scratch, 'data'));
    } catch (e) {
      if (e instanceof JarvisError && (e.code === 'BACKUP_INVALID' || e.code === 'DECRYPT_FAILED')) return { ok: false, message: e.message };
      throw e;
    }
    const problems = checkUnpacked(join(scratch, 'data'), expected);
    if (problems.length) return { ok: false, message: problems.join('; ') };
    ctx.progress.note('starting a scratch Chroma server on the restored directory');
    const { startChromaServer, stopChromaServer } = await import('../../scratch/servers.js');
    const server = await startChromaServer({ dir: scratch });
    const rest = new ChromaRest({ url: server.url });
    try {
      const served = await listCollections(rest);
      const total = expected.reduce((n, c) => n + c.count, 0);
      let done = 0;
      for (const c of expected) {
        const s = served.find((x) => x.id === c.id);
        if (!s) return { ok: false, message: `the restored server does not list collection ${c.name}` };
        const count = await countRecords(rest, s.id);
        if (count !== c.count) return { ok: false, message: `the restored server counts ${count} records in ${c.name}, the manifest ${c.count}` };
        const read = await digestCollection(rest, s.id, s.dimension);
        if (read.count !== c.count) return { ok: false, message: `the restored server returned ${read.count} records of ${c.name}, the manifest says ${c.count}` };
        done += c.count;
        ctx.progress.update(done, total);
      }
      return { ok: true, message: `unpacked into a scratch directory: SQLite integrity ok; a Chroma server on it lists ${plural(expected.length, 'collection')} and returns all ${plural(total, 'record')} with their embeddings` };
    } finally {
      rest.close();
      await stopChromaServer(server.pid);
    }
  } finally {
    await scratchDir.release();
  }
}
