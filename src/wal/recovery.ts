/**
 * Point-in-time recovery (docs/disaster-recovery.md, "Point-in-time recovery"): restore points,
 * and the recovery settings written into a restored physical base backup so that a stock
 * `pg_ctl start` replays the archived WAL (through `jarvis-db wal fetch`) up to the target.
 */
import { appendFile, chown, copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Desired } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { asServerUser, isRoot, serverUserIds } from '../scratch/servers.js';
import { findPostgresTool } from '../services/postgres.js';
import { openRepositories } from '../storage/repositories.js';
import { archiveSegmentBytes, fetchWalFileFrom, listArchive, walStore } from './archive.js';
import { DEFAULT_SEGMENT_BYTES, formatLsn, parseLsn, parseWalFileName, segmentName, segmentNumber, segmentOfLsn } from './segments.js';
import { basePoints, repositoryStatus, type BasePoint, type RecoverableWindow } from './status.js';

/** pg_create_restore_point(name) on the configured server; its LSN. */
export async function createRestorePoint(desired: Desired, name: string): Promise<string> {
  if (!desired.services.postgres) throw new JarvisError('USAGE', `${desired.configFile} configures no services.postgres`);
  if (name.length === 0 || name.length > 63) throw new JarvisError('USAGE', 'a restore point name has 1 to 63 characters');
  const { connectPostgres } = await import('../services/postgres.js');
  const client = await connectPostgres(desired.services.postgres.url, { applicationName: 'jarvis-db restore-point' });
  try {
    const r = await client.query<{ lsn: string }>('SELECT pg_create_restore_point($1)::text AS lsn', [name]);
    return r.rows[0]!.lsn;
  } finally {
    await client.end().catch(() => undefined);
  }
}

// ------------------------------------------------------------------ targets and the window

export type RecoveryTarget =
  | { kind: 'time'; value: string; at: number }
  | { kind: 'lsn'; value: string; lsn: bigint }
  | { kind: 'name'; value: string };

/** The one target among --to-time, --to-lsn and --to-name, or null when none is given. */
export function recoveryTargetOf(flags: { toTime?: string; toLsn?: string; toName?: string }): RecoveryTarget | null {
  const given = [flags.toTime, flags.toLsn, flags.toName].filter((v) => v !== undefined);
  if (given.length === 0) return null;
  if (given.length > 1) throw new JarvisError('USAGE', '--to-time, --to-lsn and --to-name are alternatives: give one');
  if (flags.toTime !== undefined) {
    const at = Date.parse(flags.toTime);
    if (Number.isNaN(at)) throw new JarvisError('USAGE', `--to-time: "${flags.toTime}" is not a timestamp (like 2026-12-02T14:05:00Z or "2026-12-02 14:05:00+01")`);
    return { kind: 'time', value: flags.toTime, at };
  }
  if (flags.toLsn !== undefined) return { kind: 'lsn', value: flags.toLsn, lsn: parseLsn(flags.toLsn) };
  if (flags.toName!.length === 0 || flags.toName!.length > 63) throw new JarvisError('USAGE', '--to-name: a restore point name has 1 to 63 characters');
  return { kind: 'name', value: flags.toName! };
}

export interface TimelineWindow { timeline: number; window: RecoverableWindow; repository: string }

function describeWindows(windows: readonly TimelineWindow[]): string {
  if (windows.length === 0) return 'there is no recoverable window (no physical base backup with a complete WAL chain archived after it: see jarvis-db wal status)';
  return windows.map((w) => `the recoverable window is ${w.window.from} to ${w.window.to} on timeline ${w.timeline} (repository ${w.repository})`).join('; ');
}

/**
 * Pure: the base backup to restore for `target` (`id`: a backup id or prefix, or `latest`: the
 * newest one before the target) and the window it lies in; a clear error naming the window when
 * the target is outside it.
 */
export function choosePitrBase(id: string, target: RecoveryTarget, bases: readonly BasePoint[], windows: readonly TimelineWindow[], segmentBytes = DEFAULT_SEGMENT_BYTES): { base: BasePoint; window: TimelineWindow } {
  const ordered = [...windows].sort((a, b) => b.timeline - a.timeline);
  const fits = (w: TimelineWindow): boolean => {
    if (target.kind === 'time') return target.at >= Date.parse(w.window.from) && target.at <= Date.parse(w.window.to);
    if (target.kind === 'lsn') {
      const from = bases.find((b) => b.id === w.window.baseBackup);
      return Boolean(from) && target.lsn >= parseLsn(from!.stopLsn) && segmentOfLsn(w.timeline, target.lsn, segmentBytes) <= w.window.untilSegment;
    }
    return true;
  };
  const window = ordered.find(fits);
  if (!window) throw new JarvisError('RESTORE_REFUSED', `${target.kind === 'name' ? 'restore point' : 'target'} ${target.value} is outside the recoverable window: ${describeWindows(windows)}`, {
    hint: 'pick a target inside the window; WAL written since the last archived segment is not recoverable until it is archived',
  });
  const oldest = bases.find((b) => b.id === window.window.baseBackup)!;
  const usable = bases.filter((b) => b.timeline === window.timeline && b.finishedAt >= oldest.finishedAt && (
    target.kind === 'time' ? Date.parse(b.finishedAt) <= target.at : target.kind === 'lsn' ? parseLsn(b.stopLsn) <= target.lsn : true));
  if (id === 'latest') {
    const base = usable.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))[0];
    if (!base) throw new JarvisError('RESTORE_REFUSED', `no physical base backup ends before ${target.value}: ${describeWindows(windows)}`);
    return { base, window };
  }
  const named = bases.filter((b) => b.id.startsWith(id));
  if (named.length !== 1) {
    throw new JarvisError('BACKUP_NOT_FOUND', named.length === 0 ? `no physical base backup ${id}` : `${id} names ${named.length} base backups: give more of the id`, { hint: 'jarvis-db backup list shows them; or restore latest' });
  }
  if (!usable.includes(named[0]!)) {
    throw new JarvisError('RESTORE_REFUSED', `base backup ${named[0]!.id} (ended ${named[0]!.finishedAt}) cannot reach ${target.value}: ${describeWindows(windows)}`, { hint: 'restore latest picks the newest base backup that can' });
  }
  return { base: named[0]!, window };
}

/** The windows of every repository (the first that has one for a timeline wins), and the base backups. */
export async function recoverableWindows(desired: Desired, env: NodeJS.ProcessEnv): Promise<{ bases: BasePoint[]; windows: TimelineWindow[] }> {
  const bases = await basePoints(desired, env);
  const windows: TimelineWindow[] = [];
  for (const repository of openRepositories(desired, env)) {
    const status = await repositoryStatus(repository, bases);
    for (const tl of status.timelines) {
      if (tl.window && !windows.some((w) => w.timeline === tl.timeline)) windows.push({ timeline: tl.timeline, window: tl.window, repository: repository.name });
    }
  }
  return { bases, windows };
}

// ------------------------------------------------------------------ recovery settings

/** postgresql.conf's single-quoted string. */
function confString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(value) ? value : `"${value.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** The CLI's own entry, absolute (dist/wal/recovery.js → bin/jarvis-db.js). */
export function cliEntry(): string {
  return fileURLToPath(new URL('../../bin/jarvis-db.js', import.meta.url));
}

/**
 * Pure: the lines appended to postgresql.auto.conf of a restored base backup. restore_command
 * leaves a file already in pg_wal (fetched beforehand by prepareRecovery) to PostgreSQL, which
 * reads pg_wal when restore_command fails: one `node` start per segment is what made recovery slow.
 */
export function recoverySettings(options: { target: RecoveryTarget; node: string; cli: string; configFile: string; backupId: string; onDemand?: boolean }): string {
  const { target } = options;
  // A server that cannot read the repositories (run as postgres by root) finds everything in
  // pg_wal: a `node` started for each file it probes (history files, the segment after the last)
  // would only fail, a second or more each.
  // While jarvis-db is still fetching a file into pg_wal (it is in PREFETCH_LIST), wait for it.
  const wait = `while ! test -f pg_wal/%f && grep -qsx %f ${PREFETCH_LIST}; do sleep 0.1; done; `;
  const restore = wait + (options.onDemand === false ? 'false'
    : `test ! -f pg_wal/%f && ${shellWord(options.node)} ${shellWord(options.cli)} -c ${shellWord(options.configFile)} wal fetch %f %p`);
  const targetLine = target.kind === 'time' ? `recovery_target_time = ${confString(new Date(target.at).toISOString().replace('T', ' ').replace('Z', '+00'))}`
    : target.kind === 'lsn' ? `recovery_target_lsn = ${confString(formatLsn(target.lsn))}`
    : `recovery_target_name = ${confString(target.value)}`;
  return [
    '',
    `# jarvis-db point-in-time recovery: base backup ${options.backupId}, target ${target.kind} ${target.value}`,
    ...(options.onDemand === false ? ['# the server cannot read the repositories: jarvis-db fetched the WAL it replays into pg_wal'] : []),
    `restore_command = ${confString(restore)}`,
    targetLine,
    "recovery_target_action = 'promote'",
    // The copy must not archive its new timeline into the repositories of the server it came from.
    '# archive_mode is off in the copy: turn it back on once this server replaces the old one',
    'archive_mode = off',
    '',
  ].join('\n');
}

/** Which archived WAL files restore puts into pg_wal before recovery starts. */
export interface PrefetchPlan {
  /** The files, in the order recovery replays them (history files first). */
  names: string[];
  /** A time target: the files after the first segment archived after this time are not needed. */
  stopAfterArchivedAt: number | null;
}

/**
 * Pure: the WAL recovery from `base` to `target` replays, out of `archived` (a timeline's names):
 * the history files, and the segments of the window's timeline from the one holding the base
 * backup's end (pg_wal.tar's copy of it ends there; the archived one is whole) up to the target.
 * The target bounds it only when restore_command can fetch the rest on demand (`onDemand`): the
 * server, run as `postgres` by root, cannot read the repositories, so then it is the window's end.
 * An LSN target: its segment and the next (the record at the target may start there); a time
 * target: up to the first segment archived after it (it holds the WAL written until then); a
 * restore point: its position is unknown, the window's end.
 */
export function walToPrefetch(archived: readonly string[], target: RecoveryTarget, plan: { base: BasePoint; window: TimelineWindow }, onDemand: boolean, segmentBytes = DEFAULT_SEGMENT_BYTES): PrefetchPlan {
  const { timeline, window } = plan.window;
  const from = segmentOfLsn(timeline, parseLsn(plan.base.stopLsn), segmentBytes);
  let until = window.untilSegment;
  if (onDemand && target.kind === 'lsn') {
    const next = segmentName(timeline, segmentNumber(segmentOfLsn(timeline, target.lsn, segmentBytes), segmentBytes) + 1n, segmentBytes);
    if (next < until) until = next;
  }
  const history = archived.filter((n) => parseWalFileName(n)?.kind === 'history');
  const segments = archived.filter((n) => {
    const file = parseWalFileName(n);
    return file?.kind === 'segment' && file.timeline === timeline && n >= from && n <= until;
  }).sort();
  return { names: [...history, ...segments], stopAfterArchivedAt: onDemand && target.kind === 'time' ? target.at : null };
}

/** Fetches at once into pg_wal: enough to keep the disk and zstd busy, few enough for a small machine. */
const PREFETCH_CONCURRENCY = 4;

/**
 * In the restored data directory while restore fetches WAL into pg_wal: the names still to come,
 * one a line. restore_command waits for a file listed there (so that the server can replay while
 * the rest is fetched); the list goes when the fetching ends, failed or not.
 */
export const PREFETCH_LIST = 'jarvis-db-prefetching';

/** WAL a restore fetches (startWalFetch), begun before the base backup is unpacked; prepareRecovery hands it pg_wal. */
export interface WalFetch {
  names: readonly string[];
  /** Whether the server can fetch on demand (not when root runs it as postgres). */
  onDemand: boolean;
  /** From now on the files go into `pgWal` (those fetched already are moved there). */
  deliver(pgWal: string): Promise<void>;
  /** Settles once every file is in pg_wal: the number fetched, or the first failure (a damaged file). */
  fetching: Promise<number>;
  /** Stops (the restore failed) and removes what was fetched. */
  abort(): Promise<void>;
}

/** Renames, or copies where `to` is on another file system (a --target-dir that is a mount point). */
async function moveFile(from: string, to: string): Promise<void> {
  await rename(from, to).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EXDEV') throw e;
    await copyFile(from, to);
    await rm(from, { force: true });
  });
}

/**
 * Starts fetching the WAL recovery from `plan` to `target` replays (walToPrefetch), four files at
 * once in replay order, each streamed, verified and decompressed, into a directory beside `dir`
 * (`DIR.jarvis-db-wal`) until prepareRecovery hands it DIR/pg_wal: so that the fetching overlaps
 * the base backup's unpacking. Not fsynced: a restore the machine's crash interrupts is made
 * again, and the server's end-of-recovery checkpoint makes what it replayed durable.
 */
export async function startWalFetch(desired: Desired, dir: string, target: RecoveryTarget, plan: { base: BasePoint; window: TimelineWindow }, env: NodeJS.ProcessEnv): Promise<WalFetch> {
  const ids = await serverUserIds();
  const repository = openRepositories(desired, env).find((r) => r.name === plan.window.repository)!;
  const store = walStore(repository);
  const archive = await listArchive(store);
  const wanted = walToPrefetch(archive.flatMap((tl) => tl.names), target, plan, ids === null, await archiveSegmentBytes(store, archive));
  const staging = `${dir}.jarvis-db-wal`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o700 });
  let into: string | null = null;
  const fetched: string[] = [];
  let delivered!: () => void;
  const handed = new Promise<void>((r) => { delivered = r; });
  let next = 0;
  let stopAt = wanted.names.length;
  let count = 0;
  const worker = async (): Promise<void> => {
    while (next < stopAt) {
      const i = next++;
      const name = wanted.names[i]!;
      const manifest = await fetchWalFileFrom(desired, repository, name, join(staging, name), env, { durable: false, owner: ids ?? undefined }).catch((e: unknown) => {
        stopAt = 0; // a damaged or missing file: the others stop too, and restore fails naming it
        throw e;
      });
      count++;
      if (into) await moveFile(join(staging, name), join(into, name));
      else fetched.push(name);
      if (wanted.stopAfterArchivedAt !== null && manifest.kind === 'segment' && Date.parse(manifest.archivedAt) > wanted.stopAfterArchivedAt) stopAt = Math.min(stopAt, i + 1);
    }
  };
  const workers = Promise.all(Array.from({ length: PREFETCH_CONCURRENCY }, worker));
  const fetching = workers.then(async () => {
    await handed;
    return count;
  }).finally(() => rm(staging, { recursive: true, force: true }));
  fetching.catch(() => undefined);
  return {
    names: wanted.names, onDemand: ids === null, fetching,
    deliver: async (pgWal) => {
      into = pgWal;
      for (const name of fetched.splice(0)) await moveFile(join(staging, name), join(pgWal, name));
      delivered();
    },
    abort: async () => {
      stopAt = 0;
      delivered();
      await fetching.catch(() => undefined);
    },
  };
}

/**
 * Makes a restored base backup in `dir` recover to `target` on a stock `pg_ctl start`: the
 * settings, recovery.signal, and the WAL `fetch` brings into pg_wal. `fetching` settles when the
 * last file is there (the number fetched); the server may be started before: restore_command
 * waits for the files still listed in PREFETCH_LIST.
 */
export async function prepareRecovery(desired: Desired, dir: string, target: RecoveryTarget, plan: { base: BasePoint }, fetch: WalFetch): Promise<{ fetching: Promise<number> }> {
  await writeFile(join(dir, PREFETCH_LIST), fetch.names.map((n) => `${n}\n`).join(''), { mode: 0o644 });
  await appendFile(join(dir, 'postgresql.auto.conf'), recoverySettings({ target, node: process.execPath, cli: cliEntry(), configFile: desired.configFile, backupId: plan.base.id, onDemand: fetch.onDemand }));
  await writeFile(join(dir, 'recovery.signal'), '');
  const ids = await serverUserIds();
  if (ids) {
    // The base backup's restore handed the rest to the server user already; each WAL file is given as it is fetched.
    for (const f of [PREFETCH_LIST, 'postgresql.auto.conf', 'recovery.signal']) await chown(join(dir, f), ids.uid, ids.gid);
  }
  await fetch.deliver(join(dir, 'pg_wal'));
  const fetching = fetch.fetching.finally(() => rm(join(dir, PREFETCH_LIST), { force: true }));
  fetching.catch(() => undefined);
  return { fetching };
}

// ------------------------------------------------------------------ --start

export interface StartedRecovery { port: number; reached: string; stop: string; log: string }

/**
 * Starts the prepared copy on `port`, waits until it reached the target and was promoted.
 * `fetching` (prepareRecovery's): the WAL still being fetched; when that fails, the server is
 * stopped and its error is the restore's.
 */
export async function startRecovered(desired: Desired, dir: string, port: number, base: BasePoint, env: NodeJS.ProcessEnv, fetching: Promise<number> = Promise.resolve(0), timeoutMs = 600_000): Promise<StartedRecovery> {
  let fetchFailure: unknown = null;
  fetching.catch((e: unknown) => { fetchFailure = e; });
  await appendFile(join(dir, 'postgresql.auto.conf'), `# jarvis-db restore --start\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n`);
  const log = join(dir, 'jarvis-db-recovery.log');
  const major = Math.floor(base.serverVersionNum / 10000);
  const pgCtl = findPostgresTool('pg_ctl', major, env);
  const stop = `${isRoot() ? 'runuser -u postgres -- ' : ''}${pgCtl} -D ${dir} stop`;
  const stopAndThrow = async (e: unknown): Promise<never> => {
    await asServerUser(pgCtl, ['-D', dir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    throw e;
  };
  try {
    await asServerUser(pgCtl, ['-D', dir, '-l', log, '-w', '-t', String(Math.ceil(timeoutMs / 1000)), 'start']);
  } catch (e) {
    await fetching.catch((f: unknown) => { throw f; }); // a damaged file explains a failed start best
    throw new JarvisError('RESTORE_FAILED', `the restored copy in ${dir} did not start: ${await logTail(log) || messageOf(e)}`, { hint: `see ${log}` });
  }
  const u = new URL(desired.services.postgres!.url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  u.search = '';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (fetchFailure) await stopAndThrow(fetchFailure);
    const state = await recoveryState(u.toString()).catch(() => null);
    if (state && !state.recovering) break;
    if (Date.now() > deadline) throw new JarvisError('RESTORE_FAILED', `the restored copy in ${dir} is still recovering after ${timeoutMs / 1000}s: ${await logTail(log)}`, { hint: `see ${log}; stop it with ${stop}` });
    const text = await readFile(log, 'utf8').catch(() => '');
    if (/FATAL|PANIC/.test(text) && !state) await fetching.catch((f: unknown) => { throw f; }); // the fetching's failure first
    if (/FATAL|PANIC/.test(text) && !state) throw new JarvisError('RESTORE_FAILED', `recovery of ${dir} failed: ${await logTail(log)}`, { hint: `see ${log}` });
    await new Promise((r) => setTimeout(r, 300));
  }
  // Promoted before the fetching ended: a file it failed on is still a refused restore.
  await fetching.catch(stopAndThrow);
  const text = await readFile(log, 'utf8').catch(() => '');
  const reached = /recovery stopping [^\n]*/.exec(text)?.[0] ?? /last completed transaction was at log time [^\n]*/.exec(text)?.[0] ?? 'recovery finished';
  return { port, reached, stop, log };
}

async function recoveryState(url: string): Promise<{ recovering: boolean }> {
  const { connectPostgres } = await import('../services/postgres.js');
  const client = await connectPostgres(url, { applicationName: 'jarvis-db restore', connectTimeoutMs: 2000 });
  try {
    return { recovering: (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r };
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function logTail(log: string): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.trim()).slice(-3).join(' | ');
}
