/**
 * What the live catalog says about a table's partitions (read-only, docs/architecture.md §4 rule 5):
 * whether it is partitioned, how (range, list, hash) and on which columns
 * (pg_partitioned_table), its partitions with their bounds (pg_get_expr of relpartbound, parsed
 * here, pure) and row estimates (pg_class.reltuples), its default partition, whether a detach
 * was interrupted (pg_inherits.inhdetachpending), whether pg_partman manages it (a part_config
 * table in some schema lists it), and the tables a retention run detached but has not dropped
 * yet (marked with a comment, so that the next observation finds them: partition-sql.ts).
 * One catalog query per table, one for partman's configuration, one for the detached tables.
 */
import type pg from 'pg';
import { sqlState } from '../services/postgres.js';
import { ident } from './catalog.js';

/** A range bound: a value (the server's text of it), or the open end. */
export type BoundValue = string | 'MINVALUE' | 'MAXVALUE';

export interface PartitionInfo {
  schema: string;
  name: string;
  /** The server's text of the bound: `FOR VALUES FROM (…) TO (…)`, `DEFAULT`, … */
  bound: string;
  isDefault: boolean;
  /** A one-column range: its lower (inclusive) and upper (exclusive) bound. */
  range: { from: BoundValue; to: BoundValue } | null;
  /** pg_class.reltuples; -1 before the first ANALYZE. */
  estimatedRows: number;
  /** A DETACH … CONCURRENTLY was interrupted: the partition waits for FINALIZE. */
  detachPending: boolean;
}

export interface Partitioning {
  /** `range` | `list` | `hash` */
  strategy: 'range' | 'list' | 'hash';
  /** The partition key's columns; null for an expression. */
  columns: (string | null)[];
  partitions: PartitionInfo[];
  /** The default partition's name, if there is one. */
  defaultPartition: string | null;
  /** The schema of the pg_partman `part_config` that lists the table, if any. */
  partman: string | null;
}

/** What a retention run writes on a partition before it detaches it (a table comment). */
export interface DetachMarker {
  policy: string;
  /** The parent, `schema.name` for people, and its parts. */
  parent: string;
  parentSchema: string;
  parentName: string;
  /** The age column the partitions are ranged on. */
  column: string;
  range: { from: BoundValue; to: BoundValue } | null;
  archiveFirst: boolean;
}

/** A table detached by a retention run and not dropped yet. */
export interface DetachedPartition {
  schema: string;
  name: string;
  marker: DetachMarker;
  estimatedRows: number;
}

export const MARKER_PREFIX = 'jarvis-db retention: ';

/* ---------- pure: bounds ---------- */

/** The items of a parenthesised bound list: quoted literals (with '' escapes) and bare words. */
function boundItems(text: string): string[] | null {
  const items: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ') i++;
    if (text[i] === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) return null;
        if (text[i] === "'") {
          if (text[i + 1] === "'") { value += "'"; i += 2; continue; }
          i++;
          break;
        }
        value += text[i++];
      }
      items.push(value);
    } else {
      const m = /^[A-Za-z0-9_.+-]+/.exec(text.slice(i));
      if (!m) return null;
      items.push(m[0]);
      i += m[0].length;
    }
    while (text[i] === ' ') i++;
    if (i < text.length && text[i] !== ',') return null;
    i++;
  }
  return items;
}

/** `FOR VALUES FROM ('2026-10-01 00:00:00+00') TO ('2026-10-02 00:00:00+00')` → the range; null when it is not a one-column range. */
export function parseRangeBound(bound: string): { from: BoundValue; to: BoundValue } | null {
  const m = /^FOR VALUES FROM \((.*)\) TO \((.*)\)$/s.exec(bound.trim());
  if (!m) return null;
  const from = boundItems(m[1]!);
  const to = boundItems(m[2]!);
  if (!from || !to || from.length !== 1 || to.length !== 1) return null;
  return { from: from[0]!, to: to[0]! };
}

/**
 * A bound's time in ms since the epoch: the server's text of a timestamptz (in UTC, the
 * session's zone, or with its offset), a timestamp (read as UTC, as the cut-off is cast) or a
 * date; ±Infinity for the open ends; null for what is not a time.
 */
export function boundTime(value: BoundValue): number | null {
  if (value === 'MINVALUE' || value === '-infinity') return -Infinity;
  if (value === 'MAXVALUE' || value === 'infinity') return Infinity;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?)?(?:([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?)?$/.exec(value);
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', sign, oh = '0', om = '0', os = '0'] = m;
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), frac ? Math.round(Number(frac) * 1000) : 0);
  const offset = sign ? (sign === '-' ? -1 : 1) * ((Number(oh) * 60 + Number(om)) * 60 + Number(os)) * 1000 : 0;
  return utc - offset;
}

/** The marker a comment holds, or null when the comment is not one of ours (or damaged). */
export function parseMarker(comment: string | null): DetachMarker | null {
  if (!comment?.startsWith(MARKER_PREFIX)) return null;
  try {
    const m = JSON.parse(comment.slice(MARKER_PREFIX.length)) as DetachMarker;
    if (typeof m.policy !== 'string' || typeof m.parentSchema !== 'string' || typeof m.parentName !== 'string' || typeof m.column !== 'string' || typeof m.archiveFirst !== 'boolean') return null;
    return { ...m, parent: `${m.parentSchema}.${m.parentName}` };
  } catch {
    return null;
  }
}

/* ---------- edge: the catalog ---------- */

type Queryable = Pick<pg.ClientBase, 'query'>;

const STRATEGY: Record<string, Partitioning['strategy']> = { r: 'range', l: 'list', h: 'hash' };

/** The schemas that hold a pg_partman `part_config` table (none without pg_partman). */
export async function partmanSchemas(client: Queryable): Promise<string[]> {
  const r = await client.query<{ s: string }>(`SELECT n.nspname::text AS s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'part_config' AND c.relkind IN ('r', 'p') ORDER BY 1`);
  return r.rows.map((x) => x.s);
}

/** How a table is partitioned, or null for a plain table (or none by that name). */
export async function inspectPartitioning(client: Queryable, table: { schema: string; name: string }, partman: string[]): Promise<Partitioning | null> {
  const r = await client.query<{ strategy: string; columns: (string | null)[]; partitions: { schema: string; name: string; bound: string; rows: number; pending: boolean; isdefault: boolean }[] }>(
    `SELECT pt.partstrat::text AS strategy,
            array(SELECT a.attname::text FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY k(num, ord)
                    LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.num ORDER BY k.ord) AS columns,
            (SELECT coalesce(json_agg(json_build_object('schema', n.nspname, 'name', c.relname, 'bound', pg_get_expr(c.relpartbound, c.oid),
                      'rows', c.reltuples, 'pending', i.inhdetachpending, 'isdefault', c.oid = pt.partdefid) ORDER BY c.relname), '[]'::json)
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE i.inhparent = pt.partrelid) AS partitions
       FROM pg_partitioned_table pt WHERE pt.partrelid = to_regclass($1)`,
    [`${ident(table.schema)}.${ident(table.name)}`],
  );
  const row = r.rows[0];
  if (!row) return null;
  const partitions: PartitionInfo[] = row.partitions.map((p) => ({
    schema: p.schema, name: p.name, bound: p.bound, isDefault: p.isdefault, range: parseRangeBound(p.bound), estimatedRows: Number(p.rows), detachPending: p.pending,
  }));
  let managedBy: string | null = null;
  for (const schema of partman) {
    const m = await client.query<{ listed: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${ident(schema)}.part_config WHERE parent_table = $1) AS listed`, [`${table.schema}.${table.name}`]);
    if (m.rows[0]!.listed) { managedBy = schema; break; }
  }
  return {
    strategy: STRATEGY[row.strategy] ?? 'range', columns: row.columns, partitions,
    defaultPartition: partitions.find((p) => p.isDefault)?.name ?? null, partman: managedBy,
  };
}

/** The tables a retention run detached and has not dropped: the ones with our marker that are no partition. */
export async function findDetached(client: Queryable): Promise<DetachedPartition[]> {
  const r = await client.query<{ schema: string; name: string; comment: string; rows: number }>(
    `SELECT n.nspname::text AS schema, c.relname::text AS name, d.description AS comment, c.reltuples::float8 AS rows
       FROM pg_description d JOIN pg_class c ON c.oid = d.objoid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0 AND d.description LIKE $1 AND NOT c.relispartition AND c.relkind IN ('r', 'p')
      ORDER BY 1, 2`,
    [`${MARKER_PREFIX}%`],
  );
  return r.rows.flatMap((x) => {
    const marker = parseMarker(x.comment);
    return marker ? [{ schema: x.schema, name: x.name, marker, estimatedRows: Number(x.rows) }] : [];
  });
}

/** The exact number of rows of a partition (or detached table), within a time budget; null past it. */
export async function countPartition(client: Queryable, table: { schema: string; name: string }, budgetMs: number): Promise<number | null> {
  await client.query(`BEGIN READ ONLY; SET LOCAL statement_timeout = ${Math.max(1, Math.floor(budgetMs))}`);
  try {
    const r = await client.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${ident(table.schema)}.${ident(table.name)}`);
    return Number(r.rows[0]!.n);
  } catch (e) {
    if (sqlState(e) !== '57014') throw e;
    return null;
  } finally {
    await client.query('COMMIT').catch(() => undefined);
  }
}
