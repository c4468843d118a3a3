/**
 * The links compared on the live services (the health check `consistency`): per link, every key
 * of both sides when both are small (up to `fullLimit` keys each) and they can be read within the
 * link's time budget, else a bounded sample of each side looked up on the other; the report says
 * which. One connection per service for all the
 * links, the links one after the other (a health check must not load the servers). A service
 * that cannot be reached fails only the links that need it; a link naming an unknown table,
 * column or collection fails alone, as a config error naming its file:line.
 */
import type pg from 'pg';
import type { Desired, LinkDeclaration } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { ChromaRest, describeChromaFailure } from '../services/chroma.js';
import { connectPostgres } from '../services/postgres.js';
import { parseRedisUrl } from '../services/redis.js';
import { openRedisProbe, type RespConnection } from '../services/redis-resp.js';
import { KeyMatcher, describeCompared, sampleOrphans, sourceOf, type LinkFailure, type LinkOutcome, type LinkReport, type Orphans } from './compare.js';
import { countRows, linkTable, presentRows, sampleRows, streamRows } from './rows.js';
import {
  chromaCount, chromaItems, chromaPresent, chromaSample, linkCollection, redisItems, redisKeyCount, redisPresent, selectLinkDatabase, type SideItem,
} from './sides.js';

/** Keys per side up to which the live check compares everything (26,000 memories at scale 1 are well within). */
export const FULL_LIMIT = 200_000;
/** Keys drawn from each side beyond it. */
export const SAMPLE_SIZE = 2_000;
/** Time a link's full comparison may take before it gives way to the sample (the probe's limit is 10 s for all links). */
export const FULL_BUDGET_MS = 4_000;

/** The full comparison ran out of its time budget. */
class OverBudget extends Error {}

export interface LiveOptions {
  now?: Date;
  fullLimit?: number;
  sampleSize?: number;
  /** Time budget of a link's full comparison (default FULL_BUDGET_MS). */
  budgetMs?: number;
  /** Only these links (by name). */
  links?: string[];
}

interface Connections {
  pg: pg.Client | Error | null;
  chroma: ChromaRest | Error | null;
  redis: RespConnection | Error | null;
  redisDb: number;
}

async function open(desired: Desired, links: readonly LinkDeclaration[]): Promise<Connections> {
  const wants = (store: string) => links.some((l) => l.side.store === store);
  const attempt = async <T>(run: () => Promise<T>): Promise<T | Error> => run().catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  const [pgClient, redis] = await Promise.all([
    desired.services.postgres?.url ? attempt(() => connectPostgres(desired.services.postgres!.url, { applicationName: 'jarvis-db consistency', connectTimeoutMs: 5000 })) : Promise.resolve(null),
    wants('redis') && desired.services.redis?.url ? attempt(() => openRedisProbe(desired.services.redis!.url, { connectTimeoutMs: 5000, name: 'jarvis-db-consistency' })) : Promise.resolve(null),
  ]);
  const chroma = wants('chroma') && desired.services.chroma?.url ? new ChromaRest(desired.services.chroma) : null;
  return { pg: pgClient, chroma, redis, redisDb: desired.services.redis?.url ? parseRedisUrl(desired.services.redis.url).db : 0 };
}

function close(c: Connections): void {
  if (c.pg && !(c.pg instanceof Error)) void c.pg.end().catch(() => undefined);
  if (c.chroma && !(c.chroma instanceof Error)) c.chroma.close();
  if (c.redis && !(c.redis instanceof Error)) c.redis.close();
}

function failure(link: LinkDeclaration, problem: string, kind: LinkFailure['kind']): LinkFailure {
  return { link: link.name, source: sourceOf(link), other: link.side.store, problem, kind };
}

/** Compares every configured link (or the named ones). Never throws for one link's sake. */
export async function checkLinksLive(desired: Desired, options: LiveOptions = {}): Promise<LinkOutcome[]> {
  const links = (desired.links ?? []).filter((l) => !options.links || options.links.includes(l.name));
  if (!links.length) return [];
  const conns = await open(desired, links);
  try {
    const out: LinkOutcome[] = [];
    for (const link of links) out.push(await checkOne(link, conns, options));
    return out;
  } finally {
    close(conns);
  }
}

function unreachable(link: LinkDeclaration, service: string, c: Error | null): LinkFailure {
  return failure(link, c ? `${service} cannot be reached: ${messageOf(c)}` : `services.${service} is not configured`, 'failed');
}

async function checkOne(link: LinkDeclaration, conns: Connections, options: LiveOptions): Promise<LinkOutcome> {
  if (!conns.pg || conns.pg instanceof Error) return unreachable(link, 'postgres', conns.pg);
  const other = link.side.store;
  const side = other === 'chroma' ? conns.chroma : conns.redis;
  if (!side || side instanceof Error) return unreachable(link, other, side);
  try {
    return await compareLive(link, conns.pg, side, conns.redisDb, options);
  } catch (e) {
    const config = e instanceof JarvisError && e.code === 'CONFIG_INVALID';
    const message = other === 'chroma' && !config ? describeChromaFailure(e) : messageOf(e);
    return failure(link, message, config ? 'broken' : 'failed');
  }
}

/** The other side's operations, whichever store it is. */
interface Side {
  total(): Promise<number>;
  all(onItem: (item: SideItem) => void): Promise<void>;
  sample(total: number, size: number): Promise<SideItem[]>;
  present(keys: readonly string[]): Promise<Set<string>>;
}

async function sideOf(link: LinkDeclaration, conn: ChromaRest | RespConnection, redisDb: number): Promise<Side> {
  if (link.side.store === 'chroma') {
    const rest = conn as ChromaRest;
    const field = link.side.metadata;
    const c = await linkCollection(rest, link);
    return {
      total: () => chromaCount(rest, c),
      all: (onItem) => chromaItems(rest, c, field, onItem),
      sample: (total, size) => chromaSample(rest, c, field, total, size),
      present: (keys) => chromaPresent(rest, c, field, keys),
    };
  }
  const redis = conn as RespConnection;
  await selectLinkDatabase(redis, link, redisDb);
  return {
    total: () => redisKeyCount(redis),
    all: (onItem) => redisItems(redis, link, onItem),
    sample: async (_total, size) => {
      const items: SideItem[] = [];
      await redisItems(redis, link, (i) => items.push(i), size);
      return items;
    },
    present: (keys) => redisPresent(redis, link, keys),
  };
}

async function compareLive(link: LinkDeclaration, client: pg.Client, conn: ChromaRest | RespConnection, redisDb: number, options: LiveOptions): Promise<LinkReport> {
  const atMs = (options.now ?? new Date()).getTime();
  const table = await linkTable(client, link);
  const side = await sideOf(link, conn, redisDb);
  const [rowsTotal, sideTotal] = [await countRows(client, table), await side.total()];
  const limit = options.fullLimit ?? FULL_LIMIT;
  const base = { link: link.name, source: sourceOf(link), other: link.side.store };
  let why = `more than ${limit.toLocaleString('en-US')} keys on a side`;
  if (rowsTotal <= limit && sideTotal <= limit) {
    const budget = options.budgetMs ?? FULL_BUDGET_MS;
    const deadline = performance.now() + budget;
    const inTime = () => { if (performance.now() > deadline) throw new OverBudget(); };
    const matcher = new KeyMatcher();
    try {
      await side.all((item) => {
        inTime();
        if ('key' in item) matcher.sideKey(item.key);
        else matcher.sideWithoutKey(item.unkeyed);
      });
      await streamRows(client, table, atMs, (rows) => {
        inTime();
        for (const [key, expected] of rows) if (key !== null) matcher.row(key, expected);
      });
      const { expected, ...r } = matcher.finish();
      return { ...base, mode: 'all', ...r, note: describeCompared('all', r.rows, r.records, link.side.store, undefined, expected) };
    } catch (e) {
      if (!(e instanceof OverBudget)) throw e;
      why = `every key could not be read within ${budget / 1000} s`;
    }
  }
  const size = options.sampleSize ?? SAMPLE_SIZE;
  const rows = await sampleRows(client, table, rowsTotal, size, atMs);
  const missing = sampleOrphans(rows, await side.present(rows.map((r) => r.key)));
  const items = await side.sample(sideTotal, size);
  const keyed = items.flatMap((i) => ('key' in i ? [i.key] : []));
  const found = await presentRows(client, table, keyed);
  const orphans: Orphans = sampleOrphans(keyed.map((key) => ({ key, expected: true })), found);
  const unkeyed = items.flatMap((i) => ('unkeyed' in i ? [i.unkeyed] : []));
  orphans.count += unkeyed.length;
  orphans.examples = [...unkeyed, ...orphans.examples].slice(0, 5);
  return {
    ...base, mode: 'sample', rows: rows.length, records: items.length, missing, orphans,
    note: `${describeCompared('sample', rows.length, items.length, link.side.store, { rows: rowsTotal, records: sideTotal })} (${why})`,
  };
}
