/**
 * The WAL archive in the repositories (docs/architecture.md §6, "WAL in a repository"): every WAL
 * file PostgreSQL archives is an item `<timeline>/<name>` of the sealed store `wal/`
 * (manifest `segment.json`), its data compressed (zstd when the `zstd` program is here, else
 * gzip) and encrypted when storage.encryption is on. The manifest records the raw file's size and
 * SHA-256, so that a fetch checks what it hands PostgreSQL end to end.
 *
 * - push: durable in the first repository before it returns (that is what archive_command's exit
 *   0 promises), then copied to the others (a failure there is a warning). An identical file
 *   already archived is success with nothing written; a different one of the same name is refused.
 * - fetch: from the first repository that has it, verified, written atomically to the
 *   destination (a temporary name beside it, fsync, rename).
 */
import { spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { accessSync, constants as fsConstants, createReadStream } from 'node:fs';
import { chown, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Duplex, Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { Desired } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { decryptor, EncryptionSession, keyRingFromEnv, type KeyRing } from '../storage/crypto.js';
import { fsyncPath, hashFile, HashingFileSink, testPausePoint } from '../storage/durable.js';
import { openRepositories, type Repository } from '../storage/repositories.js';
import type { FileSource, SealedStore, StoredFile } from '../storage/sealed-store.js';
import { DEFAULT_SEGMENT_BYTES, gapsIn, parseLsn, parseWalFileName, segmentNumber, segmentOfLsn, walFileName, walKey, type Gap, type WalFileKind, type WalFileName } from './segments.js';

export const WAL_PREFIX = 'wal/';
export const WAL_MANIFEST = 'segment.json';
export const WAL_FORMAT = 'jarvis-db-wal/1';

export type WalCompression = 'zstd' | 'gzip';

/** What `segment.json` says of one archived WAL file. */
export interface WalManifest {
  format: typeof WAL_FORMAT;
  name: string;
  kind: WalFileKind;
  timeline: number;
  /** The raw file (what PostgreSQL wrote). */
  bytes: number;
  sha256: string;
  compression: WalCompression;
  encrypted: boolean;
  /** The stored file (compressed, encrypted when on). */
  file: StoredFile;
  /** When the item was published (what `wal status` shows as archived). */
  archivedAt: string;
  /**
   * When the file was complete where it was pushed from (its modification time: pg_receivewal's
   * rename of a whole segment, PostgreSQL's last write before archive_command); at or before
   * `archivedAt`. The archive lag is measured from it (src/wal/lag.ts). Absent in older manifests.
   */
  completedAt?: string;
  /**
   * The server's next transaction id (xid8) when `wal stream` switched away from this segment
   * (pg_switch_wal) with no transaction in progress: while it is still the next one, the WAL
   * written since holds no transaction (a checkpoint, a standby snapshot), nothing to lose.
   */
  quietNextXid?: string;
  host: string;
}

export function walStore(repository: Repository): SealedStore {
  return repository.store(WAL_PREFIX, WAL_MANIFEST);
}

/** The manifest of `file` in `store`, or null when it is not archived there. */
export async function readWalManifest(store: SealedStore, file: WalFileName): Promise<WalManifest | null> {
  const text = await store.readText(walKey(file), WAL_MANIFEST);
  if (text === null) return null;
  try {
    const parsed = JSON.parse(text) as WalManifest;
    if (parsed.format !== WAL_FORMAT || parsed.name !== file.name) throw new Error(`not a ${WAL_FORMAT} manifest of ${file.name}`);
    return parsed;
  } catch (e) {
    throw new JarvisError('VERIFY_FAILED', `${store.location(walKey(file), WAL_MANIFEST)} is damaged: ${messageOf(e)}`);
  }
}

// ------------------------------------------------------------------ compression

let zstdHere: boolean | undefined;
function zstdOnPath(): boolean {
  zstdHere ??= (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      accessSync(join(dir, 'zstd'), fsConstants.X_OK);
      return dir !== '';
    } catch {
      return false;
    }
  });
  return zstdHere;
}

export function defaultCompression(): WalCompression {
  return zstdOnPath() ? 'zstd' : 'gzip';
}

const EXTENSION: Record<WalCompression, string> = { zstd: 'zst', gzip: 'gz' };

/** The compressed bytes of `path`: zstd read by the program itself, gzip through node:zlib. */
function compressed(path: string, algorithm: WalCompression): { source: FileSource; transforms: Transform[] } {
  if (algorithm === 'gzip') return { source: createReadStream(path, { highWaterMark: 1 << 20 }), transforms: [createGzip({ level: 6 })] };
  return { source: zstdOutput(path), transforms: [] };
}

async function* zstdOutput(path: string): AsyncGenerator<Buffer> {
  const child = spawn('zstd', ['-q', '-c', '-3', '--', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (e) => reject(new JarvisError('TOOL_MISSING', `cannot run zstd: ${messageOf(e)}`, { cause: e })));
    child.on('close', (code) => resolve(code ?? 1));
  });
  let read = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    read = true;
  } finally {
    // The consumer stopped early (a failed write): zstd has nobody to write to.
    if (!read) child.kill('SIGTERM');
  }
  const code = await exited;
  if (code !== 0) throw new JarvisError('TOOL_FAILED', `zstd failed compressing ${basename(path)}: ${stderr.trim() || `exit ${code}`}`);
}

function decompressor(algorithm: WalCompression): Transform | Duplex {
  if (algorithm === 'gzip') return createGunzip();
  // A damaged input makes zstd stop early: the raw SHA-256 check catches what it leaves out.
  const child = spawn('zstd', ['-q', '-d', '-c'], { stdio: ['pipe', 'pipe', 'ignore'] });
  return Duplex.from({ writable: child.stdin, readable: child.stdout });
}

// ------------------------------------------------------------------ push

export interface PushOptions {
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Warnings (a repository after the first that failed), one line each. */
  warn?: (line: string) => void;
  /** `wal stream`: the manifest's `quietNextXid` (the segment it switched away from at a quiet moment). */
  quietNextXid?: string;
}

export type PushOutcome = 'archived' | 'already-archived';
export interface PushResult { name: string; bytes: number; sha256: string; repositories: { name: string; outcome: PushOutcome | 'failed'; message?: string }[] }

function keyRingOf(desired: Desired, env: NodeJS.ProcessEnv): KeyRing | null {
  const passphraseEnv = desired.storage.encryption?.passphraseEnv;
  return passphraseEnv ? keyRingFromEnv(passphraseEnv, env) : null;
}

/** Archives the WAL file at `path` into every repository of `desired` (see the header for the rules). */
export async function pushWalFile(desired: Desired, path: string, options: PushOptions = {}): Promise<PushResult> {
  const env = options.env ?? process.env;
  const file = walFileName(basename(path));
  const raw = await hashFile(path).catch((e: unknown) => {
    throw new JarvisError('USAGE', `cannot read WAL file ${path}: ${messageOf(e)}`);
  });
  const completedAt = (await stat(path)).mtime;
  const ring = keyRingOf(desired, env);
  const repositories = openRepositories(desired, env);
  const result: PushResult = { name: file.name, bytes: raw.bytes, sha256: raw.sha256, repositories: [] };
  for (const [i, repository] of repositories.entries()) {
    try {
      const outcome = await pushInto(walStore(repository), repository, file, path, { ...raw, completedAt, quietNextXid: options.quietNextXid }, ring, env, options.now ?? (() => new Date()));
      result.repositories.push({ name: repository.name, outcome });
    } catch (e) {
      // The first repository is the durable one: archive_command must fail and PostgreSQL retry.
      if (i === 0) throw e;
      const message = messageOf(e);
      result.repositories.push({ name: repository.name, outcome: 'failed', message });
      options.warn?.(`warning: ${file.name} is archived in ${repositories[0]!.name} but not in repository ${repository.name}: ${message}`);
    }
  }
  return result;
}

async function pushInto(
  store: SealedStore, repository: Repository, file: WalFileName, path: string, raw: { sha256: string; bytes: number; completedAt: Date; quietNextXid?: string },
  ring: KeyRing | null, env: NodeJS.ProcessEnv, now: () => Date,
): Promise<PushOutcome> {
  const existing = await readWalManifest(store, file);
  if (existing) {
    if (existing.sha256 === raw.sha256 && existing.bytes === raw.bytes) return 'already-archived';
    throw new JarvisError('REPOSITORY', `repository ${repository.name} already holds a different ${file.name} (${existing.bytes} bytes, SHA-256 ${existing.sha256.slice(0, 12)}…, archived ${existing.archivedAt}); not overwriting it`, {
      hint: 'two clusters may be archiving into the same repository: give each its own repository, or move the old WAL away',
    });
  }
  const compression = defaultCompression();
  const { source, transforms } = compressed(path, compression);
  if (ring) transforms.push(new EncryptionSession(ring).encryptor());
  const key = walKey(file);
  const item = await store.begin(key, { env });
  try {
    const dataName = `${file.kind}.${EXTENSION[compression]}${ring ? '.enc' : ''}`;
    const stored = await item.writeFile(dataName, source, transforms);
    await testPausePoint('wal-push-staged', env);
    const manifest: WalManifest = {
      format: WAL_FORMAT, name: file.name, kind: file.kind, timeline: file.timeline, bytes: raw.bytes, sha256: raw.sha256,
      compression, encrypted: ring !== null, file: stored, ...archivedTimes(raw.completedAt, now()),
      ...(raw.quietNextXid ? { quietNextXid: raw.quietNextXid } : {}), host: hostname(),
    };
    await item.publish(`${JSON.stringify(manifest, null, 2)}\n`);
    return 'archived';
  } catch (e) {
    await item.abort().catch(() => undefined);
    throw e;
  }
}

/** Pure: the manifest's times; a file modified after the clock (a skewed mount) counts as completed now. */
export function archivedTimes(modified: Date, now: Date): { archivedAt: string; completedAt: string } {
  return { archivedAt: now.toISOString(), completedAt: (modified.getTime() > now.getTime() ? now : modified).toISOString() };
}

// ------------------------------------------------------------------ fetch

export interface FetchResult { name: string; repository: string; bytes: number }

/**
 * Writes archived `name` to `dest`, verified, from the first repository that has it; a damaged
 * copy or a repository that fails is skipped (with a warning) for the next one. WAL_NOT_FOUND
 * when none has it; the first failure when some failed.
 */
export async function fetchWalFile(desired: Desired, name: string, dest: string, options: PushOptions = {}): Promise<FetchResult> {
  const env = options.env ?? process.env;
  const file = walFileName(name);
  const repositories = openRepositories(desired, env);
  let failure: unknown = null;
  for (const repository of repositories) {
    const store = walStore(repository);
    let manifest: WalManifest | null;
    try {
      manifest = await readWalManifest(store, file);
    } catch (e) {
      failure ??= e;
      if (repositories.length > 1) options.warn?.(`warning: repository ${repository.name}: ${messageOf(e)}; trying the next repository`);
      continue;
    }
    if (!manifest) continue;
    try {
      await fetchFrom(store, repository, manifest, dest, desired, env);
      return { name, repository: repository.name, bytes: manifest.bytes };
    } catch (e) {
      // A damaged copy or an unreachable repository: the next repository's copy may do.
      failure ??= e;
      if (repositories.length > 1) options.warn?.(`warning: ${messageOf(e)}; trying the next repository`);
    }
  }
  if (failure) throw failure;
  throw new JarvisError('WAL_NOT_FOUND', `${name} is not archived in ${repositories.map((r) => r.name).join(', ')}`);
}

/**
 * Streams the raw bytes of an archived file into `sink`: the stored bytes checked against the
 * manifest (the contract's `read`), decrypted, decompressed; then the raw size and SHA-256
 * checked. A damaged file is VERIFY_FAILED naming it and the repository.
 */
async function readRawInto(store: SealedStore, repository: Repository, m: WalManifest, sink: Writable & { hash: Hash; bytes: number }, desired: Desired, env: NodeJS.ProcessEnv): Promise<void> {
  const what = `${m.name} in repository ${repository.name}`;
  const stages: (Readable | Transform | Duplex | Writable)[] = [store.read(walKey(walFileName(m.name)), m.file)];
  if (m.encrypted) {
    const ring = keyRingOf(desired, env);
    if (!ring) throw new JarvisError('DECRYPT_FAILED', `${what} is encrypted and no passphrase is configured`, { hint: 'set storage.encryption.passphraseEnv and that environment variable' });
    stages.push(decryptor(ring, m.name));
  }
  stages.push(decompressor(m.compression));
  stages.push(sink);
  try {
    await (pipeline as (...s: typeof stages) => Promise<void>)(...stages);
  } catch (e) {
    if (e instanceof JarvisError && e.code === 'VERIFY_FAILED') throw new JarvisError('VERIFY_FAILED', `${what} is damaged: ${e.message}`, { hint: e.hint });
    if (e instanceof JarvisError) throw e;
    throw new JarvisError('VERIFY_FAILED', `${what} is damaged: it does not decompress (${messageOf(e)})`);
  }
  const sha256 = sink.hash.digest('hex');
  if (sha256 !== m.sha256 || sink.bytes !== m.bytes) {
    throw new JarvisError('VERIFY_FAILED', `${what} is damaged: it decompresses to ${sink.bytes} bytes that do not match the SHA-256 archived`);
  }
}

/**
 * Writes archived `name` of `repository` alone to `dest`, verified (the fetch path without the
 * fallback to other repositories); its manifest. WAL_NOT_FOUND when the repository lacks it.
 */
export async function fetchWalFileFrom(desired: Desired, repository: Repository, name: string, dest: string, env: NodeJS.ProcessEnv, options: WriteOptions = {}): Promise<WalManifest> {
  const store = walStore(repository);
  const manifest = await readWalManifest(store, walFileName(name));
  if (!manifest) throw new JarvisError('WAL_NOT_FOUND', `${name} is not archived in ${repository.name}`);
  await fetchFrom(store, repository, manifest, dest, desired, env, options);
  return manifest;
}

/**
 * `durable: false` leaves out the fsyncs (a restore's prefetch: made again if the machine
 * crashes); `owner`: the file is given to that user before it appears under its name.
 */
export interface WriteOptions { durable?: boolean; owner?: { uid: number; gid: number } }

async function fetchFrom(store: SealedStore, repository: Repository, m: WalManifest, dest: string, desired: Desired, env: NodeJS.ProcessEnv, options: WriteOptions = {}): Promise<void> {
  const tmp = join(dirname(dest), `.${basename(dest)}.jarvis-db-${process.pid}`);
  const durable = options.durable ?? true;
  try {
    await readRawInto(store, repository, m, new HashingFileSink(tmp, durable), desired, env);
    if (options.owner) await chown(tmp, options.owner.uid, options.owner.gid);
    await rename(tmp, dest);
    if (durable) await fsyncPath(dirname(dest));
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

// ------------------------------------------------------------------ verify

/** A sink that only hashes and counts: a verification reads every byte and writes none. */
class HashingNullSink extends Writable {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (error?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done();
  }
}

export interface WalVerifyProblem { name: string; problem: string }

export interface WalVerifyResult {
  repository: string;
  /** The first segment checked (null: every file of the archive). */
  from: string | null;
  /** Files read end to end, and their raw bytes. */
  files: number;
  bytes: number;
  damaged: WalVerifyProblem[];
  /** Segments missing between the first and the last checked, per timeline: the chain is broken there. */
  gaps: Gap[];
  ok: boolean;
}

export interface VerifyWalOptions {
  /**
   * Only what recovery from a base backup replays: its timeline's files from this segment on,
   * the later timelines' files from its segment number on, and their history files. Absent: all.
   */
  from?: { timeline: number; startLsn: string };
  env?: NodeJS.ProcessEnv;
  /** Each file as it is checked. */
  onFile?: (name: string, done: number, total: number) => void;
}

/**
 * Reads archived WAL in `repository` end to end (the fetch path, into no file): the stored bytes
 * against the manifest, then decrypted and decompressed against the raw SHA-256 of segment.json.
 * One file at a time, streamed: memory does not grow with the archive. Damaged files and gaps
 * in the chain are listed, never thrown; a repository that cannot be listed throws.
 */
export async function verifyWalArchive(desired: Desired, repository: Repository, options: VerifyWalOptions = {}): Promise<WalVerifyResult> {
  const env = options.env ?? process.env;
  const store = walStore(repository);
  const archive = await listArchive(store);
  const segmentBytes = await archiveSegmentBytes(store, archive);
  const from = options.from;
  const fromSegment = from ? segmentOfLsn(from.timeline, parseLsn(from.startLsn), segmentBytes) : null;
  const fromNumber = fromSegment ? segmentNumber(fromSegment, segmentBytes) : null;
  const selected = archive.filter((tl) => !from || tl.timeline >= from.timeline).map((tl) => ({
    timeline: tl.timeline,
    names: tl.names.filter((name) => {
      const file = parseWalFileName(name);
      if (!file) return false;
      if (fromNumber === null) return true;
      if (file.kind === 'history') return file.timeline > from!.timeline;
      return segmentNumber(name.slice(0, 24), segmentBytes) >= fromNumber;
    }),
  }));
  const total = selected.reduce((n, tl) => n + tl.names.length, 0);
  const result: WalVerifyResult = { repository: repository.name, from: fromSegment, files: 0, bytes: 0, damaged: [], gaps: [], ok: true };
  for (const tl of selected) {
    result.gaps.push(...gapsIn(tl.names.filter((n) => parseWalFileName(n)!.kind === 'segment'), segmentBytes));
    for (const name of tl.names) {
      try {
        const manifest = await readWalManifest(store, walFileName(name));
        if (!manifest) throw new JarvisError('VERIFY_FAILED', `${name} in repository ${repository.name} is damaged: its ${WAL_MANIFEST} is missing`);
        await readRawInto(store, repository, manifest, new HashingNullSink(), desired, env);
        result.bytes += manifest.bytes;
      } catch (e) {
        if (!(e instanceof JarvisError) || !['VERIFY_FAILED', 'DECRYPT_FAILED'].includes(e.code)) throw e;
        result.damaged.push({ name, problem: e.message });
      }
      result.files++;
      options.onFile?.(name, result.files, total);
    }
  }
  result.ok = result.damaged.length === 0 && result.gaps.length === 0;
  return result;
}

/**
 * The WAL segment size of an archive: the raw size recorded for its newest segment (clusters
 * made with another --wal-segsize name their segments differently), else PostgreSQL's default.
 */
export async function archiveSegmentBytes(store: SealedStore, archive: readonly ArchivedTimeline[]): Promise<number> {
  return (await newestSegmentManifest(store, archive))?.bytes || DEFAULT_SEGMENT_BYTES;
}

/** The manifest of the newest segment of the newest timeline (null: no segment archived). */
export async function newestSegmentManifest(store: SealedStore, archive: readonly ArchivedTimeline[]): Promise<WalManifest | null> {
  const newest = [...archive].sort((a, b) => b.timeline - a.timeline).flatMap((t) => t.names.filter((n) => parseWalFileName(n)?.kind === 'segment').slice(-1))[0];
  return newest ? readWalManifest(store, walFileName(newest)) : null;
}

// ------------------------------------------------------------------ listing

export interface ArchivedTimeline { timeline: number; names: string[] }

/** The WAL files archived in `store`, by timeline (segments, history and backup files), names sorted. */
export async function listArchive(store: SealedStore): Promise<ArchivedTimeline[]> {
  const out: ArchivedTimeline[] = [];
  for (const dir of await store.list('')) {
    if (!/^[0-9A-F]{8}$/.test(dir)) continue;
    out.push({ timeline: parseInt(dir, 16), names: await store.list(dir) });
  }
  return out;
}

/**
 * Removes what killed pushes left staged in every repository's `wal/` (whose owner is dead): run
 * when `wal stream` starts, not by each push, so that archive_command stays one write.
 */
export async function removeWalDebris(desired: Desired, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<number> {
  let removed = 0;
  for (const repository of openRepositories(desired, env)) {
    const store = walStore(repository);
    try {
      for (const dir of await store.list('')) {
        const debris = await store.findDebris(dir);
        if (debris.length === 0) continue;
        await store.removeDebris(debris);
        removed += debris.length;
      }
    } catch (e) {
      log(`warning: could not remove the debris of killed pushes in repository ${repository.name}: ${messageOf(e)}`);
    }
  }
  if (removed) log(`removed ${removed} staged WAL item${removed === 1 ? '' : 's'} that killed pushes left`);
  return removed;
}
