/**
 * The JARVIS dataset generator: realistic users, sessions, conversations with their messages
 * over two years, memories with 384-dimension embeddings, metrics and their hourly roll-ups,
 * and cache entries. It is the data of `init --seed` and of every benchmark.
 *
 * Everything is generated server-side (INSERT … SELECT generate_series), one table per task,
 * tasks run on two connections in parallel as their foreign keys allow. Each table loads in one
 * transaction that drops its secondary indexes, inserts, and builds them again (much faster
 * than maintaining them row by row): a failure or a kill leaves each table either empty with
 * its indexes or complete. Deterministic for a given scale and `now` (each table has its own setseed). Scale 1 ≈ 700 MB
 * of pg_database_size.
 */
import type pg from 'pg';
import type { Progress } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { plural } from '../render/format.js';
import { connectPostgres, sqlState } from '../services/postgres.js';

export interface SeedOptions {
  /** 1 ≈ 700 MB; 0.01 for tests. */
  scale: number;
  /** The clock the data is generated around (default: now). */
  now?: Date;
  /** Parallel connections (default 2). */
  connections?: number;
  progress?: Progress;
}

export interface SeedCounts {
  users: number;
  sessions: number;
  conversations: number;
  messages: number;
  memory: number;
  metrics: number;
  metricsHourly: number;
  cacheEntries: number;
}

export interface SeedResult {
  scale: number;
  counts: SeedCounts;
  databaseBytes: number;
  ms: number;
  /** Wall time per phase: load (all tables, in parallel), analyze. */
  phases: Record<string, number>;
  /** Milliseconds each table took to load (insert and index build, one transaction). */
  tables: Record<string, number>;
  /** `skipped` when the connections could run as replicas (superuser): see skipForeignKeyChecks. */
  foreignKeyChecks: 'on' | 'skipped';
}

export const SEEDED_TABLES = ['users', 'sessions', 'conversations', 'messages', 'memory', 'metrics', 'metrics_hourly', 'cache_entries'] as const;

/** Row counts at a scale; conversations carry 1 to 11 messages (6 on average). Pure. */
export function seedCounts(scale: number): SeedCounts {
  const n = (base: number) => Math.max(1, Math.round(base * scale));
  const conversations = n(137_000);
  return {
    users: n(35_000),
    sessions: n(65_000),
    conversations,
    /** About: 1 to 11 per conversation. */
    messages: conversations * 6,
    memory: n(26_000),
    metrics: n(650_000),
    metricsHourly: n(43_000),
    cacheEntries: n(43_000),
  };
}

/** Words the text is cut from. */
const WORDS = ['the', 'assistant', 'user', 'asked', 'about', 'weather', 'schedule', 'meeting', 'reminder', 'email', 'project',
  'deadline', 'summary', 'please', 'thanks', 'could', 'you', 'help', 'with', 'this', 'that', 'code', 'review', 'function', 'error',
  'database', 'backup', 'restore', 'memory', 'context', 'jarvis', 'today', 'tomorrow', 'call', 'notes', 'list', 'open', 'close',
  'update', 'plan', 'flight', 'hotel', 'invoice', 'draft', 'translate', 'explain', 'recipe', 'music', 'lights', 'kitchen'];

const FIRST_NAMES = ['Ada', 'Alan', 'Grace', 'Linus', 'Margaret', 'Dennis', 'Barbara', 'Ken', 'Radia', 'Tim', 'Frances', 'Edsger',
  'Hedy', 'John', 'Katherine', 'Donald', 'Sophie', 'Yuki', 'Amara', 'Mateo', 'Priya', 'Lars', 'Fatima', 'Chen', 'Olga', 'Kwame'];

function sqlArray(words: readonly string[]): string {
  return `ARRAY[${words.map((w) => `'${w}'`).join(',')}]`;
}
const sqlWords = () => sqlArray(WORDS);

/**
 * One long line of random words (computed once per statement) that every text column cuts
 * from. It is bytea: substring of bytea is a direct offset, substr of UTF-8 text scans from the
 * start (that alone made the load four times slower).
 */
const TEXT = `(SELECT convert_to(string_agg((${sqlWords()})[1 + floor(random() * ${WORDS.length})::int], ' '), 'UTF8') AS line FROM generate_series(1, 4000) i) t`;
/** `length` characters of the line from `offset` (1-based), as text. */
const cut = (offset: string, length: string) => `convert_from(substring(t.line from (${offset})::int for (${length})::int), 'UTF8')`;

interface Task {
  /** The table it fills. */
  name: (typeof SEEDED_TABLES)[number];
  after: string[];
  /** SQL with $1 = now, $2 = the count for this task, $3.. task specific. */
  sql: string;
  params: unknown[];
}

/**
 * The generation tasks. Ids are explicit (1..N) so that references can be drawn without
 * reading back; the identity sequences are moved past them afterwards.
 */
function tasks(counts: SeedCounts, embeddingCast: string): Task[] {
  const c = counts;
  const list: Task[] = [
    {
      name: 'users', after: [], params: [c.users],
      // Created over three years; last active somewhere between then and now, so about a
      // twentieth have been inactive for more than two years (the anonymize policy's candidates).
      sql: `INSERT INTO users (id, email, display_name, created_at, updated_at, last_active_at)
        SELECT i, 'user' || i || '@example.com',
               (${sqlArray(FIRST_NAMES)})[1 + (i * 7) % ${FIRST_NAMES.length}] || ' ' || chr(65 + (i * 13) % 26) || '.', created,
               created + (active - created) * random(), active
        FROM (SELECT i, $1::timestamptz - random() * interval '1095 days' AS created FROM generate_series(1, $2::int) i) u,
        LATERAL (SELECT created + ($1::timestamptz - created) * random() AS active) a`,
    },
    {
      name: 'conversations', after: ['users'], params: [c.conversations, c.users],
      // Two years of conversations, in time order; each lasts up to two weeks.
      sql: `INSERT INTO conversations (id, user_id, title, created_at, updated_at)
        SELECT i, 1 + floor(random() * $3::int)::bigint, initcap(${cut('1 + (i * 31) % 4000', '20 + i % 40')}), created,
               least($1::timestamptz, created + random() * random() * interval '14 days')
        FROM (SELECT i, $1::timestamptz - interval '730 days' * (1 - i::float8 / $2::int) AS created FROM generate_series(1, $2::int) i) s,
             ${TEXT}`,
    },
  ];
  list.push({
    name: 'messages', after: ['conversations'], params: [],
    // 1 to 11 messages per conversation (6 on average), alternating user and assistant,
    // with a system prompt and tool calls now and then, spread over the conversation's life.
    sql: `INSERT INTO messages (id, conversation_id, role, content, tokens, metadata, created_at)
      SELECT (cv.id - 1) * 11 + k, cv.id,
             CASE WHEN k = 1 AND cv.id % 10 = 0 THEN 'system' WHEN k % 2 = 1 THEN 'user' WHEN (cv.id + k) % 9 = 0 THEN 'tool' ELSE 'assistant' END,
             ${cut('1 + (cv.id * 7919 + k * 104729) % 15000', 'len')}, len / 4,
             CASE WHEN k % 2 = 0 THEN jsonb_build_object('model', (ARRAY['jarvis-large', 'jarvis-small', 'jarvis-code'])[1 + (cv.id + k) % 3],
                                                       'latency_ms', 200 + (cv.id * k) % 3000, 'finish_reason', 'stop')
                  ELSE '{}'::jsonb END,
             cv.created_at + (cv.updated_at - cv.created_at) * (k - 1) / n
      FROM conversations cv
      CROSS JOIN LATERAL (SELECT 1 + (cv.id * 7919) % 11 AS n) m
      CROSS JOIN LATERAL generate_series(1, m.n) k
      CROSS JOIN LATERAL (SELECT CASE WHEN k % 2 = 1 THEN 30 + (cv.id * k) % 220 ELSE 120 + (cv.id * k * 31) % 700 END::int AS len) l,
      ${TEXT}
      WHERE $1::timestamptz IS NOT NULL
      ORDER BY cv.id, k`,
  });
  list.push(
    {
      name: 'memory', after: ['conversations'], params: [c.memory, c.users, c.conversations],
      // A memory belongs to a user, usually comes from one of its conversations, and carries a
      // 384-dimension embedding in a random direction, of about unit length (uniform components
      // in ±0.0884: norm √(384/3)·0.0884 ≈ 1; an exact normalisation costs ten times more).
      // `WHERE i > 0` ties the array to its row, so it is drawn per row rather than once.
      sql: `INSERT INTO memory (id, user_id, conversation_id, content, embedding, importance, metadata, created_at, last_accessed_at)
        SELECT i, 1 + floor(random() * $3::int)::bigint, CASE WHEN i % 10 < 7 THEN 1 + floor(random() * $4::int)::bigint END,
               ${cut('1 + (i * 17) % 15000', '60 + i % 180')},
               ARRAY(SELECT ((random() * 2 - 1) * 0.0884)::real FROM generate_series(1, 384) WHERE i > 0)${embeddingCast},
               round(random()::numeric, 2)::real,
               jsonb_build_object('source', (ARRAY['conversation', 'explicit', 'inferred'])[1 + i % 3], 'version', 1),
               created, created + ($1::timestamptz - created) * random()
        FROM (SELECT i, $1::timestamptz - random() * interval '700 days' AS created FROM generate_series(1, $2::int) i) s, ${TEXT}`,
    },
    {
      name: 'sessions', after: ['users'], params: [c.sessions, c.users],
      // Logins over the last four months; 30-day sessions, a third of them 7-day ones.
      sql: `INSERT INTO sessions (id, user_id, token_hash, user_agent, created_at, expires_at)
        SELECT md5('seed-session-' || i)::uuid, 1 + floor(random() * $3::int)::bigint, encode(sha256(('seed-session-' || i)::bytea), 'hex'),
               (ARRAY['Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0', 'Mozilla/5.0 (Macintosh) Safari/605.1', 'JARVIS-iOS/4.2', 'JARVIS-Android/4.1', 'jarvis-cli/1.0'])[1 + i % 5],
               created, created + CASE WHEN i % 3 = 0 THEN interval '7 days' ELSE interval '30 days' END
        FROM (SELECT i, $1::timestamptz - random() * interval '120 days' AS created FROM generate_series(1, $2::int) i) s`,
    },
    {
      name: 'metrics', after: [], params: [c.metrics],
      // METRICS_DAYS (45) days of samples in time order, eight series with values in their own ranges.
      sql: `INSERT INTO metrics (id, name, value, labels, recorded_at)
        SELECT i, (ARRAY['latency_ms', 'tokens_in', 'tokens_out', 'requests', 'errors', 'queue_depth', 'cache_hit_ratio', 'memory_recall_ms'])[1 + i % 8],
               CASE i % 8 WHEN 0 THEN 80 + random() * 2000 WHEN 1 THEN floor(random() * 4000) WHEN 2 THEN floor(random() * 1500)
                          WHEN 3 THEN floor(random() * 50) WHEN 4 THEN floor(random() * random() * 3) WHEN 5 THEN floor(random() * 20)
                          WHEN 6 THEN 0.6 + random() * 0.4 ELSE 5 + random() * 120 END,
               jsonb_build_object('host', 'jarvis-' || (i % 6), 'model', (ARRAY['jarvis-large', 'jarvis-small', 'jarvis-code'])[1 + i % 3], 'region', (ARRAY['eu-west', 'us-east'])[1 + i % 2]),
               $1::timestamptz - interval '45 days' * (1 - i::float8 / $2::int)
        FROM generate_series(1, $2::int) i`,
    },
    {
      name: 'metrics_hourly', after: [], params: [c.metricsHourly],
      // Roll-ups of older samples, hour by hour back from 45 days ago.
      sql: `INSERT INTO metrics_hourly (name, bucket_start, count, sum, min, max)
        SELECT name, date_trunc('hour', $1::timestamptz - interval '45 days') - interval '1 hour' * (i / 8), cnt, cnt * mean, mean * 0.2, mean * 3
        FROM (SELECT i, (ARRAY['latency_ms', 'tokens_in', 'tokens_out', 'requests', 'errors', 'queue_depth', 'cache_hit_ratio', 'memory_recall_ms'])[1 + i % 8] AS name,
                     60 + (i * 37) % 600 AS cnt, 1 + random() * 500 AS mean FROM generate_series(0, $2::int - 1) i) s`,
    },
    {
      name: 'cache_entries', after: [], params: [c.cacheEntries],
      // Two weeks of cached tool results and answers; half of them past the 7-day policy.
      sql: `INSERT INTO cache_entries (key, value, created_at, expires_at)
        SELECT (ARRAY['tool:weather:', 'tool:search:', 'answer:', 'embedding:', 'calendar:'])[1 + i % 5] || md5(i::text), 
               jsonb_build_object('status', 200, 'hits', i % 17, 'body', ${cut('1 + (i * 53) % 15000', '100 + i % 400')}),
               created, created + interval '1 hour' * (1 + i % 48)
        FROM (SELECT i, $1::timestamptz - random() * interval '14 days' AS created FROM generate_series(1, $2::int) i) s, ${TEXT}`,
    },
  );
  return list;
}


interface SecondaryIndex { name: string; table: string; definition: string }

/** The indexes of a table that no constraint owns (those can be dropped and rebuilt). */
async function secondaryIndexes(client: pg.ClientBase, table: string): Promise<SecondaryIndex[]> {
  const { rows } = await client.query<SecondaryIndex>(
    `SELECT i.indexrelid::regclass::text AS name, $1::text AS table, pg_get_indexdef(i.indexrelid) AS definition
       FROM pg_index i
      WHERE i.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
      ORDER BY 1`,
    [table],
  );
  return rows;
}

async function checkReady(client: pg.ClientBase): Promise<{ embeddingCast: string }> {
  const { rows } = await client.query<{ table: string; present: boolean }>(
    `SELECT t AS table, to_regclass(t) IS NOT NULL AS present FROM unnest($1::text[]) t`, [SEEDED_TABLES]);
  const missing = rows.filter((r) => !r.present).map((r) => r.table);
  if (missing.length) {
    throw new JarvisError('USAGE', `cannot seed: the schema lacks ${missing.join(', ')}`, { hint: 'migrate to the latest version first (jarvis-db init does)' });
  }
  for (const table of SEEDED_TABLES) {
    const { rows: [r] } = await client.query<{ filled: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${table}) AS filled`);
    if (r?.filled) throw new JarvisError('USAGE', `cannot seed: table ${table} already has rows; --seed fills an empty database`, { hint: 'seed a new database, or roll back to 0 and migrate again' });
  }
  const { rows: [type] } = await client.query<{ type: string }>(`SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'memory'::regclass AND attname = 'embedding'`);
  return { embeddingCast: type?.type.startsWith('vector') ? '::vector' : '' };
}

/** One table in one transaction: drop its secondary indexes, insert, build them again, commit. */
async function loadTable(client: pg.Client, task: Task, now: Date): Promise<number> {
  await client.query('BEGIN');
  try {
    // Each table its own random stream: the data does not depend on which connection loads it.
    await client.query('SELECT setseed($1)', [(SEEDED_TABLES.indexOf(task.name) + 1) / 100]);
    const indexes = await secondaryIndexes(client, task.name);
    for (const ix of indexes) await client.query(`DROP INDEX ${ix.name}`);
    const inserted = await client.query(task.sql, [now.toISOString(), ...task.params]);
    // A partitioned table's index reads `ON ONLY`, which would build it on the parent alone (invalid, no partition indexed).
    for (const ix of indexes) await client.query(ix.definition.replace(/ ON ONLY /, ' ON '));
    if (['users', 'conversations', 'messages', 'memory', 'metrics'].includes(task.name)) {
      await client.query(`SELECT setval(pg_get_serial_sequence('${task.name}', 'id'), (SELECT max(id) FROM ${task.name}))`);
    }
    await client.query('COMMIT');
    return inserted.rowCount ?? 0;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new JarvisError('SERVICE_ERROR', `seeding ${task.name} failed: ${messageOf(e)}`, { cause: e });
  }
}

/**
 * The generated references are valid by construction (ids drawn from 1..N of committed
 * tables), so the per-row foreign-key triggers, two thirds of the load time, are skipped where
 * the role may (`session_replication_role = replica`, superusers). Elsewhere they run.
 */
async function skipForeignKeyChecks(clients: pg.Client[]): Promise<'on' | 'skipped'> {
  try {
    for (const client of clients) await client.query(`SET session_replication_role = replica`);
    return 'skipped';
  } catch (e) {
    if (sqlState(e) !== '42501') throw e;
    for (const client of clients) await client.query(`RESET session_replication_role`).catch(() => undefined);
    return 'on';
  }
}

/** Runs the tasks on the connections, each once the tables it references are committed. */
async function runTasks(clients: pg.Client[], list: Task[], now: Date, progress?: Progress): Promise<{ rows: Map<string, number>; ms: Map<string, number> }> {
  const done = new Map<string, number>();
  const ms = new Map<string, number>();
  const started = new Set<string>();
  let failure: unknown;
  let wake: () => void = () => undefined;
  const worker = async (client: pg.Client) => {
    while (failure === undefined) {
      const next = list.find((t) => !started.has(t.name) && t.after.every((d) => done.has(d)));
      if (!next) {
        if (started.size === list.length) return;
        await new Promise<void>((r) => { wake = r; });
        continue;
      }
      started.add(next.name);
      const t0 = Date.now();
      try {
        done.set(next.name, await loadTable(client, next, now));
        ms.set(next.name, Date.now() - t0);
        progress?.note(`${next.name}: ${plural(done.get(next.name)!, 'row')}`);
        progress?.update(done.size, list.length);
      } catch (e) {
        failure ??= e;
      }
      const w = wake;
      wake = () => undefined;
      w();
    }
  };
  await Promise.all(clients.map(worker));
  if (failure !== undefined) throw failure;
  return { rows: done, ms };
}

/** How far back the metrics samples go (the metrics task's SQL says the same). */
const METRICS_DAYS = 45;

/**
 * metrics range-partitioned by day (0006_partition_metrics) has partitions only for the days it
 * had rows when it was converted: the seed's days get theirs first, else they all land in the
 * default partition, where retention can only take them in batches.
 */
async function partitionMetricsDays(client: pg.Client, now: Date): Promise<void> {
  const { rows: [row] } = await client.query<{ partitioned: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('metrics')) AS partitioned`);
  if (!row?.partitioned) return;
  const { createMissingDaily } = await import('../retention/partition-run.js');
  const { rows: [schema] } = await client.query<{ s: string }>(`SELECT n.nspname::text AS s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('metrics')`);
  await createMissingDaily(client, { schema: schema!.s, name: 'metrics' }, new Date(now.getTime() - METRICS_DAYS * 86_400_000), now);
}

/** Fills an empty JARVIS schema (at the latest migration) with the dataset at `scale`. */
export async function seedDatabase(url: string, options: SeedOptions): Promise<SeedResult> {
  if (!(options.scale > 0) || options.scale > 1000) throw new JarvisError('USAGE', `--scale must be a number above 0 and at most 1000 (got ${options.scale})`);
  const started = Date.now();
  const now = options.now ?? new Date();
  const counts = seedCounts(options.scale);
  const phases: Record<string, number> = {};
  const clients: pg.Client[] = [];
  try {
    for (let i = 0; i < Math.max(1, options.connections ?? 2); i++) clients.push(await connectPostgres(url, { applicationName: 'jarvis-db seed' }));
    const main = clients[0]!;
    const { embeddingCast } = await checkReady(main);
    const foreignKeyChecks = await skipForeignKeyChecks(clients);
    for (const client of clients) await client.query(`SET maintenance_work_mem = '256MB'`);
    await partitionMetricsDays(main, now);
    let t = Date.now();
    const { rows, ms } = await runTasks(clients, tasks(counts, embeddingCast), now, options.progress);
    phases.load = Date.now() - t;
    t = Date.now();
    options.progress?.note('analyzing');
    const tables = [...SEEDED_TABLES];
    await Promise.all(clients.map(async (client) => {
      for (let table = tables.shift(); table; table = tables.shift()) await client.query(`ANALYZE ${table}`);
    }));
    phases.analyze = Date.now() - t;
    const { rows: [size] } = await main.query<{ bytes: string }>(`SELECT pg_database_size(current_database()) AS bytes`);
    return {
      scale: options.scale,
      counts: {
        users: rows.get('users')!, sessions: rows.get('sessions')!, conversations: rows.get('conversations')!, messages: rows.get('messages')!,
        memory: rows.get('memory')!, metrics: rows.get('metrics')!, metricsHourly: rows.get('metrics_hourly')!, cacheEntries: rows.get('cache_entries')!,
      },
      databaseBytes: Number(size!.bytes),
      ms: Date.now() - started,
      phases,
      tables: Object.fromEntries(ms),
      foreignKeyChecks,
    };
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}
