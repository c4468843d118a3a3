/**
 * The Chroma and Redis sides of an erasure: the records and keys a tombstone's sides name, found
 * (a dry run, a verification) or removed. Chroma records are matched by the link's metadata
 * field holding one of the keys, or by the user-id metadata field; a key that reads as an integer
 * is matched both as a number and as a string, since a writer may have stored either.
 */
import type { Desired } from '../config/types.js';
import { ChromaRest, chromaService } from '../services/chroma.js';
import { findCollection } from '../services/chroma-collections.js';
import { redisUrl } from '../services/redis.js';
import { openRedisProbe } from '../services/redis-resp.js';
import { testPausePoint } from '../storage/durable.js';
import type { TombstoneSide } from './tombstones.js';

type ChromaSide = Extract<TombstoneSide, { store: 'chroma' }>;
type RedisSide = Extract<TombstoneSide, { store: 'redis' }>;

/** Per side: how many records or keys were there (found) or went (removed). */
export interface SideCount { link: string; store: 'chroma' | 'redis'; where: string; count: number; missing?: true }

const BATCH = 500;
const chunks = <T>(all: readonly T[], n = BATCH): T[][] => Array.from({ length: Math.ceil(all.length / n) }, (_, i) => all.slice(i * n, (i + 1) * n));

/** The values a field may hold for one id: the string, and the number when it is a safe integer. */
function forms(values: readonly string[]): { strings: string[]; numbers: number[] } {
  const numbers = values.filter((v) => /^-?\d{1,16}$/.test(v) && Number.isSafeInteger(Number(v))).map(Number);
  return { strings: [...values], numbers };
}

/** Chroma `where` clauses matching `field` ∈ values (either form). */
function clauses(field: string, values: readonly string[]): Record<string, unknown>[] {
  const f = forms(values);
  const out: Record<string, unknown>[] = [];
  if (f.strings.length) out.push({ [field]: { $in: f.strings } });
  if (f.numbers.length) out.push({ [field]: { $in: f.numbers } });
  return out;
}

const whereOf = (list: Record<string, unknown>[]) => (list.length === 1 ? list[0]! : { $or: list });

/** The ids of the records of one side that are the user's: its keys in batches, then the user-id field. */
async function chromaIds(rest: ChromaRest, collectionId: string, side: ChromaSide, user: string, userMetadata: string): Promise<string[]> {
  const ids = new Set<string>();
  const wheres = [...chunks(side.keys).map((keys) => clauses(side.metadata, keys)), clauses(userMetadata, [user])];
  for (const list of wheres) {
    if (!list.length) continue;
    const body = await rest.call('POST', `${rest.collectionsPath}/${collectionId}/get`, JSON.stringify({ where: whereOf(list), include: [] }));
    for (const id of (JSON.parse(body.toString('utf8')) as { ids: string[] }).ids) ids.add(id);
  }
  return [...ids];
}

export interface ChromaTarget {
  /** The restored name of a collection (restore --as), by its name in the tombstone. */
  rename?: Map<string, string>;
  /** Only these collections (a restore of some of them). */
  only?: Set<string>;
}

/** Finds (remove false) or deletes the user's records of every Chroma side. */
export async function chromaSides(desired: Desired, sides: readonly ChromaSide[], user: string, userMetadata: string, remove: boolean, env: NodeJS.ProcessEnv, target: ChromaTarget = {}): Promise<SideCount[]> {
  if (!sides.length) return [];
  const rest = new ChromaRest(chromaService(desired));
  try {
    const out: SideCount[] = [];
    for (const side of sides) {
      if (target.only && !target.only.has(side.collection)) continue;
      const name = target.rename?.get(side.collection) ?? side.collection;
      const collection = await findCollection(rest, name);
      if (!collection) { out.push({ link: side.link, store: 'chroma', where: `collection ${name}`, count: 0, missing: true }); continue; }
      const ids = await chromaIds(rest, collection.id, side, user, userMetadata);
      if (remove) {
        for (const batch of chunks(ids)) {
          await rest.call('POST', `${rest.collectionsPath}/${collection.id}/delete`, JSON.stringify({ ids: batch }));
          await testPausePoint('erase-chroma-batch', env);
        }
      }
      out.push({ link: side.link, store: 'chroma', where: `collection ${name}`, count: ids.length });
    }
    return out;
  } finally {
    rest.close();
  }
}

/** Finds (remove false: the keys that exist) or deletes the keys of every Redis side. */
export async function redisSides(desired: Desired, sides: readonly RedisSide[], remove: boolean): Promise<SideCount[]> {
  const out: SideCount[] = [];
  const url = redisUrl(desired);
  if (!sides.length) return out;
  // The RESP client of the probes: a few commands do not need ioredis (~150 ms of a start).
  const conn = await openRedisProbe(url, { name: 'jarvis-db erase' });
  try {
    for (const side of sides) {
      await conn.must(`SELECT ${side.database}`, 'SELECT', side.database);
      let count = 0;
      for (const batch of chunks(side.keys)) count += Number(await conn.must(remove ? 'DEL' : 'EXISTS', remove ? 'DEL' : 'EXISTS', ...batch));
      out.push({ link: side.link, store: 'redis', where: `db ${side.database}`, count });
    }
  } finally {
    conn.close();
  }
  return out;
}
