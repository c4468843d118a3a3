/**
 * The physical PostgreSQL backup (`method: physical`): a base backup of the whole cluster by
 * `pg_basebackup`, restorable into a data directory that starts with a stock `pg_ctl start`.
 *
 * - create: `pg_basebackup -D <staged dir> -Ft -X stream --checkpoint=fast` over a replication
 *   connection from services.postgres.url (the password in PGPASSWORD, never on a command line),
 *   client-side compression (zstd, else lz4, else gzip: the first this pg_basebackup accepts and
 *   whose decompressor is on this machine, probed once per process), `--manifest-checksums=SHA256`,
 *   labelled with the backup id. WAL is streamed beside the data over a temporary slot, so the
 *   backup is self-contained: it recovers to its end point without any archive. The files
 *   (base.tar.*, pg_wal.tar.*, backup_manifest) are adopted into the staged item after
 *   pg_basebackup exits (encrypted when on); a kill before leaves debris only. The base tar is
 *   hashed as pg_basebackup writes it (storage/durable.ts hashGrowingFile), not read again after.
 * - The manifest's extra: the WAL range (timeline, start and stop LSN) read from backup_manifest,
 *   the system identifier (pg_control_system()), and the tables with their row counts, counted
 *   while the backup runs (exact only when nothing wrote meanwhile: restoreTest compares tables).
 * - restore: unpacks base into an empty `--target-dir` (0700, owned by `postgres` when root) and
 *   pg_wal.tar into its pg_wal/; backup_manifest is placed beside them so that pg_verifybackup can
 *   check the directory before it is started.
 * - verify (checkContent): the same unpack into a scratch directory, then `pg_verifybackup` (PG15
 *   reads plain directories only), which checks every file against backup_manifest's SHA-256 and
 *   parses the WAL the backup needs.
 * - restoreTest: the unpacked copy is started as a throwaway server on a free port, must finish
 *   recovery and answer, and must hold the tables recorded at backup time.
 */
import { accessSync, constants as fsConstants, createWriteStream } from 'node:fs';
import { appendFile, chmod, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Transform } from 'node:stream';
import type { BackupSchedule } from '../../config/types.js';
import { JarvisError, messageOf } from '../../errors.js';
import { plural, formatBytes } from '../../render/format.js';
import { connectPostgres, databaseOf, findPostgresTool, libpqEnv, postgresUrl } from '../../services/postgres.js';
import { isAlive, runToolToEnd, spawnTool } from '../../platform/processes.js';
import {
  asServerUser, freePort, guardProcess, isRoot, postmasterPid, serverDataParent, serverUserIds, stopPostgresServer,
} from '../../scratch/servers.js';
import { decryptor } from '../../storage/crypto.js';
import type { DriverContext, RestoreOptions, RestoreResult } from '../driver.js';
import { hashGrowingFile } from '../../storage/durable.js';
import { testPausePoint, type BackupWriter, type CatalogEntry, type FileEntry, type ManifestFields } from '../storage.js';
import { checkToolVersion, compareRowCounts, countRows, toolVersion, type RowCounts } from './driver.js';

export const PHYSICAL_METHOD = 'pg_basebackup';
const APP = { applicationName: 'jarvis-db backup' };
/** Left in a restore target while it is unpacked: a directory holding it is not a finished restore. */
export const INCOMPLETE_MARKER = 'jarvis-db-restore-incomplete';

// ------------------------------------------------------------------ pure parts

export type Algorithm = 'zstd' | 'lz4' | 'gzip' | 'none';
export interface Compression { algorithm: Algorithm; level: number }

/** Pure: the best algorithm among `supported` (zstd, lz4, gzip), at the schedule's level (0: none). */
export function chooseCompression(level: number, supported: readonly Algorithm[]): Compression {
  if (level <= 0) return { algorithm: 'none', level: 0 };
  for (const algorithm of ['zstd', 'lz4'] as const) if (supported.includes(algorithm)) return { algorithm, level };
  return { algorithm: 'gzip', level };
}

/** Pure: pg_basebackup's --compress value (compressed by the client: the server does no extra work). */
export function compressOption(c: Compression): string {
  return c.algorithm === 'none' ? 'none' : `client-${c.algorithm}:${c.level}`;
}

export function describeCompression(c: Compression): string {
  return c.algorithm === 'none' ? 'none' : `${c.algorithm}:${c.level}`;
}

/** Pure: the compression of a stored tar by its name (`base.tar.zst.enc` → zstd). */
export function tarCompressionOf(name: string): Algorithm | null {
  const plain = name.replace(/\.enc$/, '');
  if (plain.endsWith('.tar')) return 'none';
  if (plain.endsWith('.tar.zst')) return 'zstd';
  if (plain.endsWith('.tar.lz4')) return 'lz4';
  if (plain.endsWith('.tar.gz')) return 'gzip';
  return null;
}

export interface WalRange { timeline: number; startLsn: string; stopLsn: string }

/** Pure: the WAL range of a backup_manifest (PostgreSQL's JSON: "WAL-Ranges"). */
export function walRangeOf(manifestText: string): WalRange {
  let parsed: { 'WAL-Ranges'?: { Timeline: number; 'Start-LSN': string; 'End-LSN': string }[] };
  try {
    parsed = JSON.parse(manifestText) as typeof parsed;
  } catch (e) {
    throw new JarvisError('BACKUP_FAILED', `pg_basebackup wrote a backup_manifest that is not JSON: ${messageOf(e)}`);
  }
  const ranges = parsed['WAL-Ranges'] ?? [];
  const last = ranges.at(-1);
  if (!last) throw new JarvisError('BACKUP_FAILED', 'backup_manifest has no WAL-Ranges');
  return { timeline: last.Timeline, startLsn: ranges[0]!['Start-LSN'], stopLsn: last['End-LSN'] };
}

/** Pure: `pg_basebackup -P`'s progress line (`12345/67890 kB (18%), 0/1 tablespace`) as kB done and total. */
export function progressOf(line: string): { doneKb: number; totalKb: number } | null {
  const m = /(\d+)\/(\d+) kB/.exec(line);
  return m ? { doneKb: Number(m[1]), totalKb: Number(m[2]) } : null;
}

// ------------------------------------------------------------------ tools

const DECOMPRESSORS: Record<Exclude<Algorithm, 'none' | 'gzip'>, string> = { zstd: 'zstd', lz4: 'lz4' };

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      accessSync(join(dir, command), fsConstants.X_OK);
      return Boolean(dir);
    } catch {
      return false;
    }
  });
}

/** Whether `name` is beside `tool` (a path), or on PATH when `tool` is a bare name. */
function hasTool(tool: string, name: string): boolean {
  if (!tool.includes('/')) return onPath(name);
  try {
    accessSync(join(dirname(tool), name), fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const probed = new Map<string, Promise<Algorithm[]>>();

/**
 * Which client compressions this pg_basebackup accepts (and this machine can undo: tar needs the
 * zstd or lz4 program), probed once per process: pg_basebackup checks --compress before it
 * connects, so a connection to a socket that does not exist tells "unsupported" from "fine".
 */
export function supportedCompressions(tool: string): Promise<Algorithm[]> {
  let found = probed.get(tool);
  if (!found) {
    found = (async () => {
      const out: Algorithm[] = ['gzip'];
      for (const algorithm of ['zstd', 'lz4'] as const) {
        if (!onPath(DECOMPRESSORS[algorithm])) continue;
        const r = await runToolToEnd(tool, ['-D', '/nonexistent/jarvis-db-probe', '-Ft', `--compress=client-${algorithm}:1`, '-d', 'host=/nonexistent/jarvis-db-probe port=1', '--no-password'], {
          env: { PATH: process.env.PATH ?? '' },
        }).catch(() => null);
        if (r && /connection to server/.test(r.stderr) && !/not support|unrecognized/.test(r.stderr)) out.push(algorithm);
      }
      return out;
    })();
    probed.set(tool, found);
  }
  return found;
}

interface RunResult { code: number; stderr: string }

/** Runs a tool, its stderr split into lines (progress) and the last ones kept for the error message. */
function runTool(cmd: string, args: string[], env: Record<string, string>, onLine: (line: string) => void = () => undefined): { done: Promise<RunResult>; pid: number | undefined } {
  const child = spawnTool(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const tail: string[] = [];
  let partial = '';
  child.stderr!.on('data', (d: Buffer) => {
    partial += d.toString('utf8');
    const lines = partial.split(/[\r\n]/);
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.trim()) continue;
      onLine(line);
      if (!progressOf(line)) tail.push(line);
      if (tail.length > 20) tail.shift();
    }
  });
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'TOOL_MISSING' : 'TOOL_FAILED';
      reject(new JarvisError(code, `cannot run ${cmd}: ${messageOf(e)}`, { cause: e, hint: code === 'TOOL_MISSING' ? 'install the PostgreSQL client tools (Debian: apt-get install postgresql-client)' : undefined }));
    });
    child.on('close', (code, signal) => {
      if (partial.trim()) tail.push(partial);
      resolve({ code: code ?? (signal ? 128 : 1), stderr: tail.join('\n') });
    });
  });
  return { done, pid: child.pid };
}

function lastLines(text: string, n = 3): string {
  return text.split('\n').filter((l) => l.trim()).slice(-n).join(' | ') || '(no output)';
}

// ------------------------------------------------------------------ create

export async function createPhysical(schedule: BackupSchedule, ctx: DriverContext, writer: BackupWriter): Promise<ManifestFields> {
  const url = postgresUrl(ctx.desired);
  const database = databaseOf(url);
  const client = await connectPostgres(url, APP);
  try {
    const info = (await client.query<{ num: string; version: string; wal_level: string; system_identifier: string; bytes: string; replication: boolean }>(
      `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version,
              current_setting('wal_level') AS wal_level, (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
              (SELECT sum(pg_database_size(oid))::text FROM pg_database WHERE datallowconn) AS bytes,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS replication`)).rows[0]!;
    if (info.wal_level === 'minimal') {
      throw new JarvisError('BACKUP_FAILED', 'the server runs with wal_level = minimal: a physical backup needs replica or logical', { hint: 'set wal_level = replica in postgresql.conf and restart the server, or use method: logical' });
    }
    if (!info.replication) {
      throw new JarvisError('BACKUP_FAILED', 'the user of services.postgres.url has no REPLICATION permission: pg_basebackup needs it', { hint: 'ALTER ROLE <user> REPLICATION (and allow it in pg_hba.conf: host replication <user> ...), or use method: logical' });
    }
    const serverNum = Number(info.num);
    const tool = findPostgresTool('pg_basebackup', Math.floor(serverNum / 10000), ctx.env);
    // The version check, the compression probe and the staged directory at once: each is a process or a disk round trip.
    const supported = supportedCompressions(tool);
    const staging = writer.stageLocalDirectory('basebackup');
    supported.catch(() => undefined);
    staging.catch(() => undefined);
    const version = await toolVersion(tool);
    checkToolVersion('pg_basebackup', version.major, serverNum);
    const compression = chooseCompression(schedule.compression ?? 1, await supported);
    const staged = await staging;
    const label = `jarvis-db ${writer.id}`;
    ctx.progress.note(`pg_basebackup -Ft -X stream --compress=${compressOption(compression)} of the cluster`);
    const args = ['-D', staged.path, '-Ft', '-X', 'stream', '--checkpoint=fast', `--compress=${compressOption(compression)}`,
      '--manifest-checksums=SHA256', '-l', label, '-P', '--no-password'];
    let files: string[];
    let range: WalRange;
    let rowCounts: RowCounts;
    // Overlapped with pg_basebackup: the row counts on the connection already open, and the hash
    // of the base tar as it is written (not read again after; with encryption it is streamed anyway).
    const counting = countRows(client);
    counting.catch(() => undefined);
    try {
      let writing = false;
      const baseTar = `base.tar${TAR_EXTENSION[compression.algorithm]}`;
      const { done } = runTool(tool, args, libpqEnv(url), (line) => {
        const p = progressOf(line);
        if (p && p.totalKb > 0) ctx.progress.update(Math.min(p.doneKb, p.totalKb), p.totalKb);
        // A kill test's moment "pg_basebackup has written data": not awaited, pg_basebackup goes on.
        if (p && p.doneKb > 0 && !writing) { writing = true; void testPausePoint('basebackup-writing', ctx.env); }
      });
      const hashing = writer.encrypted ? null : hashGrowingFile(join(staged.path, baseTar), done);
      hashing?.catch(() => undefined);
      await testPausePoint('basebackup-running', ctx.env);
      const result = await done;
      if (result.code !== 0) {
        const refused = /pg_hba\.conf|replication connection/.test(result.stderr);
        throw new JarvisError('BACKUP_FAILED', `pg_basebackup failed (exit ${result.code}): ${lastLines(result.stderr)}`, refused
          ? { hint: 'allow the user replication connections in pg_hba.conf (host replication <user> <address> scram-sha-256) and reload the server' } : {});
      }
      await testPausePoint('basebackup-finished', ctx.env);
      files = (await readdir(staged.path)).sort();
      const extraTars = files.filter((f) => !/^(base|pg_wal)\.tar/.test(f) && f !== 'backup_manifest');
      if (extraTars.length) {
        throw new JarvisError('BACKUP_FAILED', `the cluster has tablespaces outside its data directory (${extraTars.join(', ')}): physical backups of those are not supported yet`, { hint: 'use method: logical for this server' });
      }
      range = walRangeOf(await readFile(join(staged.path, 'backup_manifest'), 'utf8'));
      ctx.progress.note(`adopting ${plural(files.length, 'file')} (WAL ${range.startLsn} – ${range.stopLsn})`);
      const hashed = hashing ? await hashing : undefined;
      for (const f of files) await writer.adoptFile(join(staged.path, f), writer.encrypted ? `${f}.enc` : f, f === baseTar ? hashed : undefined);
      rowCounts = await counting;
    } finally {
      await staged.release();
    }
    return {
      method: PHYSICAL_METHOD,
      format: 'tar',
      serverVersion: info.version,
      toolVersion: version.text,
      sourceBytes: Number(info.bytes),
      compression: describeCompression(compression),
      extra: {
        database, label, timeline: range.timeline, startLsn: range.startLsn, stopLsn: range.stopLsn,
        systemIdentifier: info.system_identifier, serverVersionNum: serverNum,
        // pg_wal.tar is gzip-compressed with client-gzip only (PG15); with zstd/lz4 it stays plain.
        walCompression: tarCompressionOf(files.find((f) => f.startsWith('pg_wal.tar')) ?? ''),
        rowCounts, tables: Object.keys(rowCounts).length, rows: Object.values(rowCounts).reduce((a, b) => a + b, 0),
      },
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

// ------------------------------------------------------------------ unpack

function storedFile(entry: CatalogEntry, prefix: string): FileEntry | undefined {
  return entry.manifest.files.find((f) => f.name === prefix || f.name.startsWith(`${prefix}.`));
}

function sourceOf(entry: CatalogEntry, file: FileEntry, ctx: DriverContext): { stream: NodeJS.ReadableStream; transforms: Transform[] } {
  if (!entry.manifest.encrypted) return { stream: entry.store.read(entry.key, file), transforms: [] };
  if (!ctx.keyRing) {
    throw new JarvisError('DECRYPT_FAILED', `backup ${entry.manifest.id} is encrypted and no passphrase is configured`, { hint: 'set storage.encryption.passphraseEnv and that environment variable' });
  }
  return { stream: entry.store.read(entry.key, file), transforms: [decryptor(ctx.keyRing, file.name)] };
}

/** The name pg_basebackup -Ft gives a tar compressed by the client with each algorithm. */
const TAR_EXTENSION: Record<Algorithm, string> = { none: '', gzip: '.gz', zstd: '.zst', lz4: '.lz4' };

const TAR_FLAGS: Record<Algorithm, string[]> = { none: [], gzip: ['--gzip'], zstd: ['--zstd'], lz4: ['--use-compress-program=lz4'] };

/** Streams one stored tar (decrypted when encrypted) into `dir` through GNU tar. */
async function untar(entry: CatalogEntry, file: FileEntry, dir: string, ctx: DriverContext): Promise<void> {
  const algorithm = tarCompressionOf(file.name);
  if (!algorithm) throw new JarvisError('RESTORE_FAILED', `backup ${entry.manifest.id}: ${file.name} is not a tar this version knows`);
  const { stream, transforms } = sourceOf(entry, file, ctx);
  const child = spawnTool('tar', ['-x', '-f', '-', '-C', dir, '--no-same-owner', ...TAR_FLAGS[algorithm]], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (e) => reject(new JarvisError('TOOL_MISSING', `cannot run tar: ${messageOf(e)}`, { cause: e })));
    child.on('close', (code) => resolve(code ?? 1));
  });
  const fed = pipeline([stream, ...transforms, child.stdin!]).then(() => null, (e: unknown) => {
    child.kill('SIGTERM');
    return e;
  });
  const [code, feedError] = await Promise.all([exited, fed]);
  // The store's own error first (VERIFY_FAILED: the bytes differ from the manifest; DECRYPT_FAILED),
  // then tar's (a damaged archive), then a broken pipe that tar's exit explains no better.
  if (feedError instanceof JarvisError) throw feedError;
  if (code !== 0) throw new JarvisError('RESTORE_FAILED', `unpacking ${file.name} of ${entry.manifest.id} failed: ${lastLines(stderr)}`);
  if (feedError) throw new JarvisError('RESTORE_FAILED', `reading ${file.name} of ${entry.manifest.id} failed: ${messageOf(feedError)}`, { cause: feedError });
}

/** base.tar into `dir`, pg_wal.tar into dir/pg_wal, backup_manifest beside them. */
async function unpack(entry: CatalogEntry, dir: string, ctx: DriverContext): Promise<void> {
  const base = storedFile(entry, 'base.tar');
  const wal = storedFile(entry, 'pg_wal.tar');
  const manifest = storedFile(entry, 'backup_manifest');
  if (!base || !wal || !manifest) throw new JarvisError('RESTORE_FAILED', `backup ${entry.manifest.id} lacks ${!base ? 'base.tar' : !wal ? 'pg_wal.tar' : 'backup_manifest'}`);
  ctx.progress.note(`unpacking ${base.name} (${formatBytes(base.bytes)})`);
  ctx.progress.update(0, 3);
  await untar(entry, base, dir, ctx);
  ctx.progress.update(1, 3);
  await mkdir(join(dir, 'pg_wal'), { recursive: true, mode: 0o700 });
  ctx.progress.note(`unpacking ${wal.name} (${formatBytes(wal.bytes)})`);
  await untar(entry, wal, join(dir, 'pg_wal'), ctx);
  ctx.progress.update(2, 3);
  const { stream, transforms } = sourceOf(entry, manifest, ctx);
  await pipeline([stream, ...transforms, createWriteStream(join(dir, 'backup_manifest'), { mode: 0o600 })]);
  ctx.progress.update(3, 3);
}

/** The server user owns a data directory when we are root; the directory is 0700 either way. */
async function handToServerUser(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  const ids = await serverUserIds();
  if (!ids) return;
  const r = await runToolToEnd('chown', ['-R', `${ids.uid}:${ids.gid}`, dir]);
  if (r.code !== 0) throw new JarvisError('RESTORE_FAILED', `chown -R postgres ${dir} failed: ${lastLines(r.stderr)}`);
}

// ------------------------------------------------------------------ restore

async function runningServerIn(dir: string): Promise<number | null> {
  try {
    const pid = postmasterPid(dir);
    return pid > 0 && isAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

export async function restorePhysical(entry: CatalogEntry, ctx: DriverContext, options: RestoreOptions): Promise<RestoreResult> {
  const m = entry.manifest;
  if (options.target !== undefined) {
    throw new JarvisError('USAGE', `backup ${m.id} is a physical backup of the whole cluster: it restores into a data directory (--target-dir DIR), not a database (--target-db)`);
  }
  const dir = options.targetDir;
  if (!dir) {
    throw new JarvisError('USAGE', `backup ${m.id} is a physical backup: pass --target-dir DIR, an empty directory for the restored data directory`, { hint: 'then start it with pg_ctl -D DIR start' });
  }
  const existing = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw new JarvisError('RESTORE_FAILED', `cannot read --target-dir ${dir}: ${messageOf(e)}`);
  });
  if (existing && existing.length > 0) {
    const pid = await runningServerIn(dir);
    if (pid !== null) throw new JarvisError('RESTORE_REFUSED', `--target-dir ${dir} is the data directory of a running server (pid ${pid}); not touching it`, { hint: 'stop that server first (pg_ctl -D DIR stop), or restore into another directory' });
    if (!options.force) {
      throw new JarvisError('RESTORE_REFUSED', `--target-dir ${dir} is not empty${existing.includes(INCOMPLETE_MARKER) ? ' (an interrupted restore)' : ''}; a physical restore needs an empty directory`, {
        hint: 'choose a new or empty directory, or pass --force to delete what is in it',
      });
    }
    for (const name of existing) await rm(join(dir, name), { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Removed last: a kill while unpacking leaves a directory that says it is unfinished.
  await appendFile(join(dir, INCOMPLETE_MARKER), `${m.id} ${process.pid} ${new Date().toISOString()}\n`);
  await unpack(entry, dir, ctx);
  await handToServerUser(dir);
  await rm(join(dir, INCOMPLETE_MARKER), { force: true });
  const extra = m.extra;
  const summary = `restored ${m.id} into ${dir} (PostgreSQL ${m.serverVersion ?? '?'}, timeline ${String(extra.timeline ?? '?')}, WAL up to ${String(extra.stopLsn ?? '?')}): `
    + `start it with ${isRoot() ? 'runuser -u postgres -- ' : ''}pg_ctl -D ${dir} -o '-p PORT' start; it recovers to the end of the backup`;
  return { target: dir, summary, details: { dir, timeline: extra.timeline, startLsn: extra.startLsn, stopLsn: extra.stopLsn, systemIdentifier: extra.systemIdentifier } };
}

// ------------------------------------------------------------------ verify

function majorOf(entry: CatalogEntry): number {
  return Math.floor(Number(entry.manifest.extra.serverVersionNum ?? 150000) / 10000);
}

/** Unpacks for a check: a backup that cannot be unpacked or read whole is the check's failure (its message), not an error. */
async function unpackForCheck(entry: CatalogEntry, dir: string, ctx: DriverContext): Promise<string | null> {
  try {
    await unpack(entry, dir, ctx);
    return null;
  } catch (e) {
    if (e instanceof JarvisError && e.code !== 'RESTORE_FAILED' && e.code !== 'VERIFY_FAILED') throw e;
    return messageOf(e);
  }
}

/** Unpacks into a scratch directory and runs pg_verifybackup on it (after the checksums passed). */
export async function checkPhysical(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }> {
  const scratch = await entry.store.scratchDirectory(entry.key);
  try {
    const dir = join(scratch.path, 'data');
    await mkdir(dir, { mode: 0o700 });
    const damaged = await unpackForCheck(entry, dir, ctx);
    if (damaged) return { ok: false, message: damaged };
    const tool = findPostgresTool('pg_verifybackup', majorOf(entry), ctx.env);
    // pg_verifybackup parses the WAL with pg_waldump, which Debian ships with the server, not the client.
    const parseWal = hasTool(tool, 'pg_waldump');
    ctx.progress.note(parseWal ? 'pg_verifybackup' : 'pg_verifybackup -n (no pg_waldump here: the WAL is not parsed)');
    const r = await runToolToEnd(tool, ['-e', ...(parseWal ? [] : ['-n']), dir]).catch((e: unknown) => {
      throw new JarvisError('TOOL_MISSING', `cannot run pg_verifybackup: ${messageOf(e)}`, { cause: e, hint: 'install the PostgreSQL client tools (Debian: apt-get install postgresql-client)' });
    });
    if (r.code !== 0) {
      const said = r.stderr.replaceAll(dir + '/', '').replaceAll(dir, 'the backup').replace(/^pg_verifybackup: (error: )?/gm, '');
      return { ok: false, message: `pg_verifybackup: ${lastLines(said)}` };
    }
    return { ok: true, message: `pg_verifybackup: every file matches backup_manifest${parseWal ? ' and the WAL it needs parses' : ' (WAL not parsed: pg_waldump is not installed)'}` };
  } finally {
    await scratch.release();
  }
}

// ------------------------------------------------------------------ restore test

export async function restoreTestPhysical(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }> {
  const scratch = await entry.store.scratchDirectory(entry.key);
  // The server runs as `postgres` when we are root: it needs a directory it can reach.
  const parent = await serverDataParent(join(scratch.path, 'server'));
  const dir = join(parent.dir, 'data');
  let pid: number | null = null;
  try {
    await mkdir(dir, { mode: 0o700 });
    const damaged = await unpackForCheck(entry, dir, ctx);
    if (damaged) return { ok: false, message: damaged };
    const port = await freePort();
    // The copy's own settings name the source's port and sockets: a throwaway server gets its own.
    await appendFile(join(dir, 'postgresql.auto.conf'), `\n# jarvis-db restore test\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\narchive_mode = off\n`);
    await handToServerUser(dir);
    const pgCtl = findPostgresTool('pg_ctl', majorOf(entry), ctx.env);
    if (!hasTool(pgCtl, 'pg_ctl') || !hasTool(pgCtl, 'postgres')) {
      throw new JarvisError('TOOL_MISSING', `the restore test of a physical backup starts a PostgreSQL ${majorOf(entry)} server: pg_ctl and postgres are not installed here`, {
        hint: `install the server binaries (Debian: apt-get install postgresql-${majorOf(entry)}), or verify with checksums and pg_verifybackup only (verify: checksum)`,
      });
    }
    const log = join(parent.dir, 'server.log');
    ctx.progress.note(`starting a scratch server on the restored copy (port ${port})`);
    try {
      await asServerUser(pgCtl, ['-D', dir, '-l', log, '-w', '-t', '300', 'start']);
    } catch (e) {
      const tail = await readFile(log, 'utf8').then((t) => lastLines(t), () => '');
      return { ok: false, message: `the restored copy did not start: ${tail || messageOf(e)}` };
    }
    pid = postmasterPid(dir);
    guardProcess(process.pid, pid);
    const u = new URL(postgresUrl(ctx.desired));
    u.hostname = '127.0.0.1';
    u.port = String(port);
    u.search = '';
    const client = await connectPostgres(u.toString(), APP);
    try {
      const recovering = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
      if (recovering) return { ok: false, message: 'the restored copy started but is still in recovery' };
      const actual = await countRows(client);
      const expected = (entry.manifest.extra.rowCounts ?? {}) as RowCounts;
      const missing = compareRowCounts(Object.fromEntries(Object.keys(expected).map((k) => [k, 0])), Object.fromEntries(Object.keys(actual).map((k) => [k, 0])));
      if (missing.length) return { ok: false, message: `the restored copy started, but its tables differ from the backup's: ${missing.slice(0, 5).join('; ')}` };
      const rows = Object.values(actual).reduce((a, b) => a + b, 0);
      const differing = compareRowCounts(expected, actual).length;
      return {
        ok: true,
        message: `restored into a scratch server that recovered and answers: ${plural(Object.keys(actual).length, 'table')}, ${plural(rows, 'row')}`
          + (differing ? ` (${plural(differing, 'table')} with other counts than just after the backup: written meanwhile)` : ', row counts match'),
      };
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    if (pid !== null) await stopPostgresServer(pid).catch(() => undefined);
    if (parent.temporary) await rm(parent.dir, { recursive: true, force: true }).catch(() => undefined);
    await scratch.release();
  }
}
