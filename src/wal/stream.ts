/**
 * `jarvis-db wal stream` (docs/disaster-recovery.md, "Point-in-time recovery"): pg_receivewal on a
 * physical replication slot (created when missing) writes the WAL into a staging directory under
 * storage.path; every completed segment (pg_receivewal renames `X.partial` to `X` once it is
 * whole and fsynced) is pushed into each repository like `wal push`, then removed locally.
 *
 * Why nothing is lost when it is killed: the slot keeps on the server every WAL byte
 * pg_receivewal has not flushed; the staging directory keeps what it flushed but we did not push
 * yet (pushed first at the next start, an identical push being a no-op); a `.partial` segment is
 * never pushed, pg_receivewal resumes it. `stream.json` in the staging directory says what was
 * archived last and when (the daemon's /metrics read it).
 */
import { readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Desired } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { runToolToEnd, spawnTool } from '../platform/processes.js';
import { findPostgresTool, libpqEnv } from '../services/postgres.js';
import { pushWalFile, removeWalDebris } from './archive.js';
import { parseWalFileName } from './segments.js';
import { SegmentSwitcher } from './switcher.js';

export const STREAM_DIR = 'wal-stream';
export const STREAM_STATE = 'stream.json';
export const DEFAULT_SLOT = 'jarvis_db';
/** The rpo of a stream without services.postgres.pitr (the config's default). */
export const DEFAULT_RPO_SECONDS = 60;

export interface StreamState {
  pid: number;
  receiverPid: number | null;
  slot: string;
  startedAt: string;
  lastArchived: string | null;
  lastArchivedAt: string | null;
  /** Segments pushed since this stream started. */
  archived: number;
  /** When the archive last held every segment pg_receivewal had completed (the archive lag's zero). */
  caughtUpAt: string | null;
}

export interface StreamOptions {
  slot?: string;
  synchronous?: boolean;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
  /** Resolves when the stream should stop (SIGTERM). */
  stop?: Promise<void>;
  pollMs?: number;
  /** Told each time the state changes (the receiver started, a segment archived). */
  onState?: (state: StreamState) => void;
}

export function streamDir(desired: Desired): string {
  return join(desired.storage.path, STREAM_DIR);
}

/** Pure: the files of the staging directory that are ready to push, in order (never `.partial`). */
export function readyToPush(names: readonly string[]): string[] {
  return names.filter((n) => {
    const f = parseWalFileName(n);
    return f !== null && f.kind !== 'backup';
  }).sort((a, b) => {
    // A timeline's history file goes before the segments of that timeline.
    const ka = a.endsWith('.history') ? `${a.slice(0, 8)}0` : `${a.slice(0, 8)}1${a}`;
    const kb = b.endsWith('.history') ? `${b.slice(0, 8)}0` : `${b.slice(0, 8)}1${b}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

async function writeState(dir: string, state: StreamState, onState?: (state: StreamState) => void): Promise<void> {
  onState?.({ ...state });
  const tmp = join(dir, `.${STREAM_STATE}.${process.pid}`);
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, join(dir, STREAM_STATE));
}

/** Pushes every completed file of the staging directory, oldest first, removing each once archived. */
export async function pushCompleted(desired: Desired, dir: string, state: StreamState, env: NodeJS.ProcessEnv, log: (line: string) => void, onState?: (state: StreamState) => void, quiet?: Map<string, string>): Promise<number> {
  let pushed = 0;
  for (const name of readyToPush(await readdir(dir))) {
    const quietNextXid = quiet?.get(name);
    const result = await pushWalFile(desired, join(dir, name), { env, warn: log, ...(quietNextXid ? { quietNextXid } : {}) });
    quiet?.delete(name);
    await unlink(join(dir, name));
    pushed++;
    state.archived++;
    state.lastArchived = name;
    state.lastArchivedAt = new Date().toISOString();
    await writeState(dir, state, onState);
    log(`archived ${name} (${result.repositories.map((r) => `${r.name}: ${r.outcome}`).join(', ')})`);
  }
  return pushed;
}

/** The server's major version and WAL segment size, and a clear error when it cannot stream WAL (wal_level, REPLICATION). */
async function serverInfo(url: string): Promise<{ major: number; segmentBytes: number; timeline: number | null }> {
  const { connectPostgres } = await import('../services/postgres.js');
  const client = await connectPostgres(url, { applicationName: 'jarvis-db wal stream' });
  try {
    const info = (await client.query<{ num: string; wal_level: string; replication: boolean; segment: string; timeline: string | null }>(
      `SELECT current_setting('server_version_num') AS num, current_setting('wal_level') AS wal_level,
              CASE WHEN pg_is_in_recovery() THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END AS timeline,
              (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS segment,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS replication`)).rows[0]!;
    if (info.wal_level === 'minimal') {
      throw new JarvisError('SERVICE_ERROR', 'the server runs with wal_level = minimal: WAL archiving needs replica or logical', { hint: 'set wal_level = replica in postgresql.conf and restart the server' });
    }
    if (!info.replication) {
      throw new JarvisError('SERVICE_ERROR', 'the user of services.postgres.url has no REPLICATION permission: pg_receivewal needs it', { hint: 'ALTER ROLE <user> REPLICATION, and allow it in pg_hba.conf (host replication <user> ...)' });
    }
    return { major: Math.floor(Number(info.num) / 10000), segmentBytes: Number(info.segment), timeline: info.timeline === null ? null : parseInt(info.timeline, 16) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * pg_receivewal pads a new segment to its full size before it writes WAL into it, and refuses to
 * start on a `.partial` of any other size: one killed while padding left such a file. It holds no
 * WAL (the data comes after the padding), and the slot still holds all of that segment, so it goes.
 */
export async function removeHalfPadded(dir: string, segmentBytes: number, log: (line: string) => void): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (!/^[0-9A-F]{24}\.partial$/.test(name)) continue;
    const { size } = await stat(join(dir, name));
    if (size === 0 || size === segmentBytes) continue;
    await unlink(join(dir, name));
    removed.push(name);
    log(`removed ${name}: ${size} bytes, a segment pg_receivewal was killed while creating (the slot holds its WAL)`);
  }
  return removed;
}

/** Runs until `options.stop` resolves (then stops pg_receivewal and pushes what it completed) or pg_receivewal fails. */
export async function streamWal(desired: Desired, options: StreamOptions = {}): Promise<StreamState> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => undefined);
  const pg = desired.services.postgres;
  if (!pg) throw new JarvisError('USAGE', `${desired.configFile} configures no services.postgres: nothing to stream WAL from`);
  const slot = options.slot ?? pg.pitr?.slot ?? DEFAULT_SLOT;
  const dir = streamDir(desired);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const server = await serverInfo(pg.url);
  const tool = findPostgresTool('pg_receivewal', server.major, env);
  const toolEnv = { ...env, ...libpqEnv(pg.url) };
  // Creating the slot first makes the server keep WAL from here on, whatever happens next.
  const created = await runToolToEnd(tool, ['--create-slot', '--if-not-exists', '--slot', slot, '--no-password'], { env: toolEnv }).catch((e: unknown) => {
    throw new JarvisError('TOOL_MISSING', `cannot run pg_receivewal: ${messageOf(e)}`, { hint: 'install the PostgreSQL client tools (Debian: apt-get install postgresql-client)' });
  });
  if (created.code !== 0) {
    throw new JarvisError('SERVICE_ERROR', `pg_receivewal --create-slot ${slot} failed: ${created.stderr.trim().split('\n').slice(-2).join(' | ')}`, {
      hint: 'the user of services.postgres.url needs the REPLICATION attribute and a pg_hba.conf line for replication connections; max_replication_slots must leave one free',
    });
  }
  const state: StreamState = { pid: process.pid, receiverPid: null, slot, startedAt: new Date().toISOString(), lastArchived: null, lastArchivedAt: null, archived: 0, caughtUpAt: null };
  await removeWalDebris(desired, env, log);
  // What a killed run received but did not push.
  await pushCompleted(desired, dir, state, env, log, options.onState);

  const args = ['-D', dir, '--slot', slot, '--no-loop', '--no-password', '--status-interval=1', ...(options.synchronous ? ['--synchronous'] : [])];
  let stopping = false;
  let current: ChildProcess | null = null;
  void options.stop?.then(() => { stopping = true; current?.kill('SIGTERM'); });
  const pollMs = options.pollMs ?? 500;
  // A standby cannot switch segments (its primary's archive_timeout or stream does).
  const switcher = server.timeline === null ? null : new SegmentSwitcher({ url: pg.url, slot, rpoSeconds: pg.pitr?.rpoSeconds ?? DEFAULT_RPO_SECONDS, timeline: server.timeline, segmentBytes: server.segmentBytes, log });
  try {
    return await receive();
  } finally {
    await switcher?.close();
  }

  async function receive(): Promise<StreamState> {
    for (let attempt = 1; ; attempt++) {
      await removeHalfPadded(dir, server.segmentBytes, log);
      const child: ChildProcess = spawnTool(tool, args, { env: toolEnv, stdio: ['ignore', 'ignore', 'pipe'] });
      current = child;
      if (stopping) child.kill('SIGTERM');
      state.receiverPid = child.pid ?? null;
      await writeState(dir, state, options.onState);
      log(`pg_receivewal on slot ${slot} into ${dir} (pid ${child.pid})`);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString('utf8')).slice(-4000); });
      const exited = new Promise<number>((resolve) => {
        child.on('error', () => resolve(127));
        child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
      });
      let code: number | null = null;
      void exited.then((c) => { code = c; });
      while (code === null) {
        await pushCompleted(desired, dir, state, env, log, options.onState, switcher?.quiet);
        state.caughtUpAt = new Date().toISOString();
        options.onState?.({ ...state });
        if (!stopping) await switcher?.tick();
        await Promise.race([exited, new Promise((r) => setTimeout(r, pollMs))]);
      }
      await pushCompleted(desired, dir, state, env, log, options.onState, switcher?.quiet);
      state.receiverPid = null;
      await writeState(dir, state, options.onState);
      if (stopping) return state;
      // A receiver killed a moment ago may still hold the slot until the server notices it is gone.
      if (/replication slot .* is active/.test(stderr) && attempt < 20) {
        log(`slot ${slot} is still held by a receiver that is gone: retrying`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw new JarvisError('TOOL_FAILED', `pg_receivewal exited (code ${code}): ${stderr.trim().split('\n').slice(-2).join(' | ') || 'no output'}`);
    }
  }
}
