/**
 * PostgreSQL samples from one connection: one round trip of catalog and statistics views
 * (pg_settings, pg_stat_activity, pg_stat_database, pg_database, pg_locks, pg_stat_user_tables),
 * plus one to pg_stat_statements when that extension is installed. Nothing scans user tables;
 * the largest tables are found by pg_class.relpages (an estimate, no I/O).
 */
import type pg from 'pg';
import { messageOf } from '../../errors.js';
import type { Sample } from '../samples.js';

/** Largest tables whose dead-tuple ratio is reported. */
export const DEAD_TUPLE_TABLES = 5;
/** A statement is slow at this mean execution time. */
export const SLOW_STATEMENT_MS = 1000;
const XID_WRAPAROUND = 2 ** 31;

const MAIN_QUERY = `
SET statement_timeout = '5s';
SELECT
  current_setting('max_connections')::int AS max_connections,
  current_setting('superuser_reserved_connections')::int
    + coalesce(current_setting('reserved_connections', true), '0')::int AS reserved,
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
  pg_database_size(current_database())::float8 AS database_bytes,
  d.blks_hit::float8 AS blks_hit,
  d.blks_read::float8 AS blks_read,
  (SELECT max(age(datfrozenxid)) FROM pg_database)::float8 AS xid_age,
  (SELECT count(*) FROM pg_locks WHERE NOT granted)::int AS waiting_locks,
  pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN
    CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
         ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
  END AS replication_lag,
  (SELECT json_build_object('seconds', extract(epoch FROM now() - xact_start)::float8, 'app', application_name, 'pid', pid)
     FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
    ORDER BY xact_start LIMIT 1) AS longest_transaction,
  (SELECT json_build_object('seconds', extract(epoch FROM now() - query_start)::float8, 'app', application_name, 'pid', pid)
     FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
    ORDER BY query_start LIMIT 1) AS longest_query,
  EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS has_statements
FROM pg_stat_database d
WHERE d.datname = current_database();
SELECT s.schemaname || '.' || s.relname AS name, s.n_live_tup::float8 AS live, s.n_dead_tup::float8 AS dead
  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
 ORDER BY c.relpages DESC, s.relid
 LIMIT ${DEAD_TUPLE_TABLES};
`;

interface Activity { seconds: number; app: string; pid: number }
interface MainRow {
  max_connections: number; reserved: number; connections: number; database_bytes: number;
  blks_hit: number; blks_read: number; xid_age: number; waiting_locks: number; in_recovery: boolean;
  replication_lag: number | null; longest_transaction: Activity | null; longest_query: Activity | null; has_statements: boolean;
}
interface TableRow { name: string; live: number; dead: number }

function heldBy(a: Activity): string {
  return `pid ${a.pid}${a.app ? `, ${a.app}` : ''}`;
}

/** Samples of a connected client. Throws only if the main query fails (the caller reports that). */
export async function probePostgres(client: pg.Client): Promise<Sample[]> {
  const results = (await client.query(MAIN_QUERY)) as unknown as pg.QueryResult[];
  const main = results[1]!.rows[0] as MainRow;
  const tables = results[2]!.rows as TableRow[];
  const available = Math.max(main.max_connections - main.reserved, 1);
  const blocks = main.blks_hit + main.blks_read;
  const samples: Sample[] = [
    { check: 'postgres.up', value: 1 },
    { check: 'postgres.connections', value: main.connections },
    { check: 'postgres.connections_max', value: available, detail: `max_connections ${main.max_connections} minus ${main.reserved} reserved` },
    { check: 'postgres.connections_used_ratio', value: main.connections / available, detail: `${main.connections} of ${available}` },
    { check: 'postgres.database_size_bytes', value: main.database_bytes },
    blocks > 0
      ? { check: 'postgres.cache_hit_ratio', value: main.blks_hit / blocks, context: { blocks }, detail: `${blocks} block reads` }
      : { check: 'postgres.cache_hit_ratio', value: 1, context: { blocks }, detail: 'no block reads yet' },
    { check: 'postgres.longest_transaction_seconds', value: main.longest_transaction?.seconds ?? 0, ...(main.longest_transaction ? { detail: heldBy(main.longest_transaction) } : {}) },
    { check: 'postgres.longest_query_seconds', value: main.longest_query?.seconds ?? 0, ...(main.longest_query ? { detail: heldBy(main.longest_query) } : {}) },
    { check: 'postgres.xid_wraparound_ratio', value: main.xid_age / XID_WRAPAROUND, detail: `oldest age(datfrozenxid) ${main.xid_age}` },
    { check: 'postgres.waiting_locks', value: main.waiting_locks },
  ];
  if (main.in_recovery) {
    samples.push(main.replication_lag === null
      ? { check: 'postgres.replication_lag_seconds', value: null, problem: 'the replica has not replayed any transaction yet' }
      : { check: 'postgres.replication_lag_seconds', value: main.replication_lag });
  }
  for (const t of tables) {
    const all = t.live + t.dead;
    samples.push({ check: 'postgres.dead_tuple_ratio', labels: { table: t.name }, value: all > 0 ? t.dead / all : 0, context: { dead: t.dead }, detail: `${t.dead} dead of ${all}` });
  }
  if (main.has_statements) samples.push(...await statementSamples(client));
  return samples;
}

async function statementSamples(client: pg.Client): Promise<Sample[]> {
  try {
    const r = await client.query<{ slow: number; slowest_ms: number | null }>(
      'SELECT count(*) FILTER (WHERE mean_exec_time >= $1)::int AS slow, max(mean_exec_time)::float8 AS slowest_ms FROM pg_stat_statements',
      [SLOW_STATEMENT_MS],
    );
    const row = r.rows[0]!;
    return [
      { check: 'postgres.slow_statements', value: row.slow },
      { check: 'postgres.slowest_statement_mean_seconds', value: (row.slowest_ms ?? 0) / 1000 },
    ];
  } catch (e) {
    // Installed but not in shared_preload_libraries, or not readable by this role.
    const problem = `pg_stat_statements cannot be read: ${messageOf(e)}`;
    return [
      { check: 'postgres.slow_statements', value: null, problem },
      { check: 'postgres.slowest_statement_mean_seconds', value: null, problem },
    ];
  }
}
