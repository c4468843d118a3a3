/**
 * Recovery points in the repositories (docs/architecture.md §7): each one an item `points/<id>`
 * of the sealed store (storage/sealed-store.ts) whose only file is its manifest `point.json`,
 * staged and published atomically like a backup's, after every member it names is published.
 * Also the start of a point with point-in-time recovery: the server's WAL position and time.
 */
import { JarvisError, messageOf } from '../errors.js';
import type { Desired } from '../config/types.js';
import { testPausePoint } from '../storage/durable.js';
import { repositoriesAt, type Repository, type RepositoryPlace } from '../storage/repositories.js';
import type { SealedStore } from '../storage/sealed-store.js';
import { removeDebrisIn } from './storage.js';
import { parsePoint, pointProblems, POINT_MANIFEST, POINTS_PREFIX, type ObservedPoint, type PointManifest } from './points.js';

export function pointStore(repository: Repository): SealedStore {
  return repository.store(POINTS_PREFIX, POINT_MANIFEST);
}

export interface PointEntry { manifest: PointManifest; repository: string }
export interface InvalidPoint { id: string; repository: string; problem: string }
export interface PointScan { points: PointEntry[]; invalid: InvalidPoint[]; unreachable: { repository: string; message: string }[] }

/** Publishes a point in one repository: staged, then its manifest last (a kill before leaves debris, never a point). */
export async function writePoint(repository: Repository, manifest: PointManifest, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const item = await pointStore(repository).begin(manifest.id, { env });
  try {
    await testPausePoint('point-before-manifest', env);
    await item.publish(JSON.stringify(manifest, null, 2) + '\n');
  } catch (e) {
    await item.abort().catch(() => undefined);
    throw e;
  }
}

/** Every point in each repository, newest first; a manifest that does not hold is listed as invalid. */
export async function scanPoints(place: RepositoryPlace): Promise<PointScan> {
  const out: PointScan = { points: [], invalid: [], unreachable: [] };
  for (const repository of repositoriesAt(place)) {
    const store = pointStore(repository);
    try {
      for (const id of await store.list('')) {
        const text = await store.readText(id, POINT_MANIFEST).catch(() => null);
        const m = text === null ? `${POINT_MANIFEST} is missing` : parsePoint(text, id);
        if (typeof m === 'string') out.invalid.push({ id, repository: repository.name, problem: m });
        else out.points.push({ manifest: m, repository: repository.name });
      }
    } catch (e) {
      out.unreachable.push({ repository: repository.name, message: messageOf(e) });
    }
  }
  out.points.sort((a, b) => b.manifest.id.localeCompare(a.manifest.id));
  return out;
}

export function toObservedPoint(e: PointEntry): ObservedPoint {
  const m = e.manifest;
  return { id: m.id, schedule: m.schedule, startedAt: m.startedAt, members: m.members, repository: e.repository, ...(m.pitr ? { pitr: m.pitr } : {}) };
}

/** The point `id` (or a unique prefix of it) in the first repository that holds it, with every copy. */
export async function findPoint(place: RepositoryPlace, id: string): Promise<PointEntry[]> {
  const scan = await scanPoints(place);
  const ids = [...new Set(scan.points.map((p) => p.manifest.id).filter((x) => x === id || x.startsWith(id)))];
  if (ids.length === 0) {
    const bad = scan.invalid.find((p) => p.id === id);
    if (bad) throw new JarvisError('BACKUP_NOT_FOUND', `recovery point ${id} is damaged in ${bad.repository}: ${bad.problem}`);
    throw new JarvisError('BACKUP_NOT_FOUND', `no recovery point ${id}`, { hint: 'jarvis-db backup list shows the points' });
  }
  if (ids.length > 1) throw new JarvisError('USAGE', `"${id}" matches ${ids.length} recovery points (${ids.join(', ')}): give more of the id`);
  return scan.points.filter((p) => p.manifest.id === ids[0]);
}

/** Deletes a point in one repository: out of the listing first, then its files. */
export async function deletePoint(repository: Repository, id: string): Promise<void> {
  await pointStore(repository).delete(id);
}

/** Removes what killed point writes left, in every repository that answers. Returns where it was. */
export async function cleanPointDebris(place: RepositoryPlace): Promise<string[]> {
  return removeDebrisIn(place, pointStore, (store) => store.findDebris(''));
}

/** With point-in-time recovery on: the server's WAL position and time now (the start of a point). */
export async function pointStart(desired: Desired): Promise<{ lsn: string; at: string } | null> {
  if (!desired.services.postgres?.pitr?.enabled) return null;
  const { connectPostgres, postgresUrl } = await import('../services/postgres.js');
  const client = await connectPostgres(postgresUrl(desired));
  try {
    const r = await client.query<{ lsn: string; at: Date }>('SELECT pg_current_wal_lsn()::text AS lsn, now() AS at');
    return { lsn: r.rows[0]!.lsn, at: r.rows[0]!.at.toISOString() };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A point as `backup list` shows it: one line per id, its copies, and what is wrong with it (per repository). */
export interface ListedPoint { id: string; schedule: string; startedAt: string; members: PointManifest['members']; pitr?: { lsn: string; at: string }; repositories: string[]; broken: string[] }

/**
 * The points of the repositories read, newest first: broken where a member is gone, damaged or
 * failed verification in a repository holding the point (the problems name the repository when
 * there are several), and each damaged point manifest as broken.
 */
export function listedPoints(
  scan: PointScan,
  backups: readonly { manifest: { id: string; service: string; schedule: string; verification: { ok: boolean } | null }; repository: string }[],
  invalid: readonly { id: string; problem: string; repository: string }[],
  several: boolean,
): ListedPoint[] {
  const byId = new Map<string, ListedPoint>();
  for (const { manifest: m, repository } of scan.points) {
    const here = backups.filter((b) => b.repository === repository).map((b) => ({ ...b.manifest, verified: b.manifest.verification?.ok ?? null }));
    const problems = pointProblems(m, here, invalid.filter((d) => d.repository === repository)).map((p) => (several ? `${p} in ${repository}` : p));
    const seen = byId.get(m.id);
    if (seen) { seen.repositories.push(repository); seen.broken.push(...problems); continue; }
    byId.set(m.id, { id: m.id, schedule: m.schedule, startedAt: m.startedAt, members: m.members, ...(m.pitr ? { pitr: m.pitr } : {}), repositories: [repository], broken: problems });
  }
  for (const bad of scan.invalid) {
    byId.set(bad.id, byId.get(bad.id) ?? { id: bad.id, schedule: '?', startedAt: '', members: [], repositories: [bad.repository], broken: [`${bad.problem}${several ? ` in ${bad.repository}` : ''}`] });
  }
  return [...byId.values()].sort((a, b) => b.id.localeCompare(a.id));
}
