/**
 * The seed's other two stores, filled from the seeded PostgreSQL rows so that the three describe
 * one JARVIS (the links `memory-vectors` and `user-sessions` of jarvis-db.yaml hold):
 * - Chroma: a collection `memories` with one record per `memory` row (id = the row's id as
 *   text, its embedding, metadata `memory_id` and `user_id`, the content as document when small);
 * - Redis: `session:<sessions.id>` (value: the user id) for the sessions still live, and
 *   `cache:<key>` (value: the cached JSON) for the cache entries not yet expired, each with the
 *   TTL left until its `expires_at`.
 *
 * Streamed in batches by key (keyset pages), so memory stays flat at any scale. Embeddings go
 * from PostgreSQL's text form into the add request as they are (`[x,…]` is JSON already; a
 * real[]'s `{x,…}` needs only its braces changed): 10 million floats at scale 1 are never parsed.
 */
import type pg from 'pg';
import type { Desired } from '../config/types.js';
import type { Progress } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { ChromaRest } from '../services/chroma.js';
import { countRecords, findCollection } from '../services/chroma-collections.js';
import { connectPostgres } from '../services/postgres.js';
import { openRedisProbe, type RespConnection } from '../services/redis-resp.js';
import { CommandBuffer, RespError } from '../services/redis-resp-codec.js';
import { redactUrl } from '../services/redact.js';

export const SEED_COLLECTION = 'memories';
/** Documents longer than this are left out of the records (the row keeps the content). */
export const MAX_DOCUMENT_CHARS = 2000;
const CHROMA_BATCH = 1000;
const REDIS_BATCH = 2000;

export type StoreSeed =
  | { store: 'chroma'; collection: string; records: number; ms: number }
  | { store: 'redis'; sessions: number; cacheEntries: number; ms: number }
  | { store: 'chroma' | 'redis'; skipped: string };

/** What to do for a store not configured: the line `init --seed` prints. */
function skipped(store: 'chroma' | 'redis'): StoreSeed {
  return { store, skipped: `services.${store} is not configured` };
}

/**
 * Refuses before anything is written when the Chroma collection already holds records (the
 * seed fills empty stores, as it does for PostgreSQL). Redis keys are overwritten by SET, so
 * a Redis with keys is no reason to stop.
 */
export async function checkStoresReady(desired: Desired): Promise<void> {
  const service = desired.services.chroma;
  if (!service?.url) return;
  const rest = new ChromaRest(service);
  try {
    const existing = await findCollection(rest, SEED_COLLECTION);
    if (existing && (await countRecords(rest, existing.id)) > 0) {
      throw new JarvisError('USAGE', `cannot seed: the Chroma collection ${SEED_COLLECTION} at ${redactUrl(service.url)} already has records; --seed fills empty stores`,
        { hint: `delete the collection ${SEED_COLLECTION} or seed another Chroma database` });
    }
  } finally {
    rest.close();
  }
}

/** Chroma then Redis (each skipped, and said so, when not configured). */
export async function seedStores(desired: Desired, postgresUrl: string, options: { progress?: Progress; now?: Date } = {}): Promise<StoreSeed[]> {
  const client = await connectPostgres(postgresUrl, { applicationName: 'jarvis-db seed' });
  try {
    const out: StoreSeed[] = [];
    out.push(desired.services.chroma?.url ? await seedChroma(client, desired, options.progress) : skipped('chroma'));
    out.push(desired.services.redis?.url ? await seedRedis(client, desired.services.redis.url, options.now ?? new Date(), options.progress) : skipped('redis'));
    return out;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** `{0.1,0.2}` (real[]) or `[0.1,0.2]` (vector) as a JSON array. */
export function embeddingJson(text: string): string {
  if (text.startsWith('{') && text.endsWith('}')) return `[${text.slice(1, -1)}]`;
  if (text.startsWith('[') && text.endsWith(']')) return text;
  throw new JarvisError('SERVICE_ERROR', `a memory embedding is neither real[] nor vector text: ${text.slice(0, 40)}`);
}

interface MemoryRow { id: string; user_id: string; content: string | null; embedding: string | null }

/** The add request for a page of memory rows (rows without an embedding have no record). Pure. */
export function memoryAddBody(rows: readonly MemoryRow[]): { body: string; records: number } | null {
  const kept = rows.filter((r) => r.embedding !== null);
  if (!kept.length) return null;
  const ids = kept.map((r) => JSON.stringify(r.id)).join(',');
  const embeddings = kept.map((r) => embeddingJson(r.embedding!)).join(',');
  // The ids are bigints: as JSON integers, written from their text (exact beyond 2^53).
  const metadatas = kept.map((r) => `{"memory_id":${BigInt(r.id)},"user_id":${BigInt(r.user_id)}}`).join(',');
  const documents = kept.map((r) => (r.content !== null && r.content.length <= MAX_DOCUMENT_CHARS ? JSON.stringify(r.content) : 'null')).join(',');
  return { body: `{"ids":[${ids}],"embeddings":[${embeddings}],"metadatas":[${metadatas}],"documents":[${documents}]}`, records: kept.length };
}

async function seedChroma(client: pg.Client, desired: Desired, progress?: Progress): Promise<StoreSeed> {
  const started = Date.now();
  const rest = new ChromaRest(desired.services.chroma!);
  try {
    const created = JSON.parse((await rest.call('POST', rest.collectionsPath, JSON.stringify({ name: SEED_COLLECTION, get_or_create: true, metadata: { source: 'jarvis-db seed' } }))).toString('utf8')) as { id: string };
    const { rows: [total] } = await client.query<{ n: string }>('SELECT count(*) AS n FROM memory');
    const addPath = `${rest.collectionsPath}/${created.id}/add`;
    let after = '0';
    let records = 0;
    // (ORDER BY names the column: the alias id is its text, which sorts otherwise.) One page read while the previous one is being added: PostgreSQL and Chroma work at once.
    let pending: Promise<unknown> = Promise.resolve();
    for (;;) {
      const { rows } = await client.query<MemoryRow>(
        'SELECT id::text AS id, user_id::text AS user_id, content, embedding::text AS embedding FROM memory m WHERE m.id > $1 ORDER BY m.id LIMIT $2', [after, CHROMA_BATCH]);
      if (!rows.length) break;
      after = rows[rows.length - 1]!.id;
      const add = memoryAddBody(rows);
      await pending;
      if (add) {
        pending = rest.call('POST', addPath, add.body);
        records += add.records;
      }
      progress?.note(`chroma ${SEED_COLLECTION}: ${records} records`);
      progress?.update(records, Number(total!.n));
    }
    await pending;
    return { store: 'chroma', collection: SEED_COLLECTION, records, ms: Date.now() - started };
  } catch (e) {
    throw new JarvisError('SERVICE_ERROR', `seeding the Chroma collection ${SEED_COLLECTION} failed: ${messageOf(e)}`, { cause: e });
  } finally {
    rest.close();
  }
}

/** A page of SET commands: `SET key value PX ttl`, the TTL left until `expires_ms` (none when null). Pure. */
export function setCommands(rows: readonly { key: string; value: string; expires_ms: string | null }[], nowMs: number): CommandBuffer {
  const commands = new CommandBuffer(64 * 1024);
  for (const r of rows) {
    if (r.expires_ms === null) commands.add('SET', r.key, r.value);
    else {
      const ttl = Math.floor(Number(r.expires_ms) - nowMs);
      if (ttl > 0) commands.add('SET', r.key, r.value, 'PX', ttl);
    }
  }
  return commands;
}

async function seedRedis(client: pg.Client, url: string, now: Date, progress?: Progress): Promise<StoreSeed> {
  const started = Date.now();
  const conn = await openRedisProbe(url, { name: 'jarvis-db-seed' });
  try {
    // Live as of the real clock: Redis expires keys on it, whatever clock the rows were made around.
    const nowMs = Math.max(Date.now(), now.getTime());
    const sessions = await pagedSets(conn, client, nowMs,
      `SELECT id::text AS page_key, 'session:' || id::text AS key, user_id::text AS value, (extract(epoch FROM expires_at) * 1000)::bigint::text AS expires_ms
         FROM sessions WHERE expires_at > to_timestamp($1::float8 / 1000) AND sessions.id > $2::uuid ORDER BY sessions.id LIMIT $3`, '00000000-0000-0000-0000-000000000000', (n) => progress?.note(`redis: ${n} sessions`));
    const cacheEntries = await pagedSets(conn, client, nowMs,
      `SELECT key AS page_key, 'cache:' || key AS key, value::text AS value, (extract(epoch FROM expires_at) * 1000)::bigint::text AS expires_ms
         FROM cache_entries WHERE (expires_at IS NULL OR expires_at > to_timestamp($1::float8 / 1000)) AND cache_entries.key > $2 ORDER BY cache_entries.key LIMIT $3`, '', (n) => progress?.note(`redis: ${n} cache entries`));
    return { store: 'redis', sessions, cacheEntries, ms: Date.now() - started };
  } catch (e) {
    throw new JarvisError('SERVICE_ERROR', `seeding Redis at ${redactUrl(url)} failed: ${messageOf(e)}`, { cause: e });
  } finally {
    conn.close();
  }
}

/** Keyset pages of ($1 = now ms, $2 = after, $3 = limit) into pipelined SETs; the keys written. */
async function pagedSets(conn: RespConnection, client: pg.Client, nowMs: number, sql: string, first: string, note: (n: number) => void): Promise<number> {
  let after = first;
  let written = 0;
  for (;;) {
    const { rows } = await client.query<{ page_key: string; key: string; value: string; expires_ms: string | null }>(sql, [nowMs, after, REDIS_BATCH]);
    if (!rows.length) return written;
    after = rows[rows.length - 1]!.page_key;
    const commands = setCommands(rows, nowMs);
    const replies = await conn.send(commands);
    const refused = replies.find((r) => r instanceof RespError);
    if (refused) throw refused as RespError;
    written += commands.count;
    note(written);
  }
}
