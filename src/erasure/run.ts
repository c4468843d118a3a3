/**
 * An erasure across the stores (docs/erasure.md), in this order, each step safe to repeat:
 * 1. resolve against the catalog and collect the keys of the user's linked rows (read-only),
 *    merged with the keys of earlier tombstones of the same user (a killed erase deleted rows
 *    whose keys only its tombstone still knows);
 * 2. record the tombstone in every repository (before any store is touched);
 * 3. Chroma, then Redis, then PostgreSQL (one transaction), so that a kill at any point leaves
 *    the rows that name the other sides' keys until the last step, and a re-run completes it.
 * Also what a dry run shows (the same survey, nothing written), `--verify` (what is left), and
 * the re-application of tombstones to what a restore brought back.
 */
import type { Desired } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import type pg from 'pg';
import { connectPostgres, postgresUrl, withDatabase } from '../services/postgres.js';
import { parseRedisUrl, redisUrl } from '../services/redis.js';
import { testPausePoint } from '../storage/durable.js';
import { openRepositories } from '../storage/repositories.js';
import { countUserRows, erasePostgres, linkKeys, readErasureCatalog, resolveOn, userRowState, type PostgresErased } from './postgres.js';
import { erasureSettingsOf, resolveErasure, type ResolvedErasure } from './resolve.js';
import { chromaSides, redisSides, type ChromaTarget, type SideCount } from './stores.js';
import { recordTombstone, scanTombstones, tombstoneId, type Tombstone, type TombstoneSide } from './tombstones.js';

export interface ErasureReport {
  user: string;
  tombstone?: { id: string; repositories: string[] };
  postgres: { rows: Record<string, number>; user: 'anonymized' | 'deleted' | 'absent' | 'present' };
  sides: SideCount[];
  /** Links not followed, in words (not per user). */
  skipped: string[];
}

/** The key on the other side of a row's key: the Redis pattern with `{key}` replaced (literally). */
export function redisKey(pattern: string, key: string): string {
  return pattern.split('{key}').join(key);
}

/** The tombstone's sides: per resolved link, the other side with the keys of the user's rows (and earlier tombstones'). */
export function sidesOf(desired: Desired, r: ResolvedErasure, keys: Map<string, string[]>, earlier: readonly Tombstone[]): TombstoneSide[] {
  const defaultDb = desired.services.redis?.url ? parseRedisUrl(redisUrl(desired)).db : 0;
  return r.links.map(({ link }): TombstoneSide => {
    const before = earlier.flatMap((t) => t.sides.filter((s) => s.link === link.name).flatMap((s) => s.keys));
    if (link.side.store === 'chroma') {
      return { link: link.name, store: 'chroma', collection: link.side.collection, metadata: link.side.metadata, keys: [...new Set([...before, ...(keys.get(link.name) ?? [])])].sort() };
    }
    const pattern = link.side.pattern;
    const own = (keys.get(link.name) ?? []).map((k) => redisKey(pattern, k));
    return { link: link.name, store: 'redis', database: link.side.database ?? defaultDb, keys: [...new Set([...before, ...own])].sort() };
  });
}

interface Surveyed { resolved: ResolvedErasure; sides: TombstoneSide[]; earlier: Tombstone[]; rows: Record<string, number>; userRow: 'absent' | 'present' | 'anonymized' }

/** Read-only: what erasing the user touches (the keys of its rows and of its earlier tombstones). */
async function survey(desired: Desired, user: string, env: NodeJS.ProcessEnv, client: pg.Client): Promise<Surveyed> {
  const [scan, resolved] = await Promise.all([scanTombstones(openRepositories(desired, env)), resolveOn(client, desired)]);
  const earlier = scan.tombstones.filter((t) => t.user === user);
  const keys = await linkKeys(client, resolved, user);
  return { resolved, earlier, sides: sidesOf(desired, resolved, keys, earlier), rows: await countUserRows(client, resolved, user), userRow: await userRowState(client, resolved, user) };
}

/** One connection for the whole of an erasure (or its preview, or its verification). */
async function withPostgres<T>(desired: Desired, database: string | undefined, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const url = database === undefined ? postgresUrl(desired) : withDatabase(postgresUrl(desired), database);
  const client = await connectPostgres(url, { applicationName: 'jarvis-db erase' });
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const chromaOf = (sides: readonly TombstoneSide[]) => sides.filter((s): s is Extract<TombstoneSide, { store: 'chroma' }> => s.store === 'chroma');
const redisOf = (sides: readonly TombstoneSide[]) => sides.filter((s): s is Extract<TombstoneSide, { store: 'redis' }> => s.store === 'redis');

/** What an erasure would touch, nothing written (`erase --dry-run`). */
export async function previewErasure(desired: Desired, user: string, env: NodeJS.ProcessEnv): Promise<ErasureReport> {
  const s = await withPostgres(desired, undefined, (client) => survey(desired, user, env, client));
  const sides = [...(await chromaSides(desired, chromaOf(s.sides), user, s.resolved.settings.userMetadata, false, env)), ...(await redisSides(desired, redisOf(s.sides), false))];
  return { user, postgres: { rows: s.rows, user: s.userRow }, sides, skipped: s.resolved.skipped };
}

/** Erases the user everywhere: the tombstone first, then Chroma, Redis, PostgreSQL. */
export async function eraseUser(desired: Desired, user: string, env: NodeJS.ProcessEnv, now = new Date()): Promise<ErasureReport> {
  return withPostgres(desired, undefined, (client) => eraseWith(client, desired, user, env, now));
}

async function eraseWith(client: pg.Client, desired: Desired, user: string, env: NodeJS.ProcessEnv, now: Date): Promise<ErasureReport> {
  const s = await survey(desired, user, env, client);
  const r = s.resolved;
  const tombstone: Tombstone = {
    formatVersion: 1, id: tombstoneId(user, now), user, at: now.toISOString(), links: r.links.map((l) => l.link.name),
    postgres: { table: r.settings.users.table, key: r.settings.users.key, tables: r.tables.filter((t) => !t.cascade).map((t) => `${t.info.schema}.${t.info.name}`), user: r.settings.user },
    userMetadata: r.settings.userMetadata, sides: s.sides,
  };
  const repositories = await recordTombstone(openRepositories(desired, env), tombstone, env);
  await testPausePoint('erase-after-tombstone', env);
  const sides = [...(await chromaSides(desired, chromaOf(s.sides), user, r.settings.userMetadata, true, env))];
  await testPausePoint('erase-after-chroma', env);
  sides.push(...(await redisSides(desired, redisOf(s.sides), true)));
  await testPausePoint('erase-after-redis', env);
  const postgres = await erasePostgres(client, r, user, env);
  return { user, tombstone: { id: tombstone.id, repositories }, postgres, sides, skipped: r.skipped };
}

export interface Remaining { store: 'postgres' | 'chroma' | 'redis'; what: string; count: number }

/** `erase --verify`: what is left of the user in every store (nothing, once erased). */
export async function verifyErasure(desired: Desired, user: string, env: NodeJS.ProcessEnv): Promise<{ remaining: Remaining[]; checked: string[]; tombstones: number }> {
  const s = await withPostgres(desired, undefined, (client) => survey(desired, user, env, client));
  const remaining: Remaining[] = [];
  for (const [table, n] of Object.entries(s.rows)) if (n > 0) remaining.push({ store: 'postgres', what: `${table} rows`, count: n });
  if (s.userRow === 'present') remaining.push({ store: 'postgres', what: `${s.resolved.users.schema}.${s.resolved.users.name} row not ${s.resolved.settings.user === 'delete' ? 'deleted' : 'anonymized'}`, count: 1 });
  if (s.userRow === 'anonymized' && s.resolved.settings.user === 'delete') remaining.push({ store: 'postgres', what: `${s.resolved.users.name} row not deleted (anonymized only)`, count: 1 });
  const sides = [...(await chromaSides(desired, chromaOf(s.sides), user, s.resolved.settings.userMetadata, false, env)), ...(await redisSides(desired, redisOf(s.sides), false))];
  for (const side of sides) if (side.count > 0) remaining.push({ store: side.store, what: `${side.link}: ${side.where}`, count: side.count });
  const checked = [`postgres: ${Object.keys(s.rows).length} tables and the users row`, ...sides.map((x) => `${x.store}: ${x.link} (${x.where}${x.missing ? ', absent' : ''})`)];
  return { remaining, checked, tombstones: s.earlier.length };
}

/** Where a restore put the data back: the stores a tombstone is re-applied to. */
export interface ReapplyTarget {
  /** The database a logical PostgreSQL restore wrote. */
  postgres?: { database: string };
  redis?: true;
  chroma?: ChromaTarget;
}

/** Re-applies tombstones to what a restore brought back; returns what each removed. */
export async function reapplyTombstones(desired: Desired, tombstones: readonly Tombstone[], target: ReapplyTarget, env: NodeJS.ProcessEnv): Promise<{ applied: number; postgresRows: number; chroma: number; redis: number; notes: string[] }> {
  let postgresRows = 0;
  let chroma = 0;
  let redis = 0;
  const notes: string[] = [];
  // A restored database without the users table holds no user to erase (another schema's backup).
  const resolved = target.postgres && tombstones.length
    ? await withPostgres(desired, target.postgres.database, async (client) => {
      const catalog = await readErasureCatalog(client, desired);
      return catalog.get(erasureSettingsOf(desired).users.table) ? resolveErasure(desired, catalog) : null;
    })
    : null;
  if (target.postgres && tombstones.length && !resolved) notes.push(`postgres: database "${target.postgres.database}" has no table ${erasureSettingsOf(desired).users.table}: no rows to erase there`);
  for (const t of tombstones) {
    try {
      if (target.chroma) chroma += sum(await chromaSides(desired, chromaOf(t.sides), t.user, t.userMetadata, true, env, target.chroma));
      if (target.redis) redis += sum(await redisSides(desired, redisOf(t.sides), true));
      if (target.postgres && resolved) {
        const done: PostgresErased = await withPostgres(desired, target.postgres.database, (client) => erasePostgres(client, resolved, t.user, env));
        postgresRows += Object.values(done.rows).reduce((a, b) => a + b, 0);
      }
    } catch (e) {
      throw new JarvisError('RESTORE_FAILED', `the restore is done, but re-applying tombstone ${t.id} (user ${JSON.stringify(t.user)}) failed: ${messageOf(e)}`, {
        cause: e, hint: 'the restored data may hold an erased user: fix the cause and run jarvis-db erase --user ID for that user',
      });
    }
  }
  return { applied: tombstones.length, postgresRows, chroma, redis, notes };
}

const sum = (counts: readonly SideCount[]) => counts.reduce((a, c) => a + c.count, 0);
