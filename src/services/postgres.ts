/**
 * PostgreSQL connections for every domain (backup, migrate, retention, health): one place that
 * parses the configured URL, connects with a clear redacted error, and finds the client tools.
 * The password never reaches a command line: child processes get it through `libpqEnv`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Desired } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { endpointOf, isNetworkErrno, runningHint } from './endpoint.js';
import { redactUrl } from './redact.js';

/** The configured PostgreSQL URL, or a clear error when the config has none. */
export function postgresUrl(desired: Desired): string {
  const url = desired.services.postgres?.url;
  if (!url) throw new JarvisError('CONFIG_INVALID', 'services.postgres.url is not set', { hint: 'set services.postgres.url in jarvis-db.yaml' });
  return url;
}

/** The URL as libpq environment variables, for pg_dump, pg_restore and psql children. */
export function libpqEnv(url: string, database?: string): Record<string, string> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new JarvisError('CONFIG_INVALID', `services.postgres.url is not a URL: ${redactUrl(url)}`);
  }
  const env: Record<string, string> = {};
  if (u.hostname) env.PGHOST = decodeURIComponent(u.hostname.replace(/^\[|\]$/g, ''));
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const db = database ?? decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (db) env.PGDATABASE = db;
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode) env.PGSSLMODE = sslmode;
  const host = u.searchParams.get('host');
  if (host) env.PGHOST = host;
  return env;
}

/** The database a URL names (libpq's default: the user name). */
export function databaseOf(url: string): string {
  const env = libpqEnv(url);
  return env.PGDATABASE ?? env.PGUSER ?? 'postgres';
}

/** The same server and credentials, another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

export interface ConnectOptions {
  /** Shown in pg_stat_activity: `jarvis-db backup`. */
  applicationName?: string;
  /** Milliseconds to wait for the connection (default 10 s). */
  connectTimeoutMs?: number;
}

/**
 * A connected client, or JarvisError('SERVICE_UNREACHABLE') naming the redacted URL. Its queries
 * fail on a lost connection (the server stopped, the network) with SERVICE_UNREACHABLE naming
 * PostgreSQL and its host:port, whoever the caller is.
 */
export async function connectPostgres(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: options.applicationName ?? 'jarvis-db',
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
  });
  // An idle client whose server goes away emits 'error'; without a listener that kills the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => undefined);
    throw new JarvisError('SERVICE_UNREACHABLE', `cannot connect to PostgreSQL at ${redactUrl(url)}: ${messageOf(e)}`, { cause: e, hint: connectHint(url, e) });
  }
  guardQueries(client, url);
  return client;
}

/** SQLSTATE classes of a connection that is gone: 08 connection exception, 57P01-03 shutdown. */
const LOST_STATES = /^(08|57P0[123])/;
/** pg's own errors for a client whose connection ended. */
const LOST_MESSAGES = /connection error and is not queryable|Connection terminated|Client was closed and is not queryable|Query read timeout/;

/** True for an error that means the connection to the server is gone (not an error of the query). */
export function isConnectionLost(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  if ((typeof code === 'string' && LOST_STATES.test(code)) || isNetworkErrno(e)) return true;
  return e instanceof Error && LOST_MESSAGES.test(e.message);
}

/** The error of a query whose connection was lost, naming the server and what to check. */
export function connectionLost(url: string, e: unknown): JarvisError {
  return new JarvisError('SERVICE_UNREACHABLE', `lost the connection to PostgreSQL at ${endpointOf('postgres', url)}: ${messageOf(e)}`, { cause: e, hint: runningHint('postgres', url) });
}

function connectHint(url: string, e: unknown): string {
  const state = sqlState(e) ?? '';
  if (state.startsWith('28')) return 'check the user and password in services.postgres.url';
  if (state === '3D000') return `create the database on ${endpointOf('postgres', url)} (jarvis-db init) or check services.postgres.url`;
  return runningHint('postgres', url);
}

/** Every promise-returning query of `client` rejects with connectionLost on a lost connection. */
function guardQueries(client: pg.Client, url: string): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const result = query(...args);
    if (!(result instanceof Promise)) return result;
    return result.catch((e: unknown) => {
      throw e instanceof JarvisError || !isConnectionLost(e) ? e : connectionLost(url, e);
    });
  };
}

/** SQLSTATE of an error thrown by pg (directly or as the cause of a JarvisError). */
export function sqlState(e: unknown): string | undefined {
  const direct = (e as { code?: unknown } | undefined)?.code;
  if (typeof direct === 'string' && /^[0-9A-Z]{5}$/.test(direct)) return direct;
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof cause === 'string' ? cause : undefined;
}

/**
 * A connection for CREATE/DROP DATABASE: the configured database, or `postgres` when that one
 * does not exist (disaster recovery, or `init` before the database is created).
 */
export async function connectAdmin(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  try {
    return await connectPostgres(url, options);
  } catch (e) {
    if (sqlState(e) !== '3D000') throw e;
    return connectPostgres(withDatabase(url, 'postgres'), options);
  }
}

export type PostgresTool = 'pg_dump' | 'pg_restore' | 'psql' | 'pg_basebackup' | 'pg_verifybackup' | 'pg_ctl';

/**
 * A client tool binary: $JARVIS_PG_BINDIR, then Debian's /usr/lib/postgresql/<major>/bin for
 * the server's major or a newer one, then PATH.
 */
export function findPostgresTool(name: PostgresTool, serverMajor: number, env: NodeJS.ProcessEnv = process.env): string {
  if (env.JARVIS_PG_BINDIR) return join(env.JARVIS_PG_BINDIR, name);
  const root = '/usr/lib/postgresql';
  if (existsSync(join(root, String(serverMajor), 'bin', name))) return join(root, String(serverMajor), 'bin', name);
  if (existsSync(root)) {
    const majors = readdirSync(root).map(Number).filter((n) => n >= serverMajor).sort((a, b) => b - a);
    for (const m of majors) if (existsSync(join(root, String(m), 'bin', name))) return join(root, String(m), 'bin', name);
  }
  return name;
}
