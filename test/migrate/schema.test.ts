/**
 * The project's migrations on a real PostgreSQL (sandbox): every down exactly undoes its up
 * (pg_dump --schema-only), and the JARVIS data model keeps its contract: tables and columns,
 * foreign keys with explicit ON DELETE, indexes on foreign keys and on every retention age
 * column, check constraints that hold, the embedding as real[] or vector(384).
 */
import t from 'tap';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { migrateTo } from '../../src/migrate/run.js';
import { freshDatabase, migrationsFolder, noLog, pgServer, PROJECT_MIGRATIONS, schemaDump, sql, type PgServer, type T } from './fixture.js';

const POLICIES = new URL('../../policies/', import.meta.url).pathname;
const server: PgServer = await pgServer(t);
const vectorAvailable = (await sql(server.url, `SELECT 1 FROM pg_available_extensions WHERE name = 'vector'`)).length > 0;

/** A database migrated to latest on the real[] path (forced when pgvector exists on the server). */
async function migrated(t: T, embedding: 'real[]' | 'vector' = 'real[]') {
  const db = await freshDatabase(t, server);
  if (embedding === 'real[]' && vectorAvailable) await sql(server.url, `ALTER DATABASE ${db.name} SET jarvis.embedding_type = 'real[]'`);
  await migrateTo(db.url, PROJECT_MIGRATIONS, { target: 'latest', allowDown: false }, noLog);
  return db;
}

t.test('each down exactly undoes its up: up one by one, down one by one, identical pg_dump --schema-only at every version, then up again', async (t) => {
  const db = await freshDatabase(t, server);
  const names = (await readdir(PROJECT_MIGRATIONS)).filter((n) => n.endsWith('.sql')).sort().map((n) => n.replace(/\.sql$/, ''));
  // The bookkeeping tables exist from the first step on; version 0 is compared once they do.
  await migrateTo(db.url, PROJECT_MIGRATIONS, { target: names[0]!, allowDown: false }, noLog);
  await migrateTo(db.url, PROJECT_MIGRATIONS, { target: '0', allowDown: true }, noLog);
  const dumps = [await schemaDump(server, db.url)];
  for (const name of names) {
    await migrateTo(db.url, PROJECT_MIGRATIONS, { target: name, allowDown: false }, noLog);
    dumps.push(await schemaDump(server, db.url));
  }
  const latest = dumps.at(-1)!;
  t.match(latest, /CREATE TABLE public\.messages/);
  for (let k = names.length - 1; k >= 0; k--) {
    const result = await migrateTo(db.url, PROJECT_MIGRATIONS, { target: k === 0 ? '0' : names[k - 1]!, allowDown: true }, noLog);
    t.same(result.done.map((d) => d.step.name), [names[k]], `rolled back ${names[k]}`);
    t.equal(await schemaDump(server, db.url), dumps[k], `after rolling back ${names[k]} the schema is the one before it`);
  }
  const tables = await sql<{ relname: string }>(db.url, `SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1`);
  t.same(tables.map((r) => r.relname), ['jarvis_db_migrations', 'pgmigrations'], 'down to 0 leaves only the bookkeeping tables');
  await migrateTo(db.url, PROJECT_MIGRATIONS, { target: 'latest', allowDown: false }, noLog);
  t.equal(await schemaDump(server, db.url), latest, 'up again to the latest: identical schema');
});

t.test('the tables and columns of the data model contract', async (t) => {
  const db = await migrated(t);
  const cols = await sql<{ table_name: string; column_name: string; type: string; nullable: boolean; def: string | null }>(db.url, `
    SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
           pg_get_expr(d.adbin, d.adrelid) AS def
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped`);
  const col = (table: string, column: string) => cols.find((c) => c.table_name === table && c.column_name === column);
  const expect: [string, string, string, boolean][] = [
    ['users', 'id', 'bigint', false], ['users', 'email', 'text', false], ['users', 'display_name', 'text', true],
    ['users', 'created_at', 'timestamp with time zone', false], ['users', 'updated_at', 'timestamp with time zone', false],
    ['users', 'last_active_at', 'timestamp with time zone', false], ['users', 'anonymized_at', 'timestamp with time zone', true],
    ['sessions', 'id', 'uuid', false], ['sessions', 'user_id', 'bigint', false], ['sessions', 'token_hash', 'text', false],
    ['sessions', 'user_agent', 'text', true], ['sessions', 'expires_at', 'timestamp with time zone', false],
    ['conversations', 'id', 'bigint', false], ['conversations', 'user_id', 'bigint', false], ['conversations', 'title', 'text', true],
    ['conversations', 'updated_at', 'timestamp with time zone', false],
    ['messages', 'conversation_id', 'bigint', false], ['messages', 'role', 'text', false], ['messages', 'content', 'text', false],
    ['messages', 'tokens', 'integer', true], ['messages', 'metadata', 'jsonb', false], ['messages', 'created_at', 'timestamp with time zone', false],
    ['memory', 'conversation_id', 'bigint', true], ['memory', 'content', 'text', false], ['memory', 'embedding', 'real[]', true],
    ['memory', 'importance', 'real', false], ['memory', 'metadata', 'jsonb', false], ['memory', 'last_accessed_at', 'timestamp with time zone', false],
    ['metrics', 'name', 'text', false], ['metrics', 'value', 'double precision', false], ['metrics', 'labels', 'jsonb', false],
    ['metrics', 'recorded_at', 'timestamp with time zone', false],
    ['metrics_hourly', 'name', 'text', false], ['metrics_hourly', 'bucket_start', 'timestamp with time zone', false],
    ['metrics_hourly', 'count', 'bigint', false], ['metrics_hourly', 'sum', 'double precision', false],
    ['metrics_hourly', 'min', 'double precision', false], ['metrics_hourly', 'max', 'double precision', false],
    ['cache_entries', 'key', 'text', false], ['cache_entries', 'value', 'jsonb', false], ['cache_entries', 'created_at', 'timestamp with time zone', false],
    ['cache_entries', 'expires_at', 'timestamp with time zone', true],
  ];
  for (const [table, column, type, nullable] of expect) {
    const c = col(table, column);
    t.ok(c, `${table}.${column} exists`);
    t.same(c && [c.type, c.nullable], [type, nullable], `${table}.${column} is ${type}${nullable ? '' : ' NOT NULL'}`);
  }
  t.equal(col('sessions', 'id')!.def, 'gen_random_uuid()');
  for (const [table, column] of [['users', 'created_at'], ['users', 'updated_at'], ['users', 'last_active_at'], ['sessions', 'created_at'], ['cache_entries', 'created_at']]) {
    t.equal(col(table!, column!)!.def, 'now()', `${table}.${column} defaults to now()`);
  }
  t.equal(col('messages', 'metadata')!.def, "'{}'::jsonb");
  t.equal(col('metrics', 'labels')!.def, "'{}'::jsonb");
  const identity = await sql<{ t: string }>(db.url, `SELECT c.relname AS t FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE a.attname = 'id' AND a.attidentity <> '' AND c.relnamespace = 'public'::regnamespace ORDER BY 1`);
  t.same(identity.map((r) => r.t), ['conversations', 'memory', 'messages', 'metrics', 'users'], 'bigint identity ids');
  const pk = await sql<{ def: string }>(db.url, `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'metrics_hourly'::regclass AND contype = 'p'`);
  t.same(pk.map((r) => r.def), ['PRIMARY KEY (name, bucket_start)']);
  // 0006_partition_metrics: a partitioned table's primary key must include its partition key.
  const [metrics] = await sql<{ kind: string; def: string }>(db.url, `SELECT c.relkind::text AS kind, pg_get_constraintdef(k.oid) AS def FROM pg_class c JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p' WHERE c.oid = 'metrics'::regclass`);
  t.same(metrics, { kind: 'p', def: 'PRIMARY KEY (id, recorded_at)' }, 'metrics is partitioned, keyed on (id, recorded_at)');
  const unique = await sql<{ def: string }>(db.url, `SELECT conrelid::regclass || ' ' || pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE contype = 'u' AND connamespace = 'public'::regnamespace ORDER BY 1`);
  t.same(unique.map((r) => r.def), ['sessions UNIQUE (token_hash)', 'users UNIQUE (email)']);
});

t.test('every foreign key has an explicit ON DELETE and an index that starts with its column', async (t) => {
  const db = await migrated(t);
  const fks = await sql<{ fk: string; on_delete: string; indexed: boolean }>(db.url, `
    SELECT c.conrelid::regclass || '.' || a.attname || ' -> ' || c.confrelid::regclass AS fk,
           CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'r' THEN 'RESTRICT' WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END AS on_delete,
           EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1]) AS indexed
      FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
     WHERE c.contype = 'f' ORDER BY 1`);
  t.same(fks.map((f) => `${f.fk} ${f.on_delete}`), [
    'conversations.user_id -> users CASCADE',
    'memory.conversation_id -> conversations SET NULL',
    'memory.user_id -> users CASCADE',
    'messages.conversation_id -> conversations CASCADE',
    'sessions.user_id -> users CASCADE',
  ]);
  for (const f of fks) t.ok(f.indexed, `${f.fk} has an index (deletes of the parent find the children without a scan)`);
});

t.test('every age column a retention policy uses has an index that starts with it', async (t) => {
  const db = await migrated(t);
  const files = (await readdir(POLICIES)).filter((f) => f.endsWith('.yaml'));
  const uses: { table: string; column: string; policy: string }[] = [];
  for (const f of files) {
    const doc = parse(await readFile(join(POLICIES, f), 'utf8')) as { policies: { name: string; table: string; age: { column: string } }[] };
    for (const p of doc.policies) uses.push({ table: p.table, column: p.age.column, policy: p.name });
  }
  t.ok(uses.length >= 6, 'the default policies are read');
  for (const u of uses) {
    const [r] = await sql<{ indexed: boolean }>(db.url, `
      SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                      WHERE i.indrelid = $1::regclass AND a.attname = $2) AS indexed`, [u.table, u.column]);
    t.ok(r!.indexed, `${u.table}.${u.column} (policy ${u.policy}) is indexed`);
  }
});

t.test('check constraints refuse what is not true of JARVIS data', async (t) => {
  const db = await migrated(t);
  await sql(db.url, `INSERT INTO users (id, email) VALUES (1, 'a@example.com');
                     INSERT INTO conversations (id, user_id, created_at, updated_at) VALUES (1, 1, now(), now())`);
  const refused: [string, string, RegExp][] = [
    ['a message role outside system/user/assistant/tool', `INSERT INTO messages (conversation_id, role, content) VALUES (1, 'robot', 'x')`, /messages_role_check/],
    ['negative tokens', `INSERT INTO messages (conversation_id, role, content, tokens) VALUES (1, 'user', 'x', -1)`, /messages_tokens_check/],
    ['message metadata that is not an object', `INSERT INTO messages (conversation_id, role, content, metadata) VALUES (1, 'user', 'x', '[1]')`, /messages_metadata_is_object/],
    ['a session that expires before it starts', `INSERT INTO sessions (user_id, token_hash, expires_at) VALUES (1, 'h', now() - interval '1 day')`, /sessions_expires_after_created/],
    ['importance above 1', `INSERT INTO memory (user_id, content, importance) VALUES (1, 'x', 1.5)`, /memory_importance_check/],
    ['an embedding of 383 reals', `INSERT INTO memory (user_id, content, embedding) VALUES (1, 'x', array_fill(0.1::real, ARRAY[383]))`, /memory_embedding_384_reals/],
    ['an embedding with a NULL element', `INSERT INTO memory (user_id, content, embedding) VALUES (1, 'x', array_fill(0.1::real, ARRAY[383]) || NULL::real)`, /memory_embedding_384_reals/],
    ['a 2-D embedding', `INSERT INTO memory (user_id, content, embedding) VALUES (1, 'x', array_fill(0.1::real, ARRAY[384, 2]))`, /memory_embedding_384_reals/],
    ['an hourly roll-up with min above max', `INSERT INTO metrics_hourly VALUES ('m', now(), 1, 1, 5, 2)`, /metrics_hourly_min_le_max/],
    ['an hourly roll-up of zero samples', `INSERT INTO metrics_hourly VALUES ('m', now(), 0, 0, 0, 0)`, /metrics_hourly_count_check/],
    ['metric labels that are not an object', `INSERT INTO metrics (name, value, labels) VALUES ('m', 1, '"x"')`, /metrics_labels_is_object/],
    ['a cache entry that expires before it was created', `INSERT INTO cache_entries (key, value, created_at, expires_at) VALUES ('k', '{}', now(), now() - interval '1 hour')`, /cache_entries_expires_after_created/],
    ['a second user with the same email', `INSERT INTO users (id, email) VALUES (2, 'a@example.com')`, /users_email_key/],
  ];
  for (const [what, statement, constraint] of refused) {
    await t.rejects(sql(db.url, statement), { message: constraint }, `refuses ${what}`);
  }
  await sql(db.url, `INSERT INTO memory (user_id, content, embedding) VALUES (1, 'ok', array_fill(0.1::real, ARRAY[384]))`);
  await sql(db.url, `INSERT INTO sessions (user_id, token_hash, expires_at) VALUES (1, 'h', now() + interval '30 days')`);
  t.pass('valid rows are accepted');
});

t.test('deleting a user takes its sessions, conversations, messages and memories; deleting a conversation keeps its memories', async (t) => {
  const db = await migrated(t);
  await sql(db.url, `
    INSERT INTO users (id, email) VALUES (1, 'a@example.com'), (2, 'b@example.com');
    INSERT INTO sessions (user_id, token_hash, expires_at) VALUES (1, 'h1', now() + interval '1 day'), (2, 'h2', now() + interval '1 day');
    INSERT INTO conversations (id, user_id, created_at, updated_at) VALUES (1, 1, now(), now()), (2, 2, now(), now());
    INSERT INTO messages (conversation_id, role, content) VALUES (1, 'user', 'hi'), (2, 'user', 'hello');
    INSERT INTO memory (user_id, conversation_id, content) VALUES (1, 1, 'likes tea'), (2, 2, 'likes coffee');
    DELETE FROM conversations WHERE id = 2;`);
  const [kept] = await sql<{ conversation_id: string | null }>(db.url, `SELECT conversation_id FROM memory WHERE user_id = 2`);
  t.equal(kept!.conversation_id, null, 'ON DELETE SET NULL on memory.conversation_id');
  await sql(db.url, `DELETE FROM users WHERE id = 1`);
  const [left] = await sql<Record<string, string>>(db.url, `SELECT (SELECT count(*) FROM sessions) s, (SELECT count(*) FROM conversations) c, (SELECT count(*) FROM messages) m, (SELECT count(*) FROM memory) mem`);
  t.same(left, { s: '1', c: '0', m: '0', mem: '1' });
});

t.test('updated_at follows updates unless the statement sets it itself', async (t) => {
  const db = await migrated(t);
  await sql(db.url, `INSERT INTO users (id, email, updated_at) VALUES (1, 'a@example.com', '2020-01-01Z')`);
  await sql(db.url, `UPDATE users SET display_name = 'A'`);
  const [touched] = await sql<{ recent: boolean }>(db.url, `SELECT updated_at > now() - interval '1 minute' AS recent FROM users`);
  t.ok(touched!.recent, 'an update refreshes updated_at');
  await sql(db.url, `UPDATE users SET display_name = 'B', updated_at = '2021-06-01Z'`);
  const [explicit] = await sql<{ u: Date }>(db.url, `SELECT updated_at AS u FROM users`);
  t.equal(explicit!.u.toISOString(), '2021-06-01T00:00:00.000Z', 'an explicit updated_at is kept (archive restores, fixtures)');
});

t.test('the real[] path: without pgvector, memory.embedding is real[] and the choice is recorded', async (t) => {
  const db = await migrated(t, 'real[]');
  const [setting] = await sql<{ value: string }>(db.url, `SELECT value FROM jarvis_db_settings WHERE key = 'memory.embedding_type'`);
  t.equal(setting!.value, 'real[]');
  const [comment] = await sql<{ c: string }>(db.url, `SELECT col_description('memory'::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = 'memory'::regclass AND attname = 'embedding')) AS c`);
  t.match(comment!.c, /real\[\] of 384 elements, pgvector was not available/);
  await migrateTo(db.url, PROJECT_MIGRATIONS, { target: '0002_conversations_and_messages', allowDown: true }, noLog);
  t.same(await sql(db.url, `SELECT * FROM jarvis_db_settings`), [], 'rolling back 0003 forgets the decision');
});

t.test('a forced embedding type that is neither vector nor real[] fails the migration clearly', async (t) => {
  const db = await freshDatabase(t, server);
  await sql(server.url, `ALTER DATABASE ${db.name} SET jarvis.embedding_type = 'float8[]'`);
  await t.rejects(migrateTo(db.url, PROJECT_MIGRATIONS, { target: 'latest', allowDown: false }, noLog),
    { code: 'MIGRATION_FAILED', message: /migration 0003_memory\.sql failed.*jarvis\.embedding_type must be 'vector' or 'real\[\]', not 'float8\[\]'.*the schema is still at 0002_conversations_and_messages/ });
});

const NO_VECTOR = 'pgvector is not installed on this PostgreSQL server (Debian bookworm has no package for it), so the vector path cannot run here';
t.test(vectorAvailable ? 'the vector path: memory.embedding is vector(384) where pgvector is installed' : `the vector path is skipped: ${NO_VECTOR}`, {
  skip: vectorAvailable ? false : NO_VECTOR,
}, async (t) => {
  const folder = await migrationsFolder(t);
  const db = await freshDatabase(t, server);
  await migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog);
  const [type] = await sql<{ type: string }>(db.url, `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'memory'::regclass AND attname = 'embedding'`);
  t.equal(type!.type, 'vector(384)');
  const [setting] = await sql<{ value: string }>(db.url, `SELECT value FROM jarvis_db_settings WHERE key = 'memory.embedding_type'`);
  t.equal(setting!.value, 'vector');
  await sql(db.url, `INSERT INTO users (id, email) VALUES (1, 'a@example.com')`);
  await t.rejects(sql(db.url, `INSERT INTO memory (user_id, content, embedding) VALUES (1, 'x', array_fill(0.1::real, ARRAY[383])::vector)`), /dimensions/);
  const before = await schemaDump(server, db.url);
  await migrateTo(db.url, folder, { target: '0', allowDown: true }, noLog);
  await migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog);
  t.equal(await schemaDump(server, db.url), before, 'down and up again: identical schema on the vector path too');
});
