/**
 * Fixtures of the retention tests. Pure ones: catalog entries (TableInfo) of the JARVIS data
 * model and policies. Server ones: one sandbox PostgreSQL per test file (withSandbox), a fresh
 * database per test migrated with the project's migrations/, a `Desired` pointing at it, and
 * helpers to read tables back.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { Desired, RetentionPolicy } from '../../src/config/types.js';
import type { ColumnInfo, IndexInfo, ReferenceInfo, TableInfo } from '../../src/retention/catalog.js';
import { readMigrationFiles, sqlSections } from '../../src/migrate/files.js';
import { withSandbox, type SandboxState } from '../helpers/sandbox.js';

const MIGRATIONS = new URL('../../migrations/', import.meta.url).pathname;

type T = Parameters<typeof withSandbox>[0];

/* ---------- pure fixtures ---------- */

const BASE: Record<string, [string, string]> = {
  bigint: ['int8', 'N'], integer: ['int4', 'N'], text: ['text', 'S'], 'timestamp with time zone': ['timestamptz', 'D'],
  'timestamp without time zone': ['timestamp', 'D'], date: ['date', 'D'], jsonb: ['jsonb', 'U'], uuid: ['uuid', 'U'],
  'double precision': ['float8', 'N'], bytea: ['bytea', 'U'], 'real[]': ['_float4', 'A'], 'character varying(40)': ['varchar', 'S'],
};

export function col(name: string, type: string, extra: Partial<ColumnInfo> = {}): ColumnInfo {
  const [baseType, category] = BASE[type] ?? [type, 'U'];
  return { name, type, baseType, category, notNull: false, identity: '', generated: false, ...extra };
}

export function table(name: string, columns: ColumnInfo[], o: { pk?: string[]; indexes?: (string | null)[][]; refs?: Partial<ReferenceInfo>[]; schema?: string; rows?: number; bytes?: number } = {}): TableInfo {
  const pk = o.pk ?? ['id'];
  const indexes: IndexInfo[] = [];
  if (pk.length) indexes.push({ columns: pk, unique: true, primary: true, partial: false });
  for (const cols of o.indexes ?? []) indexes.push({ columns: cols, unique: false, primary: false, partial: false });
  return {
    schema: o.schema ?? 'public', name, columns, primaryKey: pk, indexes,
    references: (o.refs ?? []).map((r) => ({ constraint: `${r.table}_fkey`, schema: 'public', table: '?', columns: [], refColumns: ['id'], onDelete: 'no action', ...r })),
    estimatedRows: o.rows ?? 1000, tableBytes: o.bytes ?? 100_000,
  };
}

export const USERS = table('users', [
  col('id', 'bigint', { notNull: true, identity: 'a' }), col('email', 'text', { notNull: true }), col('display_name', 'text'),
  col('created_at', 'timestamp with time zone', { notNull: true }), col('last_active_at', 'timestamp with time zone', { notNull: true }),
  col('anonymized_at', 'timestamp with time zone'), col('age', 'integer'),
], { indexes: [['last_active_at'], ['email']], refs: [
  { table: 'conversations', columns: ['user_id'], onDelete: 'cascade', constraint: 'conversations_user_id_fkey' },
  { table: 'sessions', columns: ['user_id'], onDelete: 'cascade', constraint: 'sessions_user_id_fkey' },
] });

export const MESSAGES = table('messages', [
  col('id', 'bigint', { notNull: true, identity: 'a' }), col('conversation_id', 'bigint', { notNull: true }), col('role', 'text', { notNull: true }),
  col('content', 'text', { notNull: true }), col('tokens', 'integer'), col('metadata', 'jsonb', { notNull: true }),
  col('created_at', 'timestamp with time zone', { notNull: true }),
], { indexes: [['created_at'], ['conversation_id']], rows: 2_000_000, bytes: 400_000_000 });

export const CONVERSATIONS = table('conversations', [
  col('id', 'bigint', { notNull: true, identity: 'a' }), col('user_id', 'bigint', { notNull: true }), col('title', 'text'),
  col('created_at', 'timestamp with time zone', { notNull: true }), col('updated_at', 'timestamp with time zone', { notNull: true }),
], { indexes: [['updated_at']], refs: [
  { table: 'messages', columns: ['conversation_id'], onDelete: 'cascade', constraint: 'messages_conversation_id_fkey' },
  { table: 'memory', columns: ['conversation_id'], onDelete: 'set null', constraint: 'memory_conversation_id_fkey' },
], rows: 100_000, bytes: 10_000_000 });

export const METRICS = table('metrics', [
  col('id', 'bigint', { notNull: true }), col('name', 'text', { notNull: true }), col('value', 'double precision', { notNull: true }),
  col('labels', 'jsonb'), col('recorded_at', 'timestamp with time zone', { notNull: true }),
], { indexes: [['recorded_at']] });

export const METRICS_HOURLY = table('metrics_hourly', [
  col('name', 'text', { notNull: true }), col('bucket_start', 'timestamp with time zone', { notNull: true }), col('count', 'bigint', { notNull: true }),
  col('sum', 'double precision', { notNull: true }), col('min', 'double precision', { notNull: true }), col('max', 'double precision', { notNull: true }),
], { pk: ['name', 'bucket_start'] });

export function policy(p: Partial<RetentionPolicy> & Pick<RetentionPolicy, 'name' | 'table' | 'action'>): RetentionPolicy {
  return { age: { column: 'created_at', olderThan: '90d' }, batchSize: 1000, enabled: true, source: { file: 'policies/test.yaml', path: 'policies[0]' }, ...p };
}

export function desiredWith(policies: RetentionPolicy[], o: { url?: string; storage?: string; encryption?: string } = {}): Desired {
  return {
    version: 1, project: 'jarvis', configFile: `${o.storage ?? '/nonexistent'}/jarvis-db.yaml`, configHash: 'test',
    services: { postgres: { url: o.url ?? 'postgres://jarvis:pw@127.0.0.1:1/jarvis' } },
    storage: { path: o.storage ?? '/nonexistent/storage', ...(o.encryption ? { encryption: { passphraseEnv: o.encryption } } : {}) },
    backups: [], retention: policies, health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}

/* ---------- server fixtures ---------- */

/** The JARVIS data model: the up sections of the project's migrations, in their order. */
async function applyMigrations(url: string): Promise<void> {
  const { files, problems } = await readMigrationFiles(MIGRATIONS);
  if (problems.length) throw new Error(problems.join('; '));
  for (const f of files) {
    const content = await readFile(join(MIGRATIONS, f.file), 'utf8');
    const { upStart, downStart } = sqlSections(content);
    await sql(url, content.slice(upStart, downStart < 0 ? undefined : downStart));
  }
}

const servers = new WeakMap<object, Promise<SandboxState>>();

/** The sandbox of this test file's PostgreSQL (started once, by the root test): for tests that stop it. */
export function serverSandbox(root: T): Promise<SandboxState> {
  let state = servers.get(root);
  if (!state) {
    state = withSandbox(root, ['postgres']);
    servers.set(root, state);
  }
  return state;
}

/** The sandbox PostgreSQL of this test file (started once, by the root test). */
export async function serverUrl(root: T): Promise<string> {
  return (await serverSandbox(root)).postgres!.url;
}

export function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = '/' + db;
  return u.toString();
}

export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<R>(text, values);
    return r.rows;
  } finally {
    await c.end();
  }
}

/** A new database on the file's sandbox server, migrated to the JARVIS data model unless `empty`. */
export async function freshDatabase(root: T, o: { empty?: boolean } = {}): Promise<string> {
  const server = await serverUrl(root);
  const name = `ret_${randomBytes(4).toString('hex')}`;
  await sql(server, `CREATE DATABASE ${name}`);
  const url = withDb(server, name);
  if (!o.empty) await applyMigrations(url);
  return url;
}

/** Every row of a table as text, in key order: what "the same table" means in these tests. */
export async function snapshot(url: string, tableName: string, key = 'id'): Promise<string[]> {
  const rows = await sql<{ r: string }>(url, `SELECT t::text AS r FROM ${pg.escapeIdentifier(tableName)} t ORDER BY ${pg.escapeIdentifier(key)}`);
  return rows.map((r) => r.r);
}

/**
 * JARVIS-like rows: `users` users, `conversations` conversations spread over `days` days,
 * `messages` messages spread over the same days, a few per conversation.
 */
export async function seed(url: string, o: { users?: number; conversations?: number; messages?: number; days?: number; seed?: number } = {}): Promise<void> {
  const users = o.users ?? 20;
  const conversations = o.conversations ?? 100;
  const messages = o.messages ?? 2000;
  const days = o.days ?? 200;
  const s = o.seed ?? 1;
  await sql(url, `
    INSERT INTO users (email, display_name, last_active_at) SELECT 'user' || i || '@example.com', 'User ' || i, now() - (i * 50 || ' days')::interval FROM generate_series(1, ${users}) i;
    INSERT INTO conversations (user_id, title, created_at, updated_at)
      SELECT 1 + i % ${users}, 'conversation ' || i || ' "quoted", tab\t, backslash \\', now() - ((i * ${days} / ${conversations}) || ' days')::interval,
             now() - ((i * ${days} / ${conversations}) || ' days')::interval - (i || ' seconds')::interval FROM generate_series(1, ${conversations}) i;
    INSERT INTO messages (conversation_id, role, content, tokens, metadata, created_at)
      SELECT 1 + (i * 7) % ${conversations}, (ARRAY['user','assistant','system','tool'])[1 + i % 4], 'message ' || i || E' \\u00e9t\\u00e9 \\u2603 ' || md5(i::text || '${s}'),
             CASE WHEN i % 5 = 0 THEN NULL ELSE i % 400 END, jsonb_build_object('n', i, 'tags', jsonb_build_array('a', i % 3)),
             now() - ((i * ${days})::float8 / ${messages} || ' days')::interval - ((i * 37) % 86400 || ' seconds')::interval
        FROM generate_series(1, ${messages}) i;
    ANALYZE;`);
}

const q = (s: string) => pg.escapeIdentifier(s);

/**
 * A table range-partitioned by day on recorded_at: a partition per day from 10 days ago to
 * tomorrow, about `perDay` rows a day spread evenly from the start of the oldest day to now
 * (whatever the time of day, every old partition holds rows); one row in 50 has a name with
 * backslashes, quotes, a newline, a tab and a control character (what COPY's text format escapes).
 */
export async function dailyTable(url: string, table: string, o: { perDay?: number; schema?: string; partition?: (k: number) => string; withDefault?: boolean } = {}): Promise<void> {
  const schema = o.schema ?? 'public';
  const full = `${q(schema)}.${q(table)}`;
  if (schema !== 'public') await sql(url, `CREATE SCHEMA ${q(schema)}`);
  await sql(url, `CREATE TABLE ${full} (id bigint GENERATED ALWAYS AS IDENTITY, name text NOT NULL, value float8 NOT NULL, recorded_at timestamptz NOT NULL, PRIMARY KEY (id, recorded_at)) PARTITION BY RANGE (recorded_at);
    CREATE INDEX ON ${full} (recorded_at)`);
  for (let k = -10; k <= 1; k++) {
    const name = o.partition ? o.partition(k) : `${table}_d${k + 10}`;
    await sql(url, `CREATE TABLE ${q(schema)}.${q(name)} PARTITION OF ${full} FOR VALUES FROM (date_trunc('day', now()) + interval '${k} days') TO (date_trunc('day', now()) + interval '${k + 1} days')`);
  }
  if (o.withDefault) await sql(url, `CREATE TABLE ${q(schema)}.${q(`${table}_default`)} PARTITION OF ${full} DEFAULT`);
  const per = o.perDay ?? 200;
  await sql(url, `INSERT INTO ${full} (name, value, recorded_at) SELECT CASE WHEN i % 50 = 0 THEN E'back\\\\slash \\\\\\\\ "q" \\n line\\t tab \\u00e9 \\x01' ELSE 'm' || (i % 7) END, random(), now() - (i::float8 / ${per * 10}) * (now() - (date_trunc('day', now()) - interval '10 days')) FROM generate_series(1, ${per * 10 - 1}) i; ANALYZE ${full}`);
}
