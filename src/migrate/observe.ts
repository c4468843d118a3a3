/**
 * Read-only observation of the schema's migration state: what node-pg-migrate says was applied
 * (its table, in its order), the SHA-256 jarvis-db recorded for each when it applied it, and the
 * files on disk. Never creates or changes anything (not even the bookkeeping tables).
 */
import type pg from 'pg';
import { connectPostgres, databaseOf, sqlState } from '../services/postgres.js';
import { readMigrationFiles, type MigrationFile } from './files.js';

/** node-pg-migrate's history table (its default name, so existing projects are recognised). */
export const MIGRATIONS_TABLE = 'pgmigrations';
/** jarvis-db's own table: the SHA-256 of each migration file when jarvis-db applied it. */
export const CHECKSUM_TABLE = 'jarvis_db_migrations';
export const MIGRATIONS_SCHEMA = 'public';

export interface AppliedMigration {
  name: string;
  /** node-pg-migrate's run_on, ISO 8601. */
  runOn: string;
  /** The file's SHA-256 when jarvis-db applied it; null when it was applied by something else. */
  sha256: string | null;
}

export interface MigrateObserved {
  /** The database name (never the URL: observations end up in plans and journals). */
  database: string;
  databaseExists: boolean;
  /** Absolute path of the migrations folder. */
  directory: string;
  files: MigrationFile[];
  /** Problems with the folder itself (missing, duplicate names). */
  problems: string[];
  /** In the order node-pg-migrate applied them. */
  applied: AppliedMigration[];
  /** What 0003_memory chose for memory.embedding (`vector` | `real[]`), once it ran. */
  embeddingType: string | null;
}

/** Whether files wait to be applied (the database may get tables and columns it lacks now). */
export function hasPendingMigrations(observed: MigrateObserved | undefined): boolean {
  if (!observed) return false;
  const applied = new Set(observed.applied.map((a) => a.name));
  return !observed.databaseExists || observed.files.some((f) => !applied.has(f.name));
}

export async function readApplied(client: pg.ClientBase): Promise<AppliedMigration[]> {
  const { rows: [exists] } = await client.query<{ history: boolean; checksums: boolean }>(
    `SELECT to_regclass($1) IS NOT NULL AS history, to_regclass($2) IS NOT NULL AS checksums`,
    [`${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`, `${MIGRATIONS_SCHEMA}.${CHECKSUM_TABLE}`],
  );
  if (!exists?.history) return [];
  const checksum = exists.checksums ? `(SELECT c.sha256 FROM ${MIGRATIONS_SCHEMA}.${CHECKSUM_TABLE} c WHERE c.name = m.name)` : 'NULL::text';
  const { rows } = await client.query<{ name: string; run_on: Date; sha256: string | null }>(
    `SELECT m.name, m.run_on, ${checksum} AS sha256 FROM ${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE} m ORDER BY m.run_on, m.id`,
  );
  return rows.map((r) => ({ name: r.name, runOn: r.run_on.toISOString(), sha256: r.sha256 }));
}

async function readEmbeddingType(client: pg.ClientBase): Promise<string | null> {
  const { rows: [settings] } = await client.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [`${MIGRATIONS_SCHEMA}.jarvis_db_settings`]);
  if (!settings?.present) return null;
  const { rows } = await client.query<{ value: string }>(`SELECT value FROM ${MIGRATIONS_SCHEMA}.jarvis_db_settings WHERE key = 'memory.embedding_type'`);
  return rows[0]?.value ?? null;
}

/** The database's side of the observation, on an open connection. */
export async function observeDatabase(client: pg.ClientBase): Promise<Pick<MigrateObserved, 'applied' | 'embeddingType'>> {
  return { applied: await readApplied(client), embeddingType: await readEmbeddingType(client) };
}

export async function observeMigrations(url: string, directory: string): Promise<MigrateObserved> {
  const { files, problems } = await readMigrationFiles(directory);
  const base = { database: databaseOf(url), directory, files, problems };
  let client: pg.Client;
  try {
    client = await connectPostgres(url, { applicationName: 'jarvis-db observe migrate' });
  } catch (e) {
    if (sqlState(e) === '3D000') return { ...base, databaseExists: false, applied: [], embeddingType: null };
    throw e;
  }
  try {
    return { ...base, databaseExists: true, ...(await observeDatabase(client)) };
  } finally {
    await client.end().catch(() => undefined);
  }
}
