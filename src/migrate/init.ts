/**
 * `jarvis-db init`: the database (created if missing, through the `postgres` database), the
 * extensions the server offers, the migrations up to the target, and optionally the seed data,
 * through the engine's apply.
 */
import type { Desired } from '../config/types.js';
import { newRecord, recording, throwIfFailed } from '../engine/command.js';
import type { EngineParts } from '../engine/index.js';
import type { DomainModule, Handler, Progress, SeedDataset } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { connectAdmin, connectPostgres, databaseOf, postgresUrl, sqlState } from '../services/postgres.js';
import { migrateReporter, migrateResultOf, refusal, requestModule, schemaSettings } from './commands.js';
import type { MigrateObserved } from './observe.js';
import type { MigrateRequest } from './plan.js';
import type { MigrateResult } from './run.js';
import { seedDatabase, type SeedResult } from '../dataset/seed.js';
import { checkStoresReady, seedStores, type StoreSeed } from '../dataset/seed-stores.js';

/** The seed of all three stores: the PostgreSQL rows, then the Chroma records and Redis keys made from them. */
export type SeedAllResult = SeedResult & { stores: StoreSeed[] };

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
  seed: SeedAllResult | null;
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

/**
 * `init` as a narrowed plan run by the engine's `apply` (docs/architecture.md §4 rule 6: the
 * apply lock, the journal): the database and its extensions first, under the lock and before
 * observation (the migrations are observed in that database); then the migrate_up steps to the
 * target and, with --seed, the seed_dataset action after them. A plan error (drift) refuses
 * as `migrate up` does; a failed step stops the run, the seed with it.
 */
export async function initDatabase(desired: Desired, options: InitOptions): Promise<InitResult> {
  const url = postgresUrl(desired);
  const { HANDLERS } = await import('../engine/registry.js');
  const { apply } = await import('../engine/index.js');
  const schema = schemaSettings(desired);
  // init never takes the pre-change backup (there is nothing to back up yet).
  const narrowed: Desired = { ...desired, schema: { ...schema, backupBefore: false } };
  const request: MigrateRequest = { target: options.to ?? schema.target, allowDown: false, direction: 'up', targetSource: options.to ? '--to' : 'schema.target' };
  const seen: { observed?: MigrateObserved } = {};
  const made: { created: boolean; extensions: ExtensionOutcome[] } = { created: false, extensions: [] };
  const steps = requestModule(request, { lockTimeoutMs: options.lockTimeoutMs }, seen);
  const seedAction: SeedDataset | null = options.seed ? {
    id: 'migrate.seed.jarvis', type: 'seed_dataset', module: 'migrate', target: `scale ${options.seed.scale}`,
    reason: 'requested (init --seed)', risk: 'safe', estimate: null, params: { scale: options.seed.scale },
  } : null;
  const module: DomainModule<MigrateObserved> = {
    ...steps,
    appliesTo: () => true,
    async beforeApply() {
      made.created = await ensureDatabase(url);
      made.extensions = await ensureExtensions(url);
      return [];
    },
    plan: (d, observed, now, all) => {
      const part = steps.plan(d, observed, now, all);
      return { ...part, actions: seedAction ? [...part.actions, seedAction] : part.actions };
    },
  };
  const record = newRecord();
  let seed: SeedAllResult | null = null;
  const parts: EngineParts = {
    modules: [module],
    handlers: { ...HANDLERS, migrate_up: recording(HANDLERS.migrate_up, record), seed_dataset: recording(seedDatasetHandlerWith((r) => { seed = r; }), record) },
  };
  const steady = migrateReporter({ note: options.note });
  const run = await apply({
    desired: narrowed, parts, lockTimeoutMs: options.lockTimeoutMs, probeServices: false,
    reporter: {
      ...steady,
      actionStarted: (action, index, total) => {
        if (action.type !== 'seed_dataset') return steady.actionStarted?.(action, index, total);
        options.note?.(`seeding at scale ${action.params.scale}`);
        return options.seed?.progress;
      },
    },
  });
  if (run.errors.length) throw refusal(run.errors);
  throwIfFailed(run, record);
  return { database: databaseOf(url), created: made.created, extensions: made.extensions, migrations: migrateResultOf(run.plan, seen.observed, record.outcomes, false), seed };
}

/** The seed_dataset handler; `onResult` gets the seed's result as it is (init prints it). */
function seedDatasetHandlerWith(onResult: (result: SeedAllResult) => void = () => undefined): Handler<SeedDataset> {
  return async (action, ctx, progress) => {
    const url = postgresUrl(ctx.desired);
    // Refused before any row is written: a seed fills empty stores.
    await checkStoresReady(ctx.desired);
    const rows = await seedDatabase(url, { scale: action.params.scale, progress });
    const seed: SeedAllResult = { ...rows, stores: await seedStores(ctx.desired, url, { progress }) };
    onResult(seed);
    return { summary: `seeded at scale ${seed.scale}: ${seed.counts.users} users, ${seed.counts.messages} messages`, details: { ...seed } };
  };
}

/** `init --seed` (command-only): the generated JARVIS dataset, into the migrated database. */
export const seedDatasetHandler: Handler<SeedDataset> = seedDatasetHandlerWith();
