/**
 * `pg_restore --clean` cannot replace a partitioned table: it drops each partition's primary key
 * before the table (`ALTER TABLE ONLY p DROP CONSTRAINT p_pkey`), which PostgreSQL refuses for a
 * constraint the partition inherits ("cannot drop inherited constraint"). So a restore onto a
 * non-empty database first drops the partitioned tables the backup holds, each with its
 * partitions, as --clean would have; their --clean statements then find nothing (IF EXISTS).
 */
import type pg from 'pg';

/** Pure: the tables of a `pg_restore -l` listing, as `schema name` (`232; 1259 16599 TABLE public cache_entries jarvis`). */
export function dumpedTables(listing: string): Set<string> {
  const tables = new Set<string>();
  for (const line of listing.split('\n')) {
    const m = /^\d+; \d+ \d+ TABLE (?!DATA )(.+) \S+$/.exec(line.trim());
    if (m) tables.add(m[1]!);
  }
  return tables;
}

/** Drops, in one transaction, the top-level partitioned tables of the target that the backup holds; returns them. */
export async function dropPartitionedTables(client: pg.Client, dumped: ReadonlySet<string>): Promise<string[]> {
  const r = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname::text AS schema, c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'p' AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`);
  const drop = r.rows.filter((t) => dumped.has(`${t.schema} ${t.name}`));
  if (drop.length === 0) return [];
  const names = drop.map((t) => `${client.escapeIdentifier(t.schema)}.${client.escapeIdentifier(t.name)}`);
  await client.query(`BEGIN; DROP TABLE ${names.join(', ')}; COMMIT`).catch(async (e: unknown) => {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  });
  return drop.map((t) => `${t.schema}.${t.name}`);
}
