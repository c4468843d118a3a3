/**
 * `wal status`: per repository and timeline, what the archive holds, the gaps in its chain and
 * the recoverable window (docs/architecture.md §6, "WAL in a repository"). The window opens at
 * the end of the oldest physical base backup from whose end the chain is complete up to the last
 * archived segment (a base backup is consistent at its end, not its start), and closes at the
 * time that segment was archived. The slot's retained bytes come from the server when it answers.
 */
import type { Desired } from '../config/types.js';
import { messageOf } from '../errors.js';
import type { Repository } from '../storage/repositories.js';
import { openRepositories } from '../storage/repositories.js';
import type { BackupManifest } from '../backup/storage.js';
import { baseStartOf } from './prune.js';
import { listArchive, readWalManifest, walStore } from './archive.js';
import { chainComplete, DEFAULT_SEGMENT_BYTES, gapsIn, parseLsn, parseWalFileName, segmentOfLsn, type Gap } from './segments.js';

/** A physical base backup as the window needs it. */
export interface BasePoint { id: string; timeline: number; startLsn: string; stopLsn: string; startedAt: string; finishedAt: string; serverVersionNum: number }

export interface RecoverableWindow { from: string; to: string; baseBackup: string; untilSegment: string }

export interface TimelineStatus {
  timeline: number;
  segments: number;
  first: string | null;
  last: string | null;
  lastArchivedAt: string | null;
  gaps: Gap[];
  window: RecoverableWindow | null;
  historyFiles: string[];
}

export interface RepositoryWalStatus { repository: string; location: string; timelines: TimelineStatus[]; error?: string }

export interface SlotStatus { slot: string; exists: boolean; active?: boolean; retainedBytes?: number; error?: string }

export interface WalStatus { repositories: RepositoryWalStatus[]; slot: SlotStatus | null }

/**
 * Pure: the window of one timeline. `segments` are the archived segment names of the timeline,
 * `lastArchivedAt` the archive time of the last one, `bases` the physical base backups.
 */
export function windowOf(timeline: number, segments: readonly string[], lastArchivedAt: string | null, bases: readonly BasePoint[], segmentBytes: number): RecoverableWindow | null {
  if (segments.length === 0 || !lastArchivedAt) return null;
  const names = new Set(segments);
  const last = [...segments].sort().at(-1)!;
  const candidates = bases.filter((b) => b.timeline === timeline).sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  for (const base of candidates) {
    const from = segmentOfLsn(timeline, parseLsn(base.stopLsn), segmentBytes);
    if (from > last) continue;
    if (chainComplete(names, from, last, segmentBytes)) return { from: base.finishedAt, to: lastArchivedAt, baseBackup: base.id, untilSegment: last };
  }
  return null;
}

/**
 * The physical base backups of the catalog in every repository (a backup copied to several
 * repositories counts once), oldest first. Fails only when no repository can be read.
 */
export async function basePoints(desired: Desired, env: NodeJS.ProcessEnv = process.env): Promise<BasePoint[]> {
  const { listBackups } = await import('../backup/catalog.js');
  return basePointsOf(await listBackups(openRepositories(desired, env)));
}

/** Pure: the physical base backups among catalog entries (a backup copied to several repositories counts once), oldest first. */
export function basePointsOf(entries: readonly { manifest: BackupManifest }[]): BasePoint[] {
  const byId = new Map<string, BasePoint>();
  for (const e of entries) {
    // A physical base backup: a postgres manifest with its WAL range (src/backup/postgres/physical.ts writes it).
    if (!baseStartOf(e.manifest) || typeof e.manifest.extra.stopLsn !== 'string' || byId.has(e.manifest.id)) continue;
    byId.set(e.manifest.id, {
      id: e.manifest.id, timeline: Number(e.manifest.extra.timeline), startLsn: String(e.manifest.extra.startLsn),
      stopLsn: String(e.manifest.extra.stopLsn), startedAt: e.manifest.startedAt, finishedAt: e.manifest.finishedAt,
      serverVersionNum: Number(e.manifest.extra.serverVersionNum ?? 150000),
    });
  }
  return [...byId.values()].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
}

export async function repositoryStatus(repository: Repository, bases: readonly BasePoint[]): Promise<RepositoryWalStatus> {
  const store = walStore(repository);
  const timelines: TimelineStatus[] = [];
  for (const { timeline, names } of await listArchive(store)) {
    const segments = names.filter((n) => parseWalFileName(n)?.kind === 'segment');
    const last = segments.at(-1) ?? null;
    const lastManifest = last ? await readWalManifest(store, parseWalFileName(last)!) : null;
    const segmentBytes = lastManifest?.bytes || DEFAULT_SEGMENT_BYTES;
    timelines.push({
      timeline, segments: segments.length, first: segments[0] ?? null, last, lastArchivedAt: lastManifest?.archivedAt ?? null,
      gaps: gapsIn(segments, segmentBytes),
      window: windowOf(timeline, segments, lastManifest?.archivedAt ?? null, bases, segmentBytes),
      historyFiles: names.filter((n) => n.endsWith('.history')),
    });
  }
  return { repository: repository.name, location: repository.location, timelines };
}

/** A repository's recoverable windows (one per timeline that has one) and when it last archived WAL. */
export interface RepositoryWindows {
  repository: string;
  windows: (RecoverableWindow & { timeline: number })[];
  lastArchivedAt: string | null;
  error?: string;
}

/**
 * The recoverable windows of each repository for `backup list` and `schedule`: the base backups
 * from a catalog already read, then one WAL listing per repository (and a manifest per timeline).
 * A repository whose WAL cannot be listed says why; the others are still read.
 */
export async function windowsOf(repositories: readonly Repository[], entries: readonly { manifest: BackupManifest }[]): Promise<RepositoryWindows[]> {
  const bases = basePointsOf(entries);
  const out: RepositoryWindows[] = [];
  for (const repository of repositories) {
    try {
      const status = await repositoryStatus(repository, bases);
      const last = status.timelines.map((tl) => tl.lastArchivedAt).filter((at): at is string => at !== null).sort().at(-1) ?? null;
      out.push({ repository: repository.name, windows: status.timelines.flatMap((tl) => (tl.window ? [{ timeline: tl.timeline, ...tl.window }] : [])), lastArchivedAt: last });
    } catch (e) {
      out.push({ repository: repository.name, windows: [], lastArchivedAt: null, error: messageOf(e) });
    }
  }
  return out;
}

export async function slotStatus(desired: Desired): Promise<SlotStatus | null> {
  const pg = desired.services.postgres;
  if (!pg) return null;
  const slot = pg.pitr?.slot ?? 'jarvis_db';
  try {
    const { connectPostgres } = await import('../services/postgres.js');
    const client = await connectPostgres(pg.url, { applicationName: 'jarvis-db wal status' });
    try {
      const r = await client.query<{ active: boolean; retained: string | null }>(
        'SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      const row = r.rows[0];
      if (!row) return { slot, exists: false };
      return { slot, exists: true, active: row.active, retainedBytes: row.retained === null ? 0 : Number(row.retained) };
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (e) {
    return { slot, exists: false, error: messageOf(e) };
  }
}

export async function walStatus(desired: Desired, env: NodeJS.ProcessEnv = process.env): Promise<WalStatus> {
  const bases = await basePoints(desired, env);
  const repositories: RepositoryWalStatus[] = [];
  for (const repository of openRepositories(desired, env)) {
    try {
      repositories.push(await repositoryStatus(repository, bases));
    } catch (e) {
      repositories.push({ repository: repository.name, location: repository.location, timelines: [], error: messageOf(e) });
    }
  }
  return { repositories, slot: await slotStatus(desired) };
}
