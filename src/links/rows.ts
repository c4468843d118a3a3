/**
 * The PostgreSQL side of a link on the live server: the table and columns it names checked
 * (an unknown one is a config error naming the link's file:line), every row's key streamed
 * through a cursor in a read-only transaction (bounded memory at any size), a sample of rows,
 * and which of some keys have a row.
 */
import type pg from 'pg';
import type { LinkDeclaration } from '../config/types.js';
import { JarvisError } from '../errors.js';
import { sourceOf } from './compare.js';

const FETCH = 10_000;

export interface LinkTable {
  /** The quoted relation: `"public"."memory"`. */
  relation: string;
  key: string;
  /** The key column's type (`bigint`, `uuid`, `text`), for lookups that use its index. */
  keyType: string;
  until: string | null;
}

export function linkConfigError(link: LinkDeclaration, field: string, what: string): JarvisError {
  return new JarvisError('CONFIG_INVALID', `${sourceOf(link)}.${field}: ${what}`, { hint: 'fix the link in the config, or the schema it names' });
}

/** The link's table and columns as they are in the database, or a config error naming the link. */
export async function linkTable(client: pg.ClientBase, link: LinkDeclaration): Promise<LinkTable> {
  const { table, key, until } = link.postgres;
  const parts = table.split('.');
  const relation = parts.map((p) => client.escapeIdentifier(p)).join('.');
  const { rows: [found] } = await client.query<{ oid: string | null }>('SELECT to_regclass($1)::oid::text AS oid', [relation]);
  if (!found?.oid) throw linkConfigError(link, 'postgres.table', `table ${table} does not exist in the database`);
  const { rows: columns } = await client.query<{ name: string; type: string }>(
    'SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped', [found.oid]);
  const column = (name: string, field: string) => {
    const c = columns.find((x) => x.name === name);
    if (!c) throw linkConfigError(link, field, `table ${table} has no column ${name}`);
    return c;
  };
  const keyColumn = column(key, 'postgres.key');
  if (until !== undefined) {
    const u = column(until, 'postgres.until');
    if (!/^(timestamp|date)/.test(u.type)) throw linkConfigError(link, 'postgres.until', `column ${until} of ${table} is ${u.type}, not a timestamp`);
  }
  return { relation, key: client.escapeIdentifier(key), keyType: keyColumn.type, until: until === undefined ? null : client.escapeIdentifier(until) };
}

/** `true` (expected on the other side) unless the row's until is at or before `at`. */
function expectedSql(t: LinkTable): string {
  return t.until ? `(${t.until} IS NULL OR ${t.until} > to_timestamp($1::float8 / 1000))` : '($1::float8 IS NOT NULL)';
}

/** Every row's key (as text) and whether it is expected on the other side at `atMs`, in pages. */
export async function streamRows(client: pg.ClientBase, t: LinkTable, atMs: number, onPage: (rows: [string | null, boolean][]) => void): Promise<void> {
  await client.query('BEGIN READ ONLY');
  try {
    await client.query(`DECLARE jarvis_links NO SCROLL CURSOR FOR SELECT ${t.key}::text, ${expectedSql(t)} FROM ${t.relation}`, [atMs]);
    for (;;) {
      const page = await client.query<[string | null, boolean]>({ text: `FETCH ${FETCH} FROM jarvis_links`, rowMode: 'array' });
      if (!page.rows.length) break;
      onPage(page.rows);
    }
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

export async function countRows(client: pg.ClientBase, t: LinkTable): Promise<number> {
  // The planner's estimate first: an exact count of a huge table is itself too slow for a health check.
  const { rows: [estimate] } = await client.query<{ n: string }>('SELECT reltuples::bigint AS n FROM pg_class WHERE oid = to_regclass($1)', [t.relation]);
  const n = Number(estimate?.n ?? -1);
  if (n > 1_000_000) return n;
  const { rows: [exact] } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${t.relation}`);
  return Number(exact!.n);
}

/** About `size` rows drawn at random (TABLESAMPLE on the table's pages), with whether each is expected. */
export async function sampleRows(client: pg.ClientBase, t: LinkTable, total: number, size: number, atMs: number): Promise<{ key: string; expected: boolean }[]> {
  const percent = Math.min(100, (100 * size * 2) / Math.max(total, 1));
  const { rows } = await client.query<[string | null, boolean]>({
    text: `SELECT ${t.key}::text, ${expectedSql(t)} FROM ${t.relation} TABLESAMPLE BERNOULLI (${percent}) WHERE ${t.key} IS NOT NULL LIMIT ${size}`, values: [atMs], rowMode: 'array',
  });
  return rows.map(([key, expected]) => ({ key: key!, expected }));
}

/** Which of `keys` have a row (through the key column's own type, so its index is used). */
export async function presentRows(client: pg.ClientBase, t: LinkTable, keys: readonly string[]): Promise<Set<string>> {
  if (!keys.length) return new Set();
  let rows: [string][];
  try {
    ({ rows } = await client.query<[string]>({ text: `SELECT ${t.key}::text FROM ${t.relation} WHERE ${t.key} = ANY($1::${t.keyType}[])`, values: [keys], rowMode: 'array' }));
  } catch {
    // a key that is not of the column's type (an orphan named by hand): compare as text
    ({ rows } = await client.query<[string]>({ text: `SELECT ${t.key}::text FROM ${t.relation} WHERE ${t.key}::text = ANY($1::text[])`, values: [keys], rowMode: 'array' }));
  }
  return new Set(rows.map((r) => r[0]));
}
