/**
 * Recovery points (docs/architecture.md §7), the pure part: one id naming a PostgreSQL, a Redis
 * and a Chroma backup taken together (`backup create --service all`, a `service: all` schedule),
 * and with point-in-time recovery the WAL position and time taken when the PostgreSQL member
 * started. A point is an item of its own in each repository (`points/<id>`, manifest
 * `point.json`, src/backup/point-store.ts), published after its members, so a published point
 * never names a backup that was not published first.
 *
 * Keep rule: a point is kept while its anchor (the PostgreSQL member, else its first) is kept by
 * the keep rules of the anchor's schedule in that repository; while it is kept, its other members
 * are kept too (reason `point <id>`). A point whose anchor is pruned is pruned with it, first.
 */
import { createHash } from 'node:crypto';
import type { ServiceName } from '../config/types.js';
import { canonicalJson } from '../storage/durable.js';
import type { KeepDecision } from './keep.js';

export const POINT_MANIFEST = 'point.json';
/** Where points live in a repository, beside backups, archives/ and wal/. */
export const POINTS_PREFIX = 'points/';

export interface PointMember { service: ServiceName; schedule: string; id: string }

export interface PointManifest {
  formatVersion: 1;
  id: string;
  /** The `service: all` schedule, or `all` for `backup create --service all` without one. */
  schedule: string;
  startedAt: string;
  finishedAt: string;
  /** In service order: postgres, redis, chroma. */
  members: PointMember[];
  /** With PITR: pg_current_wal_lsn() and the server's time when the PostgreSQL member started. */
  pitr?: { lsn: string; at: string };
  manifestSha256: string;
}

/** A point as planning and listing see it: its manifest's facts and the repository holding it. */
export interface ObservedPoint { id: string; schedule: string; startedAt: string; members: PointMember[]; repository?: string; pitr?: { lsn: string; at: string } }

export function pointChecksum(m: Omit<PointManifest, 'manifestSha256'> & { manifestSha256?: string }): string {
  const { manifestSha256: _omit, ...rest } = m;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

export function sealPoint(m: Omit<PointManifest, 'manifestSha256'>): PointManifest {
  return { ...m, manifestSha256: pointChecksum(m) };
}

/** A point manifest's text, or why it does not hold (unknown format, its checksum, its key). */
export function parsePoint(text: string, key: string): PointManifest | string {
  let m: PointManifest;
  try {
    m = JSON.parse(text) as PointManifest;
  } catch {
    return `${POINT_MANIFEST} is not valid JSON`;
  }
  if (!m || typeof m !== 'object' || m.formatVersion !== 1 || !Array.isArray(m.members) || m.members.length === 0) return `${POINT_MANIFEST} has an unknown format`;
  if (typeof m.manifestSha256 !== 'string' || pointChecksum(m) !== m.manifestSha256) return `${POINT_MANIFEST} fails its own checksum`;
  if (m.id !== key) return `${POINT_MANIFEST} names point ${m.id}, not the one it is in`;
  return m;
}

/** The member whose keep decides the point's: PostgreSQL's, else the first. */
export function anchorOf(point: Pick<ObservedPoint, 'members'>): PointMember {
  return point.members.find((m) => m.service === 'postgres') ?? point.members[0]!;
}

/** What is wrong with a point in one repository: each member missing or damaged there (empty: whole). */
export function pointProblems(
  point: Pick<ObservedPoint, 'members'>,
  backups: readonly { id: string; service: string; schedule: string; verified?: boolean | null }[],
  invalid: readonly { id: string; problem: string }[],
): string[] {
  return point.members.flatMap((m) => {
    const damaged = invalid.find((d) => d.id === m.id);
    if (damaged) return [`its ${m.service} backup ${m.id} is damaged (${damaged.problem})`];
    const b = backups.find((x) => x.id === m.id && x.service === m.service);
    if (!b) return [`its ${m.service} backup ${m.id} (${m.schedule}) is gone`];
    if (b.verified === false) return [`its ${m.service} backup ${m.id} failed verification`];
    return [];
  });
}

/**
 * Pure: the keep decisions of one repository with the members of its kept points kept too. A
 * point is kept when its anchor is kept (or not decided here: its schedule is gone from the
 * config, so nothing prunes it). Returns the points whose anchor goes (to prune with it).
 */
export function protectPointMembers(
  decisions: ReadonlyMap<string, { schedule: { name: string; service: string }; decisions: KeepDecision[] }>,
  points: readonly Pick<ObservedPoint, 'id' | 'members'>[],
): { pruned: string[] } {
  const byMember = (m: PointMember) => [...decisions.values()].find((d) => d.schedule.name === m.schedule && d.schedule.service === m.service)?.decisions.find((d) => d.id === m.id);
  const pruned: string[] = [];
  // Newest first, so that a member's reasons name the newest point that keeps it first.
  for (const point of [...points].sort((a, b) => b.id.localeCompare(a.id))) {
    const anchor = byMember(anchorOf(point));
    if (anchor && !anchor.keep) {
      pruned.push(point.id);
      continue;
    }
    for (const m of point.members) {
      const d = byMember(m);
      if (!d || d === anchor) continue;
      d.keep = true;
      d.reasons.push(`point ${point.id}`);
    }
  }
  return { pruned };
}
