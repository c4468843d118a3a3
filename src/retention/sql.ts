/**
 * Policy → SQL, pure. Every identifier comes from the catalog (ResolvedPolicy) and is quoted
 * with pg's escapeIdentifier; every value (cut-off, keys, salt, redaction text) is a bind
 * parameter with an explicit cast to the column's own type (docs/architecture.md §4 rule 5).
 *
 * Batches walk the table in (age, primary key) order with a keyset, so that each batch starts
 * where the last one ended instead of re-reading the rows already done, and lock their rows
 * with FOR UPDATE SKIP LOCKED so that a row a writer holds is left for the next run.
 */
import { ident, qualified, type ColumnInfo, type TableInfo } from './catalog.js';
import type { ResolvedChild, ResolvedPolicy } from './check.js';

export interface Sql { text: string }

/** Which rows are old: `age < bound` (the cut-off) or `age <= bound` (the maxRows boundary). */
export interface Phase { op: '<' | '<='; bound: string }

const col = (alias: string, c: Pick<ColumnInfo, 'name'>) => `${alias}.${ident(c.name)}`;
const cast = (n: number, c: Pick<ColumnInfo, 'type'>) => `$${n}::${c.type}`;
const castArray = (n: number, c: Pick<ColumnInfo, 'type'>) => `$${n}::${c.type}[]`;

/** Rows a NO ACTION / RESTRICT reference still points at cannot be deleted: they are skipped. */
function stillReferenced(policy: ResolvedPolicy): string[] {
  return policy.blockers.map((ref) => {
    const on = ref.columns.map((c, i) => `r.${ident(c)} = ${col('t', { name: ref.refColumns[i]! })}`).join(' AND ');
    return `NOT EXISTS (SELECT 1 FROM ${qualified({ schema: ref.schema, name: ref.table })} AS r WHERE ${on})`;
  });
}

/**
 * The keys of one batch, locked: `$1` the bound; with a keyset `$2` the last age and `$3…` the
 * last key; the limit last. Columns: the age, the key, then `extra` (a child's parent column).
 */
export function selectBatch(policy: ResolvedPolicy, phase: Phase, options: { keyset: boolean; extra?: ColumnInfo[]; extraWhere?: string; select?: string }): Sql {
  const { table, age, primaryKey } = policy;
  const ordered = [age, ...primaryKey];
  const columns = [...ordered, ...(options.extra ?? [])];
  const where = [`${col('t', age)} ${phase.op} ${cast(1, age)}`];
  let n = 2;
  if (options.keyset) {
    where.push(`${col('t', age)} >= ${cast(2, age)}`);
    const last = ordered.map((c) => cast(n++, c));
    where.push(`(${ordered.map((c) => col('t', c)).join(', ')}) > (${last.join(', ')})`);
  }
  if (options.extraWhere) where.push(options.extraWhere);
  where.push(...stillReferenced(policy));
  return {
    text: `SELECT ${options.select ?? columns.map((c) => col('t', c)).join(', ')} FROM ${qualified(table)} AS t WHERE ${where.join(' AND ')}`
      + ` ORDER BY ${ordered.map((c) => col('t', c)).join(', ')} LIMIT $${n} FOR UPDATE OF t SKIP LOCKED`,
  };
}

/**
 * Rows by key, one array parameter per key column: `= ANY($1)` for a one-column key (an index
 * scan of the primary key), a join with `unnest($1, $2…)` for a composite one.
 */
function byKey(key: ColumnInfo[], alias: string, first = 1): { using: string; where: string } {
  if (key.length === 1) return { using: '', where: `${col(alias, key[0]!)} = ANY(${castArray(first, key[0]!)})` };
  const names = key.map((_, i) => `k${i + 1}`);
  return {
    using: `unnest(${key.map((c, i) => castArray(first + i, c)).join(', ')}) AS k(${names.join(', ')})`,
    where: key.map((c, i) => `${col(alias, c)} = k.${names[i]}`).join(' AND '),
  };
}

/** A row as a JSON array of its columns' text: what an archive chunk stores, built by the server. */
export function rowJson(alias: string, table: TableInfo): string {
  return `array_to_json(ARRAY[${table.columns.map((c) => `${col(alias, c)}::text`).join(', ')}])::text`;
}

/**
 * The age bound a by-key statement on a partitioned table adds: `age <= $n`, n right after the
 * key arrays, the batch's last (greatest) age. Every row of the batch is within it, and it lets
 * the server prune the partitions that hold none of them: a join with the key list cannot, and
 * would scan every partition for each batch.
 */
export function ageBoundOf(table: Pick<TableInfo, 'plain'>, age: ColumnInfo, key: ColumnInfo[]): { where: string } | null {
  return table.plain ? null : { where: `${col('t', age)} <= ${cast(key.length + 1, age)}` };
}

/** Deletes rows by primary key (one array parameter per key column; then the age bound's, when given). */
export function deleteByKey(table: TableInfo, key: ColumnInfo[], bound: { where: string } | null = null): Sql {
  const k = byKey(key, 't');
  return { text: `DELETE FROM ${qualified(table)} AS t${k.using ? ` USING ${k.using}` : ''} WHERE ${k.where}${bound ? ` AND ${bound.where}` : ''}` };
}

/**
 * One archive batch of a plain table without children in one statement, the least work per row
 * (bench/retention-floor.mjs): the batch's rows locked as selectBatch does, deleted by ctid,
 * returned as chunk lines, each followed by its age and key, in (age, key) order so that the
 * last row is the next keyset. Parameters as selectBatch's. A ctid names one row of one heap
 * only: never for a partitioned table.
 */
export function archiveBatchByCtid(policy: ResolvedPolicy, phase: Phase, options: { keyset: boolean }): Sql {
  const { table, age, primaryKey } = policy;
  const ordered = [age, ...primaryKey];
  const locked = selectBatch(policy, phase, { keyset: options.keyset, select: 't.ctid AS tid' }).text;
  const keys = ordered.map((c, i) => `${col('t', c)} AS k${i}`);
  const order = ordered.map((_, i) => `d.k${i}`).join(', ');
  return {
    text: `WITH b AS (${locked}), d AS (DELETE FROM ${qualified(table)} AS t USING b WHERE t.ctid = b.tid RETURNING ${rowJson('t', table)} AS j, ${keys.join(', ')})`
      + ` SELECT d.j, ${order} FROM d ORDER BY ${order}`,
  };
}

/** Deletes rows by primary key and returns each as a chunk line (archive). */
export function deleteReturningRows(table: TableInfo, key: ColumnInfo[], bound: { where: string } | null = null): Sql {
  return { text: `${deleteByKey(table, key, bound).text} RETURNING ${rowJson('t', table)} AS j` };
}

/**
 * Deletes a child's rows of a batch of parents (`$1` the parents' referenced values) and returns
 * each as a chunk line, followed by its key's text.
 */
export function deleteChildrenReturningRows(child: ResolvedChild): Sql {
  const keys = child.info.primaryKey.map((k) => `c.${ident(k)}::text`);
  return {
    text: `DELETE FROM ${qualified(child.info)} AS c WHERE ${col('c', child.column)} = ANY(${castArray(1, child.column)})`
      + ` RETURNING ${[rowJson('c', child.info), ...keys].join(', ')}`,
  };
}

/** How many of these keys are in the table (one array parameter per key column). */
export function countByKey(table: TableInfo, key: ColumnInfo[]): Sql {
  const k = byKey(key, 't');
  return { text: `SELECT count(*)::int AS n FROM ${qualified(table)} AS t${k.using ? `, ${k.using}` : ''} WHERE ${k.where}` };
}

/** Whether any child row of these parents is left (it would go through the cascade unarchived). */
export function childrenLeft(child: ResolvedChild): Sql {
  return { text: `SELECT EXISTS (SELECT 1 FROM ${qualified(child.info)} AS c WHERE ${col('c', child.column)} = ANY(${castArray(1, child.column)})) AS left` };
}

/**
 * Anonymizes rows by key. Parameters: the key arrays, then `$salt`, then `$redaction`.
 * hash: salted SHA-256 of the value (NULL stays NULL); email: a unique placeholder derived
 * from the salted key, so a unique e-mail column stays unique.
 */
export function anonymizeByKey(policy: ResolvedPolicy): { text: string; saltParam: number; redactionParam: number } {
  const { table, primaryKey } = policy;
  const a = policy.anonymize!;
  const k = byKey(primaryKey, 't');
  const salt = primaryKey.length + 1;
  const redaction = primaryKey.length + 2;
  const keyText = primaryKey.map((c) => `${col('t', c)}::text`).join(` || '|' || `);
  const sha = (expr: string) => `encode(sha256(convert_to($${salt}::text || ${expr}, 'UTF8')), 'hex')`;
  const sets = a.columns.map(({ column, strategy }) => {
    const value = strategy === 'null' ? 'NULL'
      : strategy === 'redact' ? `$${redaction}::text`
        : strategy === 'hash' ? sha(`${col('t', column)}::text`)
          : `'user-' || left(${sha(keyText)}, 32) || '@anon.invalid'`;
    return `${ident(column.name)} = ${value}`;
  });
  sets.push(`${ident(a.marker.name)} = now()`);
  return { text: `UPDATE ${qualified(table)} AS t SET ${sets.join(', ')}${k.using ? ` FROM ${k.using}` : ''} WHERE ${k.where}`, saltParam: salt, redactionParam: redaction };
}

/**
 * Deletes a batch of detail rows by key and merges them into the rollup table's buckets
 * (count, sum, min, max per group and bucket; avg = sum / count), in one statement.
 * Parameters: the key arrays, then the bucket width in seconds.
 */
export function compressByKey(policy: ResolvedPolicy): Sql {
  const { table, primaryKey, age } = policy;
  const r = policy.rollup!;
  const k = byKey(primaryKey, 't');
  const width = `$${primaryKey.length + 1}::numeric`;
  const groups = r.groupBy.map((g) => ident(g.name));
  const value = ident(r.value.name);
  const target = qualified(r.info);
  return {
    text: `WITH gone AS (DELETE FROM ${qualified(table)} AS t${k.using ? ` USING ${k.using}` : ''} WHERE ${k.where}`
      + ` RETURNING ${[...r.groupBy, age, r.value].map((c) => col('t', c)).join(', ')})`
      + ` INSERT INTO ${target} AS r (${[...groups, 'bucket_start', 'count', 'sum', 'min', 'max'].join(', ')})`
      + ` SELECT ${groups.join(', ')}, to_timestamp(floor(extract(epoch FROM ${ident(age.name)}) / ${width}) * ${width}),`
      + ` count(${value}), sum(${value}), min(${value}), max(${value})`
      + ` FROM gone WHERE ${value} IS NOT NULL GROUP BY ${groups.map((_, i) => i + 1).join(', ')}, ${groups.length + 1}`
      + ` ON CONFLICT (${[...groups, 'bucket_start'].join(', ')}) DO UPDATE SET count = r.count + EXCLUDED.count,`
      + ` sum = r.sum + EXCLUDED.sum, min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max)`,
  };
}

/** Rows older than the bound (and, for anonymize, not yet done): `$1` the bound. */
export function countEligible(policy: ResolvedPolicy, phase: Phase, extraWhere?: string): Sql {
  const where = [`${col('t', policy.age)} ${phase.op} ${cast(1, policy.age)}`];
  if (extraWhere) where.push(extraWhere);
  where.push(...stillReferenced(policy));
  return { text: `SELECT count(*)::float8 AS n FROM ${qualified(policy.table)} AS t WHERE ${where.join(' AND ')}` };
}

/** The child rows that would go with the eligible parents: `$1` the cut-off. */
export function countChildren(policy: ResolvedPolicy, child: ResolvedChild): Sql {
  return {
    text: `SELECT count(*)::float8 AS n FROM ${qualified(child.info)} AS c WHERE ${col('c', child.column)} IN`
      + ` (SELECT ${col('t', child.parentColumn)} FROM ${qualified(policy.table)} AS t WHERE ${col('t', policy.age)} < ${cast(1, policy.age)})`,
  };
}

const COUNT_PREFIX = /^SELECT count\(\*\)::(?:float8|int) AS n FROM /;

/** The rows a count above counts, as `SELECT 1 FROM …`: what EXPLAIN estimates without the aggregate (parallel plans included). */
export function rowsOfCount(count: Sql): Sql {
  if (!COUNT_PREFIX.test(count.text)) throw new Error(`not a count query: ${count.text.slice(0, 40)}`);
  return { text: count.text.replace(COUNT_PREFIX, 'SELECT 1 FROM ') };
}

/** Whether a count above is more than zero, stopping at the first row. */
export function anyOfCount(count: Sql): Sql {
  return { text: `SELECT EXISTS (${rowsOfCount(count).text}) AS any` };
}

/** maxRows: the age of the newest row beyond the cap (`$1` = maxRows), as text. */
export function capBoundary(policy: ResolvedPolicy): Sql {
  const a = col('t', policy.age);
  return { text: `SELECT ${a}::text AS bound FROM ${qualified(policy.table)} AS t WHERE ${a} IS NOT NULL ORDER BY ${a} DESC OFFSET $1 LIMIT 1` };
}

/** maxRows: rows at or before the boundary that the cut-off does not already take: `$1` cut-off, `$2` boundary. */
export function countCapped(policy: ResolvedPolicy): Sql {
  const a = col('t', policy.age);
  return { text: `SELECT count(*)::float8 AS n FROM ${qualified(policy.table)} AS t WHERE ${a} >= ${cast(1, policy.age)} AND ${a} <= ${cast(2, policy.age)}` };
}

/** The average size of a row, from the first thousand (when the table has no statistics yet). */
export function sampleRowBytes(table: TableInfo): Sql {
  return { text: `SELECT avg(pg_column_size(s.*))::float8 AS b FROM (SELECT * FROM ${qualified(table)} LIMIT 1000) AS s` };
}

/** `anonymize`: rows not anonymized yet. */
export function notAnonymized(policy: ResolvedPolicy): string | undefined {
  return policy.anonymize ? `${col('t', policy.anonymize.marker)} IS NULL` : undefined;
}

/**
 * Re-inserts archived rows: one text[] parameter per column, each cast to the live column's
 * type; identity values kept (OVERRIDING SYSTEM VALUE); a row already there is left alone.
 */
export function restoreInsert(table: TableInfo, columns: ColumnInfo[]): Sql {
  const names = columns.map((_, i) => `v${i + 1}`);
  return {
    text: `INSERT INTO ${qualified(table)} (${columns.map((c) => ident(c.name)).join(', ')}) OVERRIDING SYSTEM VALUE`
      + ` SELECT ${columns.map((c, i) => `u.${names[i]}::${c.type}`).join(', ')}`
      + ` FROM unnest(${columns.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS u(${names.join(', ')}) ON CONFLICT DO NOTHING`,
  };
}
