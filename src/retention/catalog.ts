/**
 * What the live catalog says about the tables a policy names (docs/architecture.md §4 rule 5): a name
 * from YAML is looked up with to_regclass() on its quoted form (a bind parameter), and from
 * then on only the catalog's own names are used in SQL, always quoted. Read-only.
 */
import pg from 'pg';

export type OnDelete = 'no action' | 'restrict' | 'cascade' | 'set null' | 'set default';

export interface ColumnInfo {
  name: string;
  /** format_type(): `timestamp with time zone`, `character varying(20)`, `bigint`. Used in casts. */
  type: string;
  /** The base type's name (through domains): `timestamptz`, `int8`, `text`, `float8`. */
  baseType: string;
  /** pg_type.typcategory of the base type: S string, N numeric, D date/time, ... */
  category: string;
  notNull: boolean;
  /** `a` GENERATED ALWAYS AS IDENTITY, `d` BY DEFAULT, '' none. */
  identity: '' | 'a' | 'd';
  /** A generated (computed) column: never inserted. */
  generated: boolean;
}

export interface IndexInfo {
  /** Key columns in order; null for an expression. */
  columns: (string | null)[];
  unique: boolean;
  primary: boolean;
  partial: boolean;
}

/** A foreign key of another table (or this one) that points at the table. */
export interface ReferenceInfo {
  constraint: string;
  schema: string;
  table: string;
  columns: string[];
  refColumns: string[];
  onDelete: OnDelete;
}

export interface TableInfo {
  schema: string;
  name: string;
  columns: ColumnInfo[];
  primaryKey: string[];
  indexes: IndexInfo[];
  references: ReferenceInfo[];
  /** pg_class.reltuples (-1 or 0 before the first ANALYZE). */
  estimatedRows: number;
  /** pg_table_size: heap and TOAST, without indexes. */
  tableBytes: number;
  /** A plain table (one heap, so a ctid names one row): the archive's one-statement batches need it. Unset: not known. */
  plain?: boolean;
}

/** The types a retention age column may have. */
export const TIMESTAMP_TYPES = ['timestamptz', 'timestamp', 'date'] as const;

export function ident(name: string): string {
  return pg.escapeIdentifier(name);
}

export function qualified(table: Pick<TableInfo, 'schema' | 'name'>): string {
  return `${ident(table.schema)}.${ident(table.name)}`;
}

/** `schema.name` for people (not for SQL). */
export function displayName(table: Pick<TableInfo, 'schema' | 'name'>): string {
  return `${table.schema}.${table.name}`;
}

/**
 * The configured name (`messages` or `public.messages`) as the text to_regclass() parses:
 * every part quoted, so that no character of it is ever SQL.
 */
export function regclassText(configured: string): string {
  const dot = configured.indexOf('.');
  return dot > 0 ? `${ident(configured.slice(0, dot))}.${ident(configured.slice(dot + 1))}` : ident(configured);
}

/** Whether a table's configured name designates this catalog table (`messages` / `public.messages`). */
export function sameTable(configured: string, table: Pick<TableInfo, 'schema' | 'name'>, resolved?: Pick<TableInfo, 'schema' | 'name'> | null): boolean {
  if (resolved) return resolved.schema === table.schema && resolved.name === table.name;
  const dot = configured.indexOf('.');
  return dot > 0 ? configured.slice(0, dot) === table.schema && configured.slice(dot + 1) === table.name : configured === table.name;
}

const ON_DELETE: Record<string, OnDelete> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' };

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The catalog's description of a table, or null when the name resolves to no table. */
export async function inspectTable(client: Queryable, configured: string): Promise<TableInfo | null> {
  const rel = await client.query<{ oid: number; nspname: string; relname: string; reltuples: number; bytes: string; plain: boolean }>(
    `SELECT c.oid::int AS oid, n.nspname, c.relname, c.reltuples::float8 AS reltuples, pg_table_size(c.oid)::text AS bytes, c.relkind = 'r' AS plain
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')`,
    [regclassText(configured)],
  );
  const row = rel.rows[0];
  if (!row) return null;
  const oid = row.oid;
  const columns = await client.query<{ name: string; type: string; base: string; category: string; notnull: boolean; identity: string; generated: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            coalesce(bt.typname, t.typname)::text AS base, coalesce(bt.typcategory, t.typcategory)::text AS category,
            a.attnotnull AS notnull, a.attidentity::text AS identity, a.attgenerated::text AS generated
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [oid],
  );
  const indexes = await client.query<{ cols: (string | null)[]; unique: boolean; primary: boolean; partial: boolean }>(
    `SELECT i.indisunique AS unique, i.indisprimary AS primary, i.indpred IS NOT NULL AS partial,
            array(SELECT a.attname::text FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, ord)
                    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS cols
       FROM pg_index i WHERE i.indrelid = $1 AND i.indisvalid`,
    [oid],
  );
  const refs = await client.query<{ conname: string; nspname: string; relname: string; deltype: string; cols: string[]; refcols: string[] }>(
    `SELECT con.conname::text, n.nspname::text, c.relname::text, con.confdeltype::text AS deltype,
            array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord) AS cols,
            array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                    JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord) AS refcols
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE con.contype = 'f' AND con.confrelid = $1 AND con.conparentid = 0
      ORDER BY n.nspname, c.relname, con.conname`,
    [oid],
  );
  const primary = indexes.rows.find((i) => i.primary);
  return {
    schema: row.nspname,
    name: row.relname,
    plain: row.plain,
    columns: columns.rows.map((c) => ({
      name: c.name, type: c.type, baseType: c.base, category: c.category, notNull: c.notnull,
      identity: (c.identity === 'a' || c.identity === 'd' ? c.identity : '') as ColumnInfo['identity'], generated: c.generated !== '',
    })),
    primaryKey: primary ? primary.cols.map((c) => c ?? '') : [],
    indexes: indexes.rows.map((i) => ({ columns: i.cols, unique: i.unique, primary: i.primary, partial: i.partial })),
    references: refs.rows.map((r) => ({
      constraint: r.conname, schema: r.nspname, table: r.relname, columns: r.cols, refColumns: r.refcols, onDelete: ON_DELETE[r.deltype] ?? 'no action',
    })),
    estimatedRows: Math.max(0, row.reltuples),
    tableBytes: Number(row.bytes),
  };
}

export function column(table: TableInfo, name: string): ColumnInfo | undefined {
  return table.columns.find((c) => c.name === name);
}

/** Whether a usable (non-partial) index starts with this column. */
export function hasLeadingIndex(table: TableInfo, name: string): boolean {
  return table.indexes.some((i) => !i.partial && i.columns[0] === name);
}
