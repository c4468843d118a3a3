/**
 * What planning and health read of point-in-time recovery (docs/architecture.md §6, "WAL in a
 * repository"), read-only: each repository's WAL listing with the manifest of its newest segment
 * (one listing per repository: the backup module's observation, which the WAL prune and the wal
 * module's findings share), and the server's side in one query (wal_level, the user's
 * REPLICATION, the slot and whether a receiver holds it, the current WAL position and next
 * transaction id, whether the user may run pg_switch_wal).
 */
import { messageOf } from '../errors.js';
import type { Repository } from '../storage/repositories.js';
import type { ArchivedTimeline } from './archive.js';

/** The newest archived segment of a repository, from its manifest. */
export interface LastSegment {
  name: string;
  timeline: number;
  archivedAt: string;
  /** When it was complete where it was pushed from (manifests before it existed: archivedAt). */
  completedAt: string;
  quietNextXid?: string;
}

/** One repository's WAL archive: its files by timeline, its segment size and newest segment, or why it could not be listed. */
export type ObservedWal =
  | { repository: string; timelines: ArchivedTimeline[]; segmentBytes: number; last?: LastSegment | null }
  | { repository: string; error: string };

/** The WAL archive of each repository: one listing each, and the manifest of its newest segment. */
export async function observeWalArchives(repositories: readonly Repository[]): Promise<ObservedWal[]> {
  const { listArchive, newestSegmentManifest, walStore } = await import('./archive.js');
  const { DEFAULT_SEGMENT_BYTES } = await import('./segments.js');
  return Promise.all(repositories.map(async (r): Promise<ObservedWal> => {
    try {
      const store = walStore(r);
      const timelines = await listArchive(store);
      const m = await newestSegmentManifest(store, timelines);
      const last: LastSegment | null = m
        ? { name: m.name, timeline: m.timeline, archivedAt: m.archivedAt, completedAt: m.completedAt ?? m.archivedAt, ...(m.quietNextXid ? { quietNextXid: m.quietNextXid } : {}) }
        : null;
      return { repository: r.name, timelines, segmentBytes: m?.bytes || DEFAULT_SEGMENT_BYTES, last };
    } catch (e) {
      return { repository: r.name, error: messageOf(e) };
    }
  }));
}

/** The server's side of PITR, as one query sees it. */
export interface WalServerFacts {
  user: string;
  walLevel: string;
  /** rolreplication, or superuser (which implies it). */
  replication: boolean;
  superuser: boolean;
  slot: { name: string; exists: boolean; active: boolean; physical: boolean };
  /** Whether the user may run pg_switch_wal() (wal stream keeps the rpo on a quiet server with it). */
  canSwitch: boolean;
  /** pg_current_wal_lsn(), its timeline and the cluster's WAL segment size. */
  currentLsn: string;
  timeline: number;
  segmentBytes: number;
  /** The next transaction id to be assigned (xid8), and whether a transaction that has one is in progress. */
  nextXid: string;
  inProgress: boolean;
}

export type ObservedWalServer = { ok: true; facts: WalServerFacts } | { ok: false; error: string };

export const WAL_SERVER_QUERY = `
  SELECT current_user AS "user", current_setting('wal_level') AS wal_level,
         r.rolreplication AS replication, r.rolsuper AS superuser,
         has_function_privilege('pg_switch_wal()', 'execute') AS can_switch,
         pg_current_wal_lsn()::text AS lsn,
         substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS timeline,
         (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS segment,
         pg_snapshot_xmax(s)::text AS next_xid, pg_snapshot_xmin(s) <> pg_snapshot_xmax(s) AS in_progress,
         sl.active AS slot_active, sl.slot_type AS slot_type
    FROM pg_roles r, pg_current_snapshot() s
    LEFT JOIN pg_replication_slots sl ON sl.slot_name = $1
   WHERE r.rolname = current_user`;

interface ServerRow {
  user: string; wal_level: string; replication: boolean; superuser: boolean; can_switch: boolean; lsn: string; timeline: string;
  segment: string; next_xid: string; in_progress: boolean; slot_active: boolean | null; slot_type: string | null;
}

/** Pure: the facts of one row of WAL_SERVER_QUERY. */
export function serverFactsOf(row: ServerRow, slot: string): WalServerFacts {
  return {
    user: row.user, walLevel: row.wal_level, replication: row.replication || row.superuser, superuser: row.superuser,
    slot: { name: slot, exists: row.slot_type !== null, active: row.slot_active === true, physical: row.slot_type === 'physical' },
    canSwitch: row.can_switch, currentLsn: row.lsn, timeline: parseInt(row.timeline, 16), segmentBytes: Number(row.segment),
    nextXid: row.next_xid, inProgress: row.in_progress,
  };
}

/** A query runner (a pg.Client): the stream keeps its own connection, plan and health open one. */
export interface Queryable { query<R>(text: string, values?: unknown[]): Promise<{ rows: R[] }> }

export async function queryWalServer(client: Queryable, slot: string): Promise<WalServerFacts> {
  const row = (await client.query<ServerRow>(WAL_SERVER_QUERY, [slot])).rows[0];
  if (!row) throw new Error('the user of services.postgres.url is not in pg_roles');
  return serverFactsOf(row, slot);
}

/** The server's facts, or why they could not be read (a server that is down is not an exception here). */
export async function observeWalServer(url: string, slot: string): Promise<ObservedWalServer> {
  try {
    const { connectPostgres } = await import('../services/postgres.js');
    const client = await connectPostgres(url, { applicationName: 'jarvis-db plan', connectTimeoutMs: 5000 });
    try {
      return { ok: true, facts: await queryWalServer(client as unknown as Queryable, slot) };
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (e) {
    return { ok: false, error: messageOf(e) };
  }
}
