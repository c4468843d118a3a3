/**
 * One apply at a time across machines (docs/architecture.md §4 rule 6): a lock in each shared
 * repository, restic-style, over the sealed-store contract only, so that a directory and an S3
 * bucket lock the same way. The storage path's own kernel lock (lock.ts) covers one machine;
 * two machines with two storage paths that share a repository meet only in the repository.
 *
 * A lock is an item `locks/<runId>` whose manifest `lock.json` says who holds it (run, host,
 * pid, command, since, heartbeat). Taking it: publish ours, then list the locks (`decideLock`):
 *   - another live lock is older (by since, then run id): withdraw ours, back off, try again;
 *   - only younger live locks: keep ours and look again. A younger one either saw ours and
 *     withdraws, or listed before ours was published and holds: we wait for its release.
 *     Since every taker lists after its own publish, of two takers the later lister sees the
 *     earlier one, so two never both hold (whatever the clocks say about `since`);
 *   - none: held. The heartbeat is rewritten every HEARTBEAT_MS while held (timer unref'd).
 * A lock is stale, ignored and removed, when its heartbeat is older than LEASE_MS (a machine
 * that died) or its host is this one and its pid is dead (kill -9 here). Release deletes it.
 * Heartbeats are compared with this machine's clock: the machines' clocks must agree to well
 * within the lease (NTP), as with restic's locks.
 */
import { hostname } from 'node:os';
import { basename, resolve } from 'node:path';
import { JarvisError, messageOf } from '../errors.js';
import { isAlive, sleep } from '../platform/processes.js';
import { testPausePoint } from '../storage/durable.js';
import type { Repository } from '../storage/repositories.js';
import type { SealedStore } from '../storage/sealed-store.js';
import { formatDuration } from '../render/format.js';

export const LOCKS_PREFIX = 'locks/';
export const LOCK_MANIFEST = 'lock.json';
/** A lock whose heartbeat is older than this is a dead machine's. */
export const LEASE_MS = 120_000;
export const HEARTBEAT_MS = 20_000;

export interface RepositoryLockRecord {
  runId: string;
  host: string;
  pid: number;
  /** `jarvis-db apply`: the command words only (flags may carry URLs with passwords). */
  command: string;
  since: string;
  heartbeat: string;
}

export interface LockView {
  now: number;
  host: string;
  leaseMs: number;
  isAlive(pid: number): boolean;
}

export type LockOutcome = 'held' | 'withdraw' | 'wait';

export interface LockDecision {
  outcome: LockOutcome;
  /** The oldest other live lock (who we wait for), null when held. */
  blocker: RepositoryLockRecord | null;
  /** Locks to remove: a dead machine's, a dead process's of this host, unreadable ones (by run id). */
  stale: string[];
}

function olderFirst(a: RepositoryLockRecord, b: RepositoryLockRecord): number {
  if (a.since !== b.since) return a.since < b.since ? -1 : 1;
  return a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0;
}

/** Why a lock does not count, or null when its holder may still be running. */
export function staleness(lock: RepositoryLockRecord, view: LockView): string | null {
  const beat = Date.parse(lock.heartbeat);
  if (!Number.isFinite(beat)) return 'its heartbeat is not a time';
  if (view.now - beat > view.leaseMs) return `no heartbeat for ${formatDuration(view.now - beat)}`;
  if (lock.host === view.host && !view.isAlive(lock.pid)) return `pid ${lock.pid} of this host is gone`;
  return null;
}

/**
 * Pure: what the taker of `mine` does, given every lock listed (ours included; null for one
 * whose record cannot be read, keyed by run id).
 */
export function decideLock(mine: string, locks: ReadonlyMap<string, RepositoryLockRecord | null>, view: LockView): LockDecision {
  const stale: string[] = [];
  const live: RepositoryLockRecord[] = [];
  let own: RepositoryLockRecord | undefined;
  for (const [runId, lock] of locks) {
    if (runId === mine) { if (lock) own = lock; continue; }
    if (!lock || staleness(lock, view) !== null) stale.push(runId);
    else live.push(lock);
  }
  live.sort(olderFirst);
  // Our own record not (yet) listed: we cannot be held; start over.
  if (!own) return { outcome: 'withdraw', blocker: live[0] ?? null, stale };
  const older = live.filter((l) => olderFirst(l, own!) < 0);
  if (older.length) return { outcome: 'withdraw', blocker: older[0]!, stale };
  if (live.length) return { outcome: 'wait', blocker: live[0]!, stale };
  return { outcome: 'held', blocker: null, stale };
}

/** `jarvis-db apply`, `jarvis-db backup create`: the program and its leading command words. */
export function describeCommand(argv: readonly string[]): string {
  const program = basename(argv[1] ?? 'jarvis-db').replace(/\.(m?js|ts)$/, '');
  // Command words are plain lower-case words; flags, paths, ids and URLs are left out.
  const words = argv.slice(2).filter((w) => /^[a-z][a-z-]*$/.test(w)).slice(0, 2);
  return [program, ...words].join(' ');
}

/** True for the storage path itself: its kernel lock (lock.ts) already covers it. */
export function coveredByLocalLock(repository: Repository, storagePath: string): boolean {
  return repository.config.kind === 'local' && resolve(repository.config.dir) === resolve(storagePath);
}

function parseRecord(text: string | null): RepositoryLockRecord | null {
  if (text === null) return null;
  try {
    const r = JSON.parse(text) as RepositoryLockRecord;
    if (typeof r.runId !== 'string' || typeof r.pid !== 'number' || typeof r.host !== 'string' || typeof r.since !== 'string') return null;
    return r;
  } catch {
    return null;
  }
}

function describeHolder(l: RepositoryLockRecord | null): string {
  return l ? `host ${l.host}, pid ${l.pid}, since ${l.since}, \`${l.command}\`` : 'another apply';
}

export interface HeldRepositoryLock {
  repository: string;
  release(): Promise<void>;
}

export interface RepositoryLockOptions {
  runId: string;
  /** Waiting ends at this time (ms since the epoch): LOCK_TIMEOUT. */
  deadline: number;
  /** What `--lock-timeout` said, for the message. */
  timeoutMs: number;
  command?: string;
  signal?: AbortSignal;
  onWait?(repository: Repository, holder: RepositoryLockRecord | null): void;
  /** For tests: shorter lease and heartbeat. */
  leaseMs?: number;
  heartbeatMs?: number;
  now?: () => Date;
}

async function readLocks(store: SealedStore): Promise<Map<string, RepositoryLockRecord | null>> {
  const locks = new Map<string, RepositoryLockRecord | null>();
  for (const runId of await store.list('')) {
    // One removed between the listing and the read is simply not there any more.
    const text = await store.readText(runId, LOCK_MANIFEST).catch(() => null);
    locks.set(runId, parseRecord(text));
  }
  return locks;
}

async function publish(store: SealedStore, record: RepositoryLockRecord): Promise<void> {
  const item = await store.begin(record.runId);
  try {
    await item.publish(JSON.stringify(record) + '\n');
  } catch (e) {
    await item.abort().catch(() => undefined);
    throw e;
  }
}

/** Deletes a lock; one another taker removed first is gone either way. */
async function remove(store: SealedStore, runId: string): Promise<void> {
  await store.delete(runId).catch(() => undefined);
}

/** Takes the lock of one repository, waiting until `deadline`; LOCK_TIMEOUT names the holder. */
export async function acquireRepositoryLock(repository: Repository, options: RepositoryLockOptions): Promise<HeldRepositoryLock> {
  const store = repository.store(LOCKS_PREFIX, LOCK_MANIFEST);
  const now = options.now ?? (() => new Date());
  const leaseMs = options.leaseMs ?? LEASE_MS;
  const started = now().getTime();
  const since = now().toISOString();
  const record: RepositoryLockRecord = {
    runId: options.runId, host: hostname(), pid: process.pid, command: options.command ?? describeCommand(process.argv), since, heartbeat: since,
  };
  // A taker killed while publishing its lock left a staged item: nobody owns it any more.
  await store.removeDebris(await store.findDebris(''));
  let published = false;
  let waiting = false;
  let backoffMs = 100;
  let lastBeat = started;
  for (;;) {
    if (!published) {
      record.heartbeat = now().toISOString();
      lastBeat = now().getTime();
      await publish(store, record);
      published = true;
    } else if (now().getTime() - lastBeat >= (options.heartbeatMs ?? HEARTBEAT_MS)) {
      // Waiting behind a younger holder keeps ours: it must not look like a dead machine's.
      record.heartbeat = now().toISOString();
      lastBeat = now().getTime();
      await store.writeRecord(record.runId, LOCK_MANIFEST, JSON.stringify(record) + '\n');
    }
    const decision = decideLock(record.runId, await readLocks(store), { now: now().getTime(), host: record.host, leaseMs, isAlive });
    for (const runId of decision.stale) await remove(store, runId);
    if (decision.outcome === 'held') break;
    if (decision.outcome === 'withdraw') {
      await remove(store, record.runId);
      published = false;
    }
    if (!waiting) {
      waiting = true;
      options.onWait?.(repository, decision.blocker);
    }
    const left = options.deadline - Date.now();
    if (options.signal?.aborted || left <= 0) {
      if (published) await remove(store, record.runId);
      if (options.signal?.aborted) throw new JarvisError('APPLY_FAILED', `interrupted while waiting for the lock of repository ${repository.name}; nothing was applied`);
      throw new JarvisError('LOCK_TIMEOUT', `repository ${repository.name} (${repository.location}): another apply holds it (${describeHolder(decision.blocker)}); waited ${Math.round((Date.now() - started) / 1000)}s: retry later or raise --lock-timeout`);
    }
    // Jittered back-off, so that two takers that withdrew together do not collide again.
    await sleep(Math.min(left, backoffMs * (0.5 + Math.random())));
    backoffMs = Math.min(backoffMs * 2, 2000);
  }
  let beating: Promise<void> = Promise.resolve();
  const heartbeat = setInterval(() => {
    record.heartbeat = now().toISOString();
    // A repository unreachable for a moment: the next beat tries again; the lease is long.
    beating = store.writeRecord(record.runId, LOCK_MANIFEST, JSON.stringify(record) + '\n').catch(() => undefined);
  }, options.heartbeatMs ?? HEARTBEAT_MS);
  heartbeat.unref();
  let released = false;
  return {
    repository: repository.name,
    async release() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      // A beat still in flight must not put the record back after it is deleted (an object store).
      await beating;
      await remove(store, record.runId);
    },
  };
}

export interface RepositoryLocks {
  held: HeldRepositoryLock[];
  /** Repositories that could not be locked because they could not be reached, with the reason. */
  skipped: { repository: string; reason: string }[];
  release(): Promise<void>;
}

/**
 * Locks every shared repository (all but the storage path), one after the other in the order
 * of their locations, so that two applies take them in the same order and cannot each hold one
 * the other waits for. A repository that cannot be reached is skipped, not fatal: what the
 * apply does with an unreachable repository is its plan's business (its actions fail or are
 * held back there); failing the whole apply here would stop the work on every other one.
 */
export async function acquireRepositoryLocks(repositories: readonly Repository[], storagePath: string, options: RepositoryLockOptions & { env?: NodeJS.ProcessEnv }): Promise<RepositoryLocks> {
  const shared = repositories.filter((r) => !coveredByLocalLock(r, storagePath)).sort((a, b) => (a.location < b.location ? -1 : a.location > b.location ? 1 : 0));
  const held: HeldRepositoryLock[] = [];
  const skipped: RepositoryLocks['skipped'] = [];
  const release = async () => {
    for (const lock of held.splice(0).reverse()) await lock.release().catch(() => undefined);
  };
  try {
    for (const repository of shared) {
      try {
        held.push(await acquireRepositoryLock(repository, options));
      } catch (e) {
        if ((e as { code?: string }).code === 'LOCK_TIMEOUT' || (e as { code?: string }).code === 'APPLY_FAILED') throw e;
        skipped.push({ repository: repository.name, reason: messageOf(e) });
      }
    }
    if (held.length) await testPausePoint('repository-locks-held', options.env ?? process.env);
  } catch (e) {
    await release();
    throw e;
  }
  return { held, skipped, release };
}
