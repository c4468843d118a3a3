/**
 * Partitions → SQL, pure. Every name comes from the catalog (or, for a partition to create, is
 * made from the catalog's name of its parent) and is quoted with escapeIdentifier; every value
 * in a DDL statement (which takes no bind parameters) is a literal quoted with escapeLiteral
 * (docs/architecture.md §4 rule 5). Nothing here splits a name at a dot.
 */
import pg from 'pg';
import { ident, type TableInfo } from './catalog.js';
import { MARKER_PREFIX, type BoundValue, type DetachMarker } from './partition-catalog.js';
import { rowJson, type Sql } from './sql.js';

export interface Name { schema: string; name: string }

export function quoted(t: Name): string {
  return `${ident(t.schema)}.${ident(t.name)}`;
}

function boundLiteral(v: BoundValue): string {
  return v === 'MINVALUE' || v === 'MAXVALUE' ? v : pg.escapeLiteral(v);
}

/** The comment that marks a partition as being retired by a run (partition-catalog.ts finds it). */
export function markSql(partition: Name, marker: Omit<DetachMarker, 'parent'>): Sql {
  return { text: `COMMENT ON TABLE ${quoted(partition)} IS ${pg.escapeLiteral(MARKER_PREFIX + JSON.stringify(marker))}` };
}

/** DETACH PARTITION: CONCURRENTLY (outside a transaction block), plain, or FINALIZE of an interrupted one. */
export function detachSql(parent: Name, partition: Name, mode: 'concurrently' | 'plain' | 'finalize'): Sql {
  const suffix = mode === 'concurrently' ? ' CONCURRENTLY' : mode === 'finalize' ? ' FINALIZE' : '';
  return { text: `ALTER TABLE ${quoted(parent)} DETACH PARTITION ${quoted(partition)}${suffix}` };
}

export function lockSql(table: Name): Sql {
  return { text: `LOCK TABLE ${quoted(table)} IN ACCESS EXCLUSIVE MODE` };
}

export function dropSql(table: Name): Sql {
  return { text: `DROP TABLE ${quoted(table)}` };
}

/** Every row of a detached partition as a chunk line, for COPY … TO STDOUT. */
export function copyRowsSql(table: Name, columns: TableInfo['columns']): Sql {
  const info = { ...table, columns } as TableInfo;
  return { text: `COPY (SELECT ${rowJson('t', info)} FROM ${quoted(table)} AS t) TO STDOUT` };
}

/** The smallest (or largest) primary key of a table, as text, in key column order (the key's index answers it). */
export function keyBoundSql(table: Name, primaryKey: string[], which: 'min' | 'max'): Sql {
  const order = primaryKey.map((k) => `t.${ident(k)}${which === 'max' ? ' DESC' : ''}`).join(', ');
  return { text: `SELECT ${primaryKey.map((k) => `t.${ident(k)}::text`).join(', ')} FROM ${quoted(table)} AS t ORDER BY ${order} LIMIT 1` };
}

/** A range partition of `parent` in the parent's schema. */
export function createPartitionSql(parent: Name, partition: string, from: BoundValue, to: BoundValue): Sql {
  return { text: `CREATE TABLE ${quoted({ schema: parent.schema, name: partition })} PARTITION OF ${quoted(parent)} FOR VALUES FROM (${boundLiteral(from)}) TO (${boundLiteral(to)})` };
}
