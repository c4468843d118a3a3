/**
 * One apply at a time per storage path (docs/architecture.md §4 rule 6).
 *
 * The lock is a kernel lock, not a file whose presence means "locked": SQLite's write lock
 * (`BEGIN IMMEDIATE`, an fcntl lock) on `<storage>/.jarvis-db.lock`. The kernel drops it when
 * the process ends, however it ends, so a killed apply (kill -9) cannot leave it behind, and
 * no liveness check or stale-lock takeover (with its races) is needed. Beside it,
 * `.jarvis-db.lock.json` says who holds it, for the message of the apply that waits; it is
 * informative only and its owner's liveness is checked before it is believed.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { JarvisError } from '../errors.js';
import { isAlive, sleep } from '../platform/processes.js';
import { writingStorage } from '../storage/failures.js';

export const LOCK_FILE = '.jarvis-db.lock';
export const OWNER_FILE = '.jarvis-db.lock.json';

export interface LockOwner { pid: number; host: string; runId: string; since: string }

export interface HeldLock {
  path: string;
  release(): Promise<void>;
}

interface Db { exec(sql: string): unknown; close(): unknown }

function isBusy(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

/** Who holds the lock, when the owner file names a live process. */
export async function lockOwner(storagePath: string): Promise<LockOwner | null> {
  try {
    const owner = JSON.parse(await readFile(join(storagePath, OWNER_FILE), 'utf8')) as LockOwner;
    if (typeof owner.pid !== 'number') return null;
    if (owner.host === hostname() && !isAlive(owner.pid)) return null;
    return owner;
  } catch {
    return null;
  }
}

function describeOwner(owner: LockOwner | null): string {
  return owner ? `pid ${owner.pid} on ${owner.host}, run ${owner.runId}, since ${owner.since}` : 'another process';
}

/** SQLite's own codes for a storage that cannot be written, with what to do; anything else is ours. */
function lockFailure(path: string, e: unknown): JarvisError {
  const code = (e as { code?: string }).code ?? '';
  const message = `cannot take the apply lock ${path}: ${(e as Error).message}`;
  const dir = dirname(path);
  if (code.startsWith('SQLITE_FULL')) return new JarvisError('STORAGE_FAILED', message, { cause: e, hint: `free space on the file system of ${dir} or point storage.path elsewhere` });
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_PERM')) {
    return new JarvisError('STORAGE_FAILED', message, { cause: e, hint: `check that ${dir} is writable by this user (permissions, a read-only mount) or point storage.path elsewhere` });
  }
  return new JarvisError('INTERNAL', message, { cause: e });
}

export interface AcquireOptions {
  timeoutMs: number;
  runId: string;
  /** Called once when the lock is busy and we start waiting. */
  onWait?(owner: LockOwner | null): void;
  pollMs?: number;
  signal?: AbortSignal;
}

/** Takes the apply lock of a storage path, waiting up to `timeoutMs`; fails with LOCK_TIMEOUT naming the holder. */
export async function acquireApplyLock(storagePath: string, options: AcquireOptions): Promise<HeldLock> {
  const path = join(storagePath, LOCK_FILE);
  await writingStorage(path, () => mkdir(storagePath, { recursive: true }));
  const { default: Database } = await import('better-sqlite3');
  const db: Db = new Database(path, { timeout: 0 });
  const started = Date.now();
  let waiting = false;
  for (;;) {
    try {
      db.exec('BEGIN IMMEDIATE');
      break;
    } catch (e) {
      if (!isBusy(e)) {
        db.close();
        throw lockFailure(path, e);
      }
    }
    if (!waiting) {
      waiting = true;
      options.onWait?.(await lockOwner(storagePath));
    }
    if (options.signal?.aborted) {
      db.close();
      throw new JarvisError('APPLY_FAILED', `interrupted while waiting for the apply lock on ${storagePath}; nothing was applied`);
    }
    if (Date.now() - started >= options.timeoutMs) {
      const owner = await lockOwner(storagePath);
      db.close();
      throw new JarvisError('LOCK_TIMEOUT', `another apply holds the lock on ${storagePath} (${describeOwner(owner)}); gave up after ${Math.round((Date.now() - started) / 1000)}s`, {
        hint: 'wait for it to finish and run apply again, or wait longer with --lock-timeout',
      });
    }
    await sleep(Math.min(options.pollMs ?? 200, Math.max(1, options.timeoutMs - (Date.now() - started))));
  }
  const owner: LockOwner = { pid: process.pid, host: hostname(), runId: options.runId, since: new Date().toISOString() };
  const ownerFile = join(storagePath, OWNER_FILE);
  try {
    await writingStorage(ownerFile, () => writeFile(ownerFile, JSON.stringify(owner) + '\n'));
  } catch (e) {
    await rm(ownerFile, { force: true }).catch(() => undefined);
    try { db.exec('ROLLBACK'); } finally { db.close(); }
    throw e;
  }
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      await rm(join(storagePath, OWNER_FILE), { force: true });
      try { db.exec('ROLLBACK'); } finally { db.close(); }
    },
  };
}
