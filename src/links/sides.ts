/**
 * The other side of a link on the live services: a Chroma collection's records by the
 * metadata field naming their row, or the Redis keys of a pattern. Each reads everything (in
 * pages, only the field or the key names), draws a sample, or looks up given row keys.
 */
import type { LinkDeclaration } from '../config/types.js';
import { JarvisError } from '../errors.js';
import type { ChromaRest } from '../services/chroma.js';
import { countRecords, findCollection, readPages, type RemoteCollection } from '../services/chroma-collections.js';
import { JsonNumber, parseRecordPage } from '../services/chroma-wire.js';
import type { RespConnection } from '../services/redis-resp.js';
import { CommandBuffer, RespError, type Reply } from '../services/redis-resp-codec.js';
import { keyOfMetadataValue, keyOfRedisKey, patternParts, scanGlob } from './compare.js';
import { linkConfigError } from './rows.js';

type ChromaSide = Extract<LinkDeclaration['side'], { store: 'chroma' }>;
type RedisSide = Extract<LinkDeclaration['side'], { store: 'redis' }>;

/** Records per page when only metadata is read (no embeddings: small pages of JSON). */
const PAGE = 5000;

/** One record's key, or (no such field) the record id to show as an orphan. */
export type SideItem = { key: string } | { unkeyed: string };

// ------------------------------------------------------------------ Chroma

export async function linkCollection(rest: ChromaRest, link: LinkDeclaration): Promise<RemoteCollection> {
  const side = link.side as ChromaSide;
  const c = await findCollection(rest, side.collection);
  if (!c) throw linkConfigError(link, 'chroma.collection', `collection ${side.collection} does not exist in Chroma (${rest.tenant}/${rest.database})`);
  return c;
}

export function chromaCount(rest: ChromaRest, c: RemoteCollection): Promise<number> {
  return countRecords(rest, c.id);
}

function itemOf(id: string, metadata: Record<string, unknown> | null, field: string): SideItem {
  const key = keyOfMetadataValue(metadata?.[field]);
  return key === null ? { unkeyed: `record ${id} (no ${field})` } : { key };
}

/** Every record's key, page by page. */
export async function chromaItems(rest: ChromaRest, c: RemoteCollection, field: string, onItem: (item: SideItem) => void): Promise<void> {
  for await (const page of readPages(rest, c.id, PAGE, ['metadatas'])) {
    page.ids.forEach((id, i) => onItem(itemOf(id, page.metadatas?.[i] ?? null, field)));
  }
}

/** About `size` records from a few pages at random offsets. */
export async function chromaSample(rest: ChromaRest, c: RemoteCollection, field: string, total: number, size: number): Promise<SideItem[]> {
  const pages = 10;
  const per = Math.max(1, Math.ceil(size / pages));
  const out: SideItem[] = [];
  const offsets = new Set<number>();
  for (let i = 0; i < pages && offsets.size * per < total; i++) offsets.add(Math.floor(Math.random() * Math.max(1, total - per)));
  for (const offset of offsets) {
    const body = await rest.call('POST', `${rest.collectionsPath}/${c.id}/get`, JSON.stringify({ limit: per, offset, include: ['metadatas'] }));
    const page = parseRecordPage(body);
    page.ids.forEach((id, i) => out.push(itemOf(id, page.metadatas?.[i] ?? null, field)));
  }
  return out;
}

/**
 * Which of `keys` some record names. The `$in` list is of the field's type as the collection
 * stores it: ints when a record's value is an int, strings otherwise.
 */
export async function chromaPresent(rest: ChromaRest, c: RemoteCollection, field: string, keys: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  if (!keys.length) return found;
  const probe = parseRecordPage(await rest.call('POST', `${rest.collectionsPath}/${c.id}/get`, JSON.stringify({ limit: 1, include: ['metadatas'] })));
  const sample = probe.metadatas?.[0]?.[field];
  const asInt = sample instanceof JsonNumber && !sample.isFloat;
  const values = keys.filter((k) => !asInt || /^-?\d+$/.test(k)).map((k) => (asInt ? k : JSON.stringify(k)));
  for (let i = 0; i < values.length; i += 500) {
    const where = `{${JSON.stringify(field)}:{"$in":[${values.slice(i, i + 500).join(',')}]}}`;
    const page = parseRecordPage(await rest.call('POST', `${rest.collectionsPath}/${c.id}/get`, `{"where":${where},"include":["metadatas"]}`));
    page.ids.forEach((id, j) => {
      const item = itemOf(id, page.metadatas?.[j] ?? null, field);
      if ('key' in item) found.add(item.key);
    });
  }
  return found;
}

// ------------------------------------------------------------------ Redis

function bulkText(r: Reply): string {
  return Buffer.isBuffer(r) ? r.toString('utf8') : String(r);
}

/** Selects the link's database (its own, else the URL's `urlDb`) on the connection. */
export async function selectLinkDatabase(conn: RespConnection, link: LinkDeclaration, urlDb: number): Promise<void> {
  const db = (link.side as RedisSide).database ?? urlDb;
  await conn.must(`SELECT ${db}`, 'SELECT', db);
}

export async function redisKeyCount(conn: RespConnection): Promise<number> {
  return Number(await conn.must('DBSIZE', 'DBSIZE'));
}

/** SCAN MATCH the pattern's glob; `limit` stops after about that many keys (a sample). */
export async function redisItems(conn: RespConnection, link: LinkDeclaration, onItem: (item: SideItem) => void, limit = Infinity): Promise<void> {
  const parts = patternParts((link.side as RedisSide).pattern);
  const glob = scanGlob(parts);
  let cursor = '0';
  let seen = 0;
  do {
    const reply = await conn.must('SCAN', 'SCAN', cursor, 'MATCH', glob, 'COUNT', 1000);
    if (!Array.isArray(reply) || reply.length !== 2 || !Array.isArray(reply[1])) throw new JarvisError('SERVICE_ERROR', 'Redis answered SCAN with something other than [cursor, keys]');
    cursor = bulkText(reply[0]!);
    for (const k of reply[1]) {
      const key = keyOfRedisKey(bulkText(k), parts);
      if (key !== null) {
        onItem({ key });
        seen++;
      }
    }
  } while (cursor !== '0' && seen < limit);
}

/** Which of `keys` have their Redis key (EXISTS, pipelined). */
export async function redisPresent(conn: RespConnection, link: LinkDeclaration, keys: readonly string[]): Promise<Set<string>> {
  const { pattern } = link.side as RedisSide;
  const found = new Set<string>();
  for (let i = 0; i < keys.length; i += 1000) {
    const slice = keys.slice(i, i + 1000);
    const commands = new CommandBuffer();
    for (const k of slice) commands.add('EXISTS', pattern.replace('{key}', () => k));
    const replies = await conn.send(commands);
    replies.forEach((r, j) => {
      if (r instanceof RespError) throw new JarvisError('SERVICE_ERROR', `Redis refused EXISTS: ${r.message}`);
      if (Number(r) > 0) found.add(slice[j]!);
    });
  }
  return found;
}
