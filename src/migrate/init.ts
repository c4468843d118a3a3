/**
 * `jarvis-db init`: the database (created if missing, through the `postgres` database), the
 * extensions the server offers, the migrations up to the target, and optionally the seed data.
 */
import type { Desired } from '../config/types.js';
import type { Handler, Progress, SeedDataset } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { connectAdmin, connectPostgres, databaseOf, postgresUrl, sqlState } from '../services/postgres.js';
import { migrationsDirectory } from './commands.js';
import { migrateTo, type MigrateResult } from './run.js';
import { seedDatabase, type SeedResult } from '../dataset/seed.js';

/** Extensions jarvis-db uses when the server has them: gen_random_uuid/digests, query stats, embeddings. */
export const WANTED_EXTENSIONS = ['pgcrypto', 'pg_stat_statements', 'vector'] as const;

export interface ExtensionOutcome {
  name: string;
  status: 'created' | 'present' | 'unavailable' | 'failed';
  note?: string;
}

export interface InitOptions {
  /** Migrate to this instead of schema.target. */
  to?: string;
  seed?: { scale: number; progress?: Progress };
  lockTimeoutMs: number;
  note?: (line: string) => void;
}

export interface InitResult {
  database: string;
  created: boolean;
  extensions: ExtensionOutcome[];
  migrations: MigrateResult;
  seed: SeedResult | null;
}

/** Creates the database named by the URL unless it exists; true when it created it. */
export async function ensureDatabase(url: string): Promise<boolean> {
  const database = databaseOf(url);
  const admin = await connectAdmin(url, { applicationName: 'jarvis-db init' });
  try {
    const { rows } = await admin.query<{ exists: boolean }>('SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists', [database]);
    if (rows[0]?.exists) return false;
    try {
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
      return true;
    } catch (e) {
      if (sqlState(e) === '42P04') return false; // created meanwhile by another init
      throw new JarvisError('SERVICE_ERROR', `cannot create database ${database}: ${messageOf(e)}`, { cause: e, hint: 'create it yourself, or give the configured user CREATEDB' });
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
}

export async function ensureExtensions(url: string): Promise<ExtensionOutcome[]> {
  const client = await connectPostgres(url, { applicationName: 'jarvis-db init' });
  try {
    const { rows } = await client.query<{ name: string; installed: string | null }>(
      'SELECT name, installed_version AS installed FROM pg_available_extensions WHERE name = ANY($1)', [WANTED_EXTENSIONS]);
    const { rows: [preload] } = await client.query<{ libs: string }>(`SELECT current_setting('shared_preload_libraries') AS libs`);
    const outcomes: ExtensionOutcome[] = [];
    for (const name of WANTED_EXTENSIONS) {
      const available = rows.find((r) => r.name === name);
      let outcome: ExtensionOutcome;
      if (!available) {
        outcome = { name, status: 'unavailable', note: name === 'vector' ? 'pgvector is not installed on the server: memory.embedding will be real[]' : 'not installed on the server' };
      } else if (available.installed) {
        outcome = { name, status: 'present' };
      } else {
        try {
          await client.query(`CREATE EXTENSION IF NOT EXISTS ${client.escapeIdentifier(name)}`);
          outcome = { name, status: 'created' };
        } catch (e) {
          outcome = { name, status: 'failed', note: messageOf(e) };
        }
      }
      if (name === 'pg_stat_statements' && outcome.status !== 'unavailable' && outcome.status !== 'failed' && !/pg_stat_statements/.test(preload?.libs ?? '')) {
        outcome.note = 'it collects nothing until shared_preload_libraries includes it, which needs a server restart';
      }
      outcomes.push(outcome);
    }
    return outcomes;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function initDatabase(desired: Desired, options: InitOptions): Promise<InitResult> {
  const url = postgresUrl(desired);
  const created = await ensureDatabase(url);
  const extensions = await ensureExtensions(url);
  const target = options.to ?? desired.schema?.target ?? 'latest';
  const migrations = await migrateTo(url, migrationsDirectory(desired), {
    target, allowDown: false, direction: 'up', targetSource: options.to ? '--to' : 'schema.target',
  }, { lockTimeoutMs: options.lockTimeoutMs, note: options.note });
  let seed: SeedResult | null = null;
  if (options.seed) {
    options.note?.(`seeding at scale ${options.seed.scale}`);
    seed = await seedDatabase(url, { scale: options.seed.scale, progress: options.seed.progress });
  }
  return { database: databaseOf(url), created, extensions, migrations, seed };
}

/** `init --seed` (command-only): the generated JARVIS dataset, into the migrated database. */
export const seedDatasetHandler: Handler<SeedDataset> = async (action, ctx, progress) => {
  const seed = await seedDatabase(postgresUrl(ctx.desired), { scale: action.params.scale, progress });
  return { summary: `seeded at scale ${seed.scale}: ${seed.counts.users} users, ${seed.counts.messages} messages`, details: { ...seed } };
};
