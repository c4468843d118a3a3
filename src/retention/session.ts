/**
 * The PostgreSQL session retention works in: UTC, synchronous commit (a chunk's delete must be
 * durable once COMMIT returns), and a server-side limit on idling inside a transaction so that
 * a stuck or killed jarvis-db never holds row locks for long. Values come back as the server's
 * text (RAW): exact for every type, and what archives store.
 */
import type pg from 'pg';
import { connectPostgres } from '../services/postgres.js';
import type { DatabaseIdentity } from './store.js';

export const RAW = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export interface SessionSettings {
  /** Per statement of a batch. */
  statementTimeoutMs: number;
  /** Waiting for a row or table lock. */
  lockTimeoutMs: number;
  /** The server ends a session idle inside a transaction for longer than this. */
  idleInTransactionMs: number;
}

export const DEFAULT_SESSION: SessionSettings = { statementTimeoutMs: 30_000, lockTimeoutMs: 5_000, idleInTransactionMs: 60_000 };

const ms = (n: number) => String(Math.max(0, Math.floor(n)));

export async function openSession(url: string, settings: SessionSettings = DEFAULT_SESSION, applicationName = 'jarvis-db retention'): Promise<pg.Client> {
  const client = await connectPostgres(url, { applicationName });
  try {
    await client.query(`SET TimeZone = 'UTC'; SET synchronous_commit = on; SET idle_in_transaction_session_timeout = ${ms(settings.idleInTransactionMs)}`);
  } catch (e) {
    await client.end().catch(() => undefined);
    throw e;
  }
  return client;
}

/** BEGIN with the batch's limits (numbers we format, never text from the config). */
export function beginSql(settings: SessionSettings): string {
  return `BEGIN; SET LOCAL statement_timeout = ${ms(settings.statementTimeoutMs)}; SET LOCAL lock_timeout = ${ms(settings.lockTimeoutMs)}`;
}

export async function serverVersion(client: Pick<pg.ClientBase, 'query'>): Promise<number> {
  // SHOW names its column after the setting (server_version_num), not `v`.
  const r = await client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`);
  return r.rows[0]!.v;
}

/** The current transaction's id (assigning one): what a chunk's fate is later looked up by. */
export async function currentXid(client: Pick<pg.ClientBase, 'query'>, version: number): Promise<string> {
  const r = await client.query<{ x: string }>(version >= 130000 ? 'SELECT pg_current_xact_id()::text AS x' : 'SELECT txid_current()::text AS x');
  return r.rows[0]!.x;
}

/** committed | aborted | in progress | null (too old to know), or throws (an xid this server never issued). */
export async function xidStatus(client: Pick<pg.ClientBase, 'query'>, version: number, xid: string): Promise<string | null> {
  const r = await client.query<{ s: string | null }>(version >= 130000 ? 'SELECT pg_xact_status($1::xid8) AS s' : 'SELECT txid_status($1::bigint) AS s', [xid]);
  return r.rows[0]!.s;
}

export async function databaseIdentity(client: Pick<pg.ClientBase, 'query'>): Promise<DatabaseIdentity> {
  const r = await client.query<{ id: string; db: string }>('SELECT (SELECT system_identifier::text FROM pg_control_system()) AS id, current_database() AS db');
  return { systemIdentifier: r.rows[0]!.id, database: r.rows[0]!.db };
}
