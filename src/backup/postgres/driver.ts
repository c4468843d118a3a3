/**
 * The PostgreSQL backup driver: pg_dump / pg_restore.
 *
 * - Directory format with `-j` jobs (default) or custom format, `-Z` compression.
 * - The password never reaches a command line: children get PGHOST/PGPORT/PGUSER/PGDATABASE/
 *   PGPASSWORD in their environment, built from the configured URL.
 * - The client tools must be at least the server's major version (TOOL_VERSION otherwise).
 * - Row counts: one REPEATABLE READ transaction exports its snapshot (pg_export_snapshot) and
 *   pg_dump runs with `--snapshot`, so the exact `count(*)` per table, taken in that same
 *   transaction while pg_dump runs, describes exactly the data in the dump. Counting runs
 *   concurrently with the dump (it reads the same pages, mostly from cache); the benchmark
 *   measures what it costs. reltuples would be free but is an estimate, useless for a check.
 * - Files: pg_dump writes the directory; each file is streamed through SHA-256 (and through
 *   encryption when on, in which case the encrypted bytes are what is stored and checksummed)
 *   as soon as pg_dump reports it finished, while the dump goes on (adopt.ts).
 *   Custom format streams pg_dump's stdout straight through the hashing writer.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import type { BackupSchedule } from '../../config/types.js';
import { JarvisError, messageOf } from '../../errors.js';
import {
  connectAdmin, connectPostgres, databaseOf, findPostgresTool, libpqEnv, postgresUrl, withDatabase,
} from '../../services/postgres.js';
import { runToolToEnd, spawnTool } from '../../platform/processes.js';
import { decryptor } from '../../storage/crypto.js';
import { plural } from '../../render/format.js';
import { DumpAdopter } from './adopt.js';
import { dropPartitionedTables, dumpedTables } from './clean-partitions.js';
import { countTocEntries, RestoreProgress } from './restore-progress.js';
import type { BackupDriver, DriverContext, RestoreOptions, RestoreResult } from '../driver.js';
import { leftoverRefusal, markerText, parseMarker, stopLeftoverTool, type RestoreMarker } from '../restore-marker.js';
import { testPausePoint, type BackupWriter, type CatalogEntry, type ManifestFields } from '../storage.js';

export type RowCounts = Record<string, number>;

const APP = { applicationName: 'jarvis-db backup' };

interface RunResult { code: number; stderr: string }

function run(cmd: string, args: string[], env: Record<string, string>, options: { onStderrLine?: (line: string) => void; stdout?: 'ignore' | 'pipe'; signal?: AbortSignal } = {}): { done: Promise<RunResult>; child: ChildProcess } {
  // An abort (the backup stopping) kills the tool's guard, and the guard its process group.
  const child = spawnTool(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', options.stdout ?? 'ignore', 'pipe'], ...(options.signal ? { signal: options.signal } : {}) });
  const tail: string[] = [];
  let partial = '';
  child.stderr!.on('data', (d: Buffer) => {
    partial += d.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      options.onStderrLine?.(line);
      tail.push(line);
      if (tail.length > 40) tail.shift();
    }
  });
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', (e) => {
      // Stopped on purpose: the tool was killed and 'close' follows with its exit.
      if (e.name === 'AbortError') return;
      const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'TOOL_MISSING' : 'TOOL_FAILED';
      reject(new JarvisError(code, `cannot run ${cmd}: ${messageOf(e)}`, { cause: e, hint: code === 'TOOL_MISSING' ? 'install the PostgreSQL client tools (Debian: apt-get install postgresql-client)' : undefined }));
    });
    child.on('close', (code, signal) => {
      if (partial) tail.push(partial);
      resolve({ code: code ?? (signal ? 128 : 1), stderr: tail.join('\n') });
    });
  });
  return { done, child };
}

/** The TOC of a dump as `pg_restore -l` lists it (its entries are the total of the restore's progress). */
async function tocListing(tool: string, dump: string): Promise<string> {
  const listed = await runToolToEnd(tool, ['-l', dump]).catch((e: unknown) => {
    throw new JarvisError('RESTORE_FAILED', `pg_restore -l could not read the dump: ${messageOf(e)}`, { cause: e });
  });
  if (listed.code !== 0) throw new JarvisError('RESTORE_FAILED', `pg_restore -l could not read the dump: ${listed.stderr.trim().split('\n').at(-1) ?? `exit ${listed.code}`}`);
  return listed.stdout;
}

/** One `--version` per tool path and process: a backup asks it before it knows the server's major. */
const versions = new Map<string, Promise<{ text: string; major: number }>>();

export function toolVersion(tool: string): Promise<{ text: string; major: number }> {
  let version = versions.get(tool);
  if (!version) {
    version = readToolVersion(tool);
    versions.set(tool, version);
    version.catch(() => versions.delete(tool));
  }
  return version;
}

async function readToolVersion(tool: string): Promise<{ text: string; major: number }> {
  const child = spawnTool(tool, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d; });
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', (e) => reject(new JarvisError('TOOL_MISSING', `cannot run ${tool}: ${messageOf(e)}`, { cause: e, hint: 'install the PostgreSQL client tools (Debian: apt-get install postgresql-client)' })));
    child.on('close', (c) => resolve(c ?? 1));
  });
  const m = /(\d+)(?:\.(\d+))?/.exec(out);
  if (code !== 0 || !m) throw new JarvisError('TOOL_FAILED', `${tool} --version failed: ${out.trim()}`);
  return { text: out.trim(), major: Number(m[1]) };
}

/** Pure: the client must be at least the server's major version. */
export function checkToolVersion(tool: string, clientMajor: number, serverVersionNum: number): void {
  const serverMajor = Math.floor(serverVersionNum / 10000);
  if (clientMajor < serverMajor) {
    throw new JarvisError('TOOL_VERSION', `${tool} ${clientMajor} is older than the server (PostgreSQL ${serverMajor}); it cannot dump or restore it reliably`, {
      hint: `install postgresql-client-${serverMajor} or set JARVIS_PG_BINDIR to its bin directory`,
    });
  }
}

const TABLES_SQL = `
  SELECT format('%I.%I', n.nspname, c.relname) AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 1`;

/** Exact row count of every user table (leaf tables: partitions counted once). */
export async function countRows(client: pg.Client): Promise<RowCounts> {
  const tables = (await client.query<{ name: string }>(TABLES_SQL)).rows.map((r) => r.name);
  const counts: RowCounts = {};
  for (const name of tables) {
    const r = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${name}`);
    counts[name] = Number(r.rows[0]!.n);
  }
  return counts;
}

/** Tables missing or with other counts; with `exact`, also tables the backup does not have. */
export function compareRowCounts(expected: RowCounts, actual: RowCounts, exact = true): string[] {
  const problems: string[] = [];
  for (const [table, n] of Object.entries(expected)) {
    if (!(table in actual)) problems.push(`${table}: missing`);
    else if (actual[table] !== n) problems.push(`${table}: ${actual[table]} rows, expected ${n}`);
  }
  if (exact) for (const table of Object.keys(actual)) if (!(table in expected)) problems.push(`${table}: not in the backup`);
  return problems;
}

async function listFilesRecursive(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...(await listFilesRecursive(join(dir, e.name), `${prefix}${e.name}/`)));
    else out.push(prefix + e.name);
  }
  return out.sort();
}

/** A physical backup (pg_basebackup, physical.ts), by its manifest. */
function isPhysical(entry: CatalogEntry): boolean {
  return entry.manifest.method === 'pg_basebackup';
}

async function create(schedule: BackupSchedule, ctx: DriverContext, writer: BackupWriter): Promise<ManifestFields> {
  if (schedule.method === 'physical') return (await import('./physical.js')).createPhysical(schedule, ctx, writer);
  const url = postgresUrl(ctx.desired);
  const database = databaseOf(url);
  const format = schedule.format ?? 'directory';
  const jobs = Math.max(1, schedule.jobs ?? 2);
  const level = schedule.compression ?? 1;
  // The newest installed pg_dump is the usual pick: its --version runs while we connect.
  toolVersion(findPostgresTool('pg_dump', 0, ctx.env)).catch(() => undefined);
  const client = await connectPostgres(url, APP);
  let snapshotOpen = false;
  try {
    const info = await client.query<{ num: string; version: string; bytes: string }>(
      `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version, pg_database_size(current_database())::text AS bytes`);
    const serverNum = Number(info.rows[0]!.num);
    const dumpTool = findPostgresTool('pg_dump', Math.floor(serverNum / 10000), ctx.env);
    const tool = await toolVersion(dumpTool);
    checkToolVersion('pg_dump', tool.major, serverNum);

    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    snapshotOpen = true;
    const snapshot = (await client.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0]!.s;
    const env = libpqEnv(url);
    const args = ['--no-password', `--snapshot=${snapshot}`, '-Z', String(level), '-v'];
    const raw = writer.encrypted ? 'plain' : 'data';
    let total = 0;
    const adopter = new DumpAdopter(writer, (done) => { if (total) ctx.progress.update(done, total); });
    const onStderrLine = (line: string) => {
      const m = /dumping contents of table "?([^"]+)"?/.exec(line) ?? /processing data for table "?([^"]+)"?/.exec(line);
      if (m) ctx.progress.note(`dumping ${m[1]}`);
      if (format === 'directory') adopter.line(line);
    };
    ctx.progress.note(`pg_dump ${format}${format === 'directory' ? ` -j ${jobs}` : ''} -Z ${level} of ${database}`);
    const countsPromise = countRows(client);
    countsPromise.catch(() => undefined);

    if (format === 'directory') {
      const staged = await writer.stageLocalDirectory(raw);
      // pg_dump -Fd writes into an empty directory that exists. Data files are adopted as
      // pg_dump finishes them (adopt.ts), the rest after it exits.
      adopter.dir = staged.path;
      const { done } = run(dumpTool, [...args, '-Fd', '-j', String(jobs), '--no-sync', '-f', staged.path], env, { onStderrLine, signal: ctx.signal });
      try {
        await testPausePoint('dump-running', ctx.env);
        const result = await done;
        if (result.code !== 0) throw new JarvisError('BACKUP_FAILED', `pg_dump failed (exit ${result.code}): ${lastLines(result.stderr)}`);
        await testPausePoint('dump-finished', ctx.env);
        const files = await listFilesRecursive(staged.path);
        total = files.length;
        await adopter.finish(files);
      } finally {
        await adopter.settle();
      }
      await staged.release();
    } else {
      const { done, child } = run(dumpTool, [...args, '-Fc'], env, { onStderrLine, stdout: 'pipe', signal: ctx.signal });
      const name = writer.encrypted ? 'dump.pgc.enc' : 'dump.pgc';
      const written = writer.writeStream(name, child.stdout!);
      const [result] = await Promise.all([done, written.catch((e) => { child.kill('SIGTERM'); throw e; })]);
      if (result.code !== 0) throw new JarvisError('BACKUP_FAILED', `pg_dump failed (exit ${result.code}): ${lastLines(result.stderr)}`);
    }
    const rowCounts = await countsPromise;
    await client.query('COMMIT');
    snapshotOpen = false;
    return {
      method: 'pg_dump',
      format,
      serverVersion: info.rows[0]!.version,
      toolVersion: tool.text,
      sourceBytes: Number(info.rows[0]!.bytes),
      compression: `gzip:${level}`,
      extra: { database, jobs, rowCounts, tables: Object.keys(rowCounts).length, rows: Object.values(rowCounts).reduce((a, b) => a + b, 0) },
    };
  } finally {
    if (snapshotOpen) await client.query('ROLLBACK').catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

function lastLines(text: string, n = 3): string {
  return text.split('\n').filter((l) => l.trim() && !/^pg_(dump|restore): (dumping|processing|reading|creating|executing|launching|finished|saving|last built-in|connecting|implied|entering|dropping)/.test(l)).slice(-n).join(' | ') || text.split('\n').slice(-n).join(' | ');
}

function restoreName(database: string, kind: 'restore' | 'verify', id: string): string {
  return `${database}_${kind}_${id.toLowerCase().replace(/[^a-z0-9]/g, '_')}`.slice(0, 63);
}

/** The backup's data in a form pg_restore reads: the backup's own directory, or decrypted into a scratch dir when encrypted. */
export async function restoreSource(entry: CatalogEntry, ctx: Pick<DriverContext, 'keyRing'>): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const m = entry.manifest;
  const inner = m.format === 'custom' ? 'dump.pgc' : 'data';
  if (!m.encrypted) {
    const local = await entry.store.openLocalDirectory(entry.key);
    return { path: join(local.path, inner), cleanup: () => local.release() };
  }
  if (!ctx.keyRing) {
    throw new JarvisError('DECRYPT_FAILED', `backup ${m.id} is encrypted and no passphrase is configured`, { hint: 'set storage.encryption.passphraseEnv and that environment variable' });
  }
  const scratch = await entry.store.scratchDirectory(entry.key);
  try {
    for (const f of m.files) {
      const plainName = f.name.replace(/\.enc$/, '');
      const out = join(scratch.path, plainName);
      await mkdir(dirname(out), { recursive: true });
      await pipeline(entry.store.read(entry.key, f), decryptor(ctx.keyRing, f.name), createWriteStream(out, { mode: 0o600 }));
    }
  } catch (e) {
    await scratch.release();
    throw e;
  }
  return { path: join(scratch.path, inner), cleanup: () => scratch.release() };
}

async function isEmptyDatabase(url: string): Promise<boolean> {
  const client = await connectPostgres(url, APP);
  try {
    const r = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`);
    return Number(r.rows[0]!.n) === 0;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function commentOn(admin: pg.Client, database: string, text: string | null | undefined): Promise<void> {
  await admin.query(`COMMENT ON DATABASE ${admin.escapeIdentifier(database)} IS ${text == null ? 'NULL' : admin.escapeLiteral(text)}`);
}

/** Ends the sessions left in a database (a killed pg_restore's backends), then drops it. */
async function dropDatabase(admin: pg.Client, database: string): Promise<void> {
  await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
  await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(database)}`);
}

async function restoreInto(entry: CatalogEntry, ctx: DriverContext, target: string, options: RestoreOptions): Promise<RestoreResult> {
  const url = postgresUrl(ctx.desired);
  const admin = await connectAdmin(url, APP);
  const label = `database "${target}"`;
  let created = false;
  try {
    const existing = (await admin.query<{ comment: string | null }>(`SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`, [target])).rows[0];
    const leftover = parseMarker(existing?.comment);
    if (leftover) {
      const stopped = await stopLeftoverTool(label, leftover);
      if (stopped !== null) ctx.progress.note(`stopped pid ${stopped}, still restoring into ${target} for an interrupted restore`);
      if (!options.force) throw leftoverRefusal(label, leftover);
      // A database the interrupted restore created is replaced; one it restored onto (--force) is restored onto again.
      if (leftover.created) await dropDatabase(admin, target);
    }
    if (!existing || leftover?.created) {
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(target)}`);
      created = true;
    }
    const serverNum = Number((await admin.query<{ n: string }>(`SELECT current_setting('server_version_num') AS n`)).rows[0]!.n);
    const restoreTool = findPostgresTool('pg_restore', Math.floor(serverNum / 10000), ctx.env);
    const tool = await toolVersion(restoreTool);
    checkToolVersion('pg_restore', tool.major, serverNum);
    const targetUrl = withDatabase(url, target);
    const empty = created || (await isEmptyDatabase(targetUrl));
    if (!empty && !options.force) {
      throw new JarvisError('RESTORE_REFUSED', `database "${target}" is not empty; restoring onto it would replace its objects`, {
        hint: 'restore into a new database (--target-db NEW) or pass --force to drop and replace the objects in the backup',
      });
    }
    const marker: RestoreMarker = {
      backup: entry.manifest.id, startedAt: new Date().toISOString(), pid: process.pid, created,
      previousComment: leftover ? (leftover.previousComment ?? null) : (existing?.comment ?? null),
    };
    // Marked before the first write: a kill from here on leaves a target that says what it is.
    await commentOn(admin, target, markerText(marker));
    const source = await restoreSource(entry, ctx);
    try {
      const jobs = String(Math.max(1, options.jobs ?? Number(entry.manifest.extra.jobs ?? 2)));
      const args = ['--no-password', '-d', target, '-j', jobs, '--exit-on-error'];
      if (!empty) args.push('--clean', '--if-exists');
      const listing = await tocListing(restoreTool, source.path);
      if (!empty) {
        const client = await connectPostgres(targetUrl, APP);
        try {
          const dropped = await dropPartitionedTables(client, dumpedTables(listing));
          if (dropped.length) ctx.progress.note(`dropped the partitioned ${plural(dropped.length, 'table')} ${dropped.join(', ')} first (pg_restore --clean cannot)`);
        } catch (e) {
          throw new JarvisError('RESTORE_FAILED', `cannot drop the partitioned tables of "${target}" that the backup replaces: ${messageOf(e)}`, { cause: e, hint: 'drop them by hand (other objects may depend on them), or restore into a new database (--target-db NEW)' });
        } finally {
          await client.end().catch(() => undefined);
        }
      }
      ctx.progress.note(`pg_restore -j ${jobs} into ${target}`);
      // -v: one stderr line per TOC item, turned into the progress note and bar
      const progress = new RestoreProgress(countTocEntries(listing), (note, n, total) => { ctx.progress.note(note); ctx.progress.update(n, total); });
      const { done, child } = run(restoreTool, ['-v', ...args, source.path], libpqEnv(url, target), { onStderrLine: (line) => progress.line(line) });
      if (child.pid !== undefined) await commentOn(admin, target, markerText({ ...marker, toolPid: child.pid }));
      await testPausePoint('restore-running', ctx.env);
      const result = await done;
      if (result.code !== 0) throw new JarvisError('RESTORE_FAILED', `pg_restore into "${target}" failed (exit ${result.code}): ${lastLines(result.stderr)}`);
    } finally {
      await source.cleanup();
    }
    const expected = (entry.manifest.extra.rowCounts ?? {}) as RowCounts;
    const client = await connectPostgres(targetUrl, APP);
    let problems: string[];
    let actual: RowCounts;
    try {
      actual = await countRows(client);
      // Restored onto a non-empty target (--force), its other tables stay: compare the backup's tables only.
      problems = compareRowCounts(expected, actual, empty);
    } finally {
      await client.end().catch(() => undefined);
    }
    const rows = Object.values(actual).reduce((a, b) => a + b, 0);
    if (problems.length) {
      throw new JarvisError('RESTORE_FAILED', `restored "${target}" but row counts differ from the backup: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`);
    }
    await commentOn(admin, target, marker.previousComment);
    return { target, summary: `restored ${entry.manifest.id} into database "${target}": ${plural(Object.keys(actual).length, 'table')}, ${plural(rows, 'row')}, row counts match`, details: { database: target, tables: Object.keys(actual).length, rows } };
  } catch (e) {
    if (created && !(e instanceof JarvisError && e.code === 'RESTORE_FAILED')) {
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(target)}`).catch(() => undefined);
    }
    throw e;
  } finally {
    await admin.end().catch(() => undefined);
  }
}

async function restore(entry: CatalogEntry, ctx: DriverContext, options: RestoreOptions): Promise<RestoreResult> {
  if (isPhysical(entry)) return (await import('./physical.js')).restorePhysical(entry, ctx, options);
  if (options.targetDir !== undefined) {
    throw new JarvisError('USAGE', `backup ${entry.manifest.id} is a logical backup (pg_dump): it restores into a database (--target-db), not a directory (--target-dir is for physical backups)`);
  }
  const database = String(entry.manifest.extra.database ?? databaseOf(postgresUrl(ctx.desired)));
  const target = options.target ?? restoreName(database, 'restore', entry.manifest.id);
  return restoreInto(entry, ctx, target, options);
}

async function restoreTest(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }> {
  if (isPhysical(entry)) return (await import('./physical.js')).restoreTestPhysical(entry, ctx);
  const database = String(entry.manifest.extra.database ?? databaseOf(postgresUrl(ctx.desired)));
  const scratch = restoreName(database, 'verify', entry.manifest.id);
  const admin = await connectAdmin(postgresUrl(ctx.desired), APP);
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(scratch)}`);
    try {
      const r = await restoreInto(entry, ctx, scratch, { force: false });
      return { ok: true, message: r.summary.replace(`into database "${scratch}"`, 'into a scratch database') };
    } catch (e) {
      if (e instanceof JarvisError && (e.code === 'RESTORE_FAILED' || e.code === 'DECRYPT_FAILED')) return { ok: false, message: e.message };
      throw e;
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(scratch)}`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}

/** Physical backups only: pg_verifybackup on an unpacked copy (a dump has no check beyond its checksums; its restore test is the check). */
async function checkContent(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }> {
  return (await import('./physical.js')).checkPhysical(entry, ctx);
}

export const postgresDriver: BackupDriver = { service: 'postgres', create, restore, restoreTest, checkContent, checksContent: isPhysical };
