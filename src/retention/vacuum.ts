/**
 * After a run that removed or rewrote a large share of a table, VACUUM (ANALYZE) the tables it
 * touched: a clean-up should not leave the database flagged for dead tuples, nor the planner
 * with row counts from before it. Outside any transaction (VACUUM cannot run inside one), only
 * the tables the run touched; a VACUUM that cannot get its lock is reported, never a failure of
 * the run (autovacuum does it later).
 */
import type pg from 'pg';
import { messageOf } from '../errors.js';
import { displayName, qualified, type TableInfo } from './catalog.js';

/** The share of a table's rows a run must touch for it to be vacuumed. */
export const VACUUM_SHARE = 0.1;

export interface Touched { table: Pick<TableInfo, 'schema' | 'name' | 'estimatedRows'>; rows: number }

/** Pure: the tables whose touched rows are at least VACUUM_SHARE of the rows they had (all touched ones when the size is unknown). */
export function tablesToVacuum(touched: Touched[]): Touched['table'][] {
  return touched.filter((t) => t.rows > 0 && (t.table.estimatedRows <= 0 || t.rows >= VACUUM_SHARE * t.table.estimatedRows)).map((t) => t.table);
}

export interface VacuumOutcome { tables: string[]; ms: number; problem?: string }

export async function vacuumTables(client: Pick<pg.ClientBase, 'query'>, tables: Touched['table'][]): Promise<VacuumOutcome | undefined> {
  if (tables.length === 0) return undefined;
  const started = Date.now();
  const names = tables.map(displayName);
  try {
    // Session level: the batches' limits were SET LOCAL. A VACUUM waits only for another VACUUM or DDL.
    await client.query(`SET lock_timeout = 5000; SET statement_timeout = 0`);
    // The counts of the last batches' dead rows are still pending in this backend (flushed at most
    // once a second): flushed after the VACUUM, they would undo its reset. Flush them first.
    const version = await client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`);
    if (version.rows[0]!.v >= 150000) await client.query('SELECT pg_stat_force_next_flush()');
    await client.query(`VACUUM (ANALYZE) ${tables.map((t) => qualified(t)).join(', ')}`);
    return { tables: names, ms: Date.now() - started };
  } catch (e) {
    return { tables: names, ms: Date.now() - started, problem: messageOf(e) };
  }
}
