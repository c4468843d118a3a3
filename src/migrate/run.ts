/**
 * Executing migrations: through node-pg-migrate's runner, under its advisory lock, one
 * migration per transaction. The SHA-256 of the file that ran is recorded in jarvis-db's own
 * table inside that same transaction, so history and checksums never disagree. Every step is
 * re-checked under the lock against a fresh observation before it runs.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type pg from 'pg';
import { builtInLoaders, type MigrationUnit } from 'node-pg-migrate/migrationLoader';
import type { MigrationAction } from 'node-pg-migrate/migration';
import { PG_MIGRATE_LOCK_ID, runner } from 'node-pg-migrate/runner';
import { getActions } from 'node-pg-migrate/sqlMigration';
import type { MigrationBuilder } from 'node-pg-migrate/migrationBuilder';
import { JarvisError, messageOf } from '../errors.js';
import { plural } from '../render/format.js';
import { connectPostgres, databaseOf, sqlState } from '../services/postgres.js';
import { readMigrationFiles, sha256, sqlSections } from './files.js';
import { CHECKSUM_TABLE, MIGRATIONS_SCHEMA, MIGRATIONS_TABLE, readApplied, type MigrateObserved } from './observe.js';
import { checkHistory, planMigrationSteps, type MigratePlan, type MigrateRequest, type MigrateStepParams } from './plan.js';

export { PG_MIGRATE_LOCK_ID };

export interface RunOptions {
  /** How long to wait for another migration to release the lock; 0 fails at once. */
  lockTimeoutMs: number;
  /** One line per step as it starts ("applying 0003_memory"). */
  note?: (message: string) => void;
  /** Structured events (the runner's own log lines, durations). */
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

export interface StepOutcome {
  step: MigrateStepParams;
  ms: number;
}

const MIGRATION_EXTENSIONS = ['.sql', '.js', '.cjs', '.mjs', '.ts', '.cts', '.mts'];

/** The connection's pid holding node-pg-migrate's lock on this database, if any. */
async function lockHolder(client: pg.ClientBase): Promise<string> {
  const id = BigInt(PG_MIGRATE_LOCK_ID);
  const { rows } = await client.query<{ pid: number; application_name: string }>(
    `SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1`,
    [String(id >> 32n), String(id & 0xffffffffn)],
  );
  const r = rows[0];
  return r ? `pid ${r.pid}${r.application_name ? ` (${r.application_name})` : ''}` : 'another session';
}

/**
 * Runs `fn` holding node-pg-migrate's advisory lock (the same lock id, so a plain
 * `node-pg-migrate up` elsewhere is excluded too). A session lock: a killed process cannot
 * leave it behind.
 */
export async function withMigrationLock<T>(client: pg.ClientBase, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  let acquired: boolean;
  if (timeoutMs <= 0) {
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [PG_MIGRATE_LOCK_ID]);
    acquired = Boolean(rows[0]?.ok);
  } else {
    await client.query(`SET lock_timeout = ${Math.ceil(timeoutMs)}`);
    try {
      await client.query('SELECT pg_advisory_lock($1)', [PG_MIGRATE_LOCK_ID]);
      acquired = true;
    } catch (e) {
      if (sqlState(e) !== '55P03') throw e;
      acquired = false;
    } finally {
      await client.query('RESET lock_timeout');
    }
  }
  if (!acquired) {
    const holder = await lockHolder(client);
    throw new JarvisError('LOCK_TIMEOUT', `another migration is running on this database (${holder} holds the migration lock); gave up after ${Math.round(timeoutMs / 1000)} s`, {
      hint: 'wait for it to finish and run again, or wait longer with --lock-timeout',
    });
  }
  try {
    return await fn();
  } finally {
    // A failed step leaves node-pg-migrate's transaction open and its own lock level held.
    await client.query('ROLLBACK').catch(() => undefined);
    await client.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
  }
}

async function ensureChecksumTable(client: pg.ClientBase): Promise<void> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_SCHEMA}.${CHECKSUM_TABLE} (
    name       text PRIMARY KEY,
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  await client.query(`COMMENT ON TABLE ${MIGRATIONS_SCHEMA}.${CHECKSUM_TABLE} IS 'jarvis-db: SHA-256 of each migration file when it was applied (drift detection)'`);
}

interface LoadedSource {
  content: string;
  upStart: number;
  downStart: number;
}

/** What the loader and the error mapping share during one runner call. */
interface RunState {
  /** The planned steps of this run, by migration name. */
  steps: Map<string, MigrateStepParams>;
  sources: Map<string, LoadedSource>;
  /** The migration whose action ran last: the one a failure belongs to. */
  current?: string;
  /** A rehearsal: after this migration the transaction is aborted on purpose. */
  rehearseUntil?: string;
}

const REHEARSAL_DONE = 'jarvis-db rehearsal: every step ran, rolling back';

/**
 * A loader for node-pg-migrate that adds, inside each migration's own transaction, the
 * statement that records (up) or forgets (down) its file's checksum; and refuses to run a
 * planned step whose file is no longer the one that was planned.
 */
function checksummingLoader(client: pg.ClientBase, state: RunState) {
  const table = `${MIGRATIONS_SCHEMA}.${CHECKSUM_TABLE}`;
  const literal = (s: string) => client.escapeLiteral(s);
  const call = async (action: MigrationAction, pgm: MigrationBuilder) => {
    if (action.length === 2) await new Promise<void>((resolve) => { void action(pgm, resolve); });
    else await action(pgm);
  };
  const wrap = (name: string, file: string, action: MigrationAction, bookkeeping: string): MigrationAction => async (pgm: MigrationBuilder) => {
    state.current = name;
    await call(action, pgm);
    pgm.sql(bookkeeping);
    if (state.rehearseUntil === undefined) return;
    // A migration outside a transaction would commit the rehearsal half-way: refuse before any of its SQL runs.
    if (!pgm.isUsingTransaction()) throw new JarvisError('USAGE', `migration ${file} runs outside a transaction (noTransaction), so it cannot be rehearsed`);
    if (name === state.rehearseUntil) pgm.sql(`DO $$ BEGIN RAISE EXCEPTION '${REHEARSAL_DONE}'; END $$`);
  };
  return async (filePaths: string[]): Promise<MigrationUnit[]> => {
    const units: MigrationUnit[] = [];
    for (const path of filePaths) {
      const bytes = await readFile(path);
      const file = path.slice(path.lastIndexOf('/') + 1);
      const name = file.slice(0, file.length - extname(file).length);
      let actions;
      if (extname(path).toLowerCase() === '.sql') {
        const content = bytes.toString('utf8');
        state.sources.set(name, { content, ...sqlSections(content) });
        actions = getActions(content);
      } else {
        actions = (await builtInLoaders.default([path]))[0]!.actions;
      }
      const digest = sha256(bytes);
      const step = state.steps.get(name);
      if (step?.direction === 'up' && step.sha256 !== null && digest !== step.sha256) {
        throw new JarvisError('STALE_PLAN', `migration file ${step.file} changed since the plan was made`, { hint: 'run plan again' });
      }
      const { up, down } = actions;
      if (step?.direction === 'down' && down === undefined) {
        throw new JarvisError('MIGRATION_FAILED', `migration ${step.file} exports no down: jarvis-db needs an explicit one (or down = false when it cannot be undone)`);
      }
      units.push({
        id: path,
        filePaths: [path],
        actions: {
          ...actions,
          up: typeof up === 'function'
            ? wrap(name, file, up, `INSERT INTO ${table} (name, sha256, applied_at) VALUES (${literal(name)}, ${literal(digest)}, now())
                       ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = EXCLUDED.applied_at`)
            : up,
          down: typeof down === 'function' ? wrap(name, file, down, `DELETE FROM ${table} WHERE name = ${literal(name)}`) : down,
        },
      });
    }
    return units;
  };
}

/** "line 12" of the file for an error with a position in a SQL migration's section. */
function errorLine(e: unknown, step: MigrateStepParams, sources: Map<string, LoadedSource>): string {
  const position = Number((e as { position?: string }).position);
  const source = sources.get(step.name);
  if (!source || !Number.isFinite(position) || position < 1) {
    const where = (e as { where?: string }).where;
    return where ? ` (${where.split('\n')[0]})` : '';
  }
  const start = step.direction === 'up' ? Math.max(0, source.upStart) : source.downStart;
  const line = source.content.slice(0, start + position - 1).split('\n').length;
  return ` at line ${line}`;
}

/** A runner failure as one line naming the migration, where in its file, and the SQL error. */
function failure(e: unknown, state: RunState, fallback: MigrateStepParams, after: string): JarvisError {
  if (e instanceof JarvisError) return e;
  if (e instanceof Error && e.cause instanceof JarvisError) return e.cause;
  const step = (state.current && state.steps.get(state.current)) || fallback;
  const code = sqlState(e);
  const detail = (e as { detail?: string }).detail;
  return new JarvisError('MIGRATION_FAILED',
    `migration ${step.file} failed${errorLine(e, step, state.sources)}: ${messageOf(e)}${detail ? ` (${detail})` : ''}${code ? ` [SQLSTATE ${code}]` : ''}; ${after}`,
    { cause: e, hint: `fix ${step.file} and run again` });
}

function runnerOptions(client: pg.ClientBase, directory: string, state: RunState, options: RunOptions) {
  const log = (level: string) => (msg: string) => options.log?.('migrate.runner', { level, message: msg.trim() });
  return {
    dbClient: client,
    dir: directory,
    migrationsTable: MIGRATIONS_TABLE,
    migrationsSchema: MIGRATIONS_SCHEMA,
    checkOrder: true,
    advisoryLockMode: 'fail' as const,
    logger: { info: log('info'), warn: log('warn'), error: log('error') },
    migrationLoaderStrategies: [{ extensions: MIGRATION_EXTENSIONS, loader: checksummingLoader(client, state) }],
  };
}

/** Runs one planned step; the lock is held by the caller. */
async function runStep(client: pg.ClientBase, directory: string, step: MigrateStepParams, options: RunOptions): Promise<StepOutcome> {
  const fresh = { directory, ...(await readMigrationFiles(directory)), applied: await readApplied(client) };
  const problems = [...fresh.problems, ...checkHistory(fresh)];
  if (problems.length) {
    throw new JarvisError('MIGRATION_DRIFT', `cannot ${step.direction === 'up' ? 'apply' : 'roll back'} ${step.name}: ${problems[0]}`, {
      details: problems.slice(1), hint: 'restore the migration files as they were applied; put changes in a new migration',
    });
  }
  const version = fresh.applied.at(-1)?.name ?? '0';
  if (step.direction === 'up') {
    const next = fresh.files[fresh.applied.length];
    if (next?.name !== step.name) {
      throw new JarvisError('STALE_PLAN', `migration ${step.name} is not the next one to apply: the schema is at ${version}${next ? ` and ${next.name} comes next` : ', the latest'}`, { hint: 'run plan again' });
    }
  } else if (version !== step.name) {
    throw new JarvisError('STALE_PLAN', `migration ${step.name} is not the last one applied: the schema is at ${version}`, { hint: 'run plan again' });
  }
  await ensureChecksumTable(client);
  const state: RunState = { steps: new Map([[step.name, step]]), sources: new Map() };
  options.note?.(`${step.direction === 'up' ? 'applying' : 'rolling back'} ${step.file}`);
  const started = Date.now();
  try {
    await runner({ ...runnerOptions(client, directory, state, options), direction: step.direction, file: step.name, count: 1, singleTransaction: false });
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw failure(e, state, step, `rolled back, the schema is still at ${version}`);
  }
  const ms = Date.now() - started;
  options.log?.('migrate.step', { name: step.name, direction: step.direction, ms });
  return { step, ms };
}

/**
 * Runs the steps for real, all in one transaction that is then rolled back: proof that they
 * apply to this database as it is, leaving it unchanged (they take their locks meanwhile).
 * Returns the milliseconds it took.
 */
async function rehearseSteps(client: pg.ClientBase, directory: string, steps: MigrateStepParams[], options: RunOptions): Promise<number> {
  const state: RunState = { steps: new Map(steps.map((s) => [s.name, s])), sources: new Map(), rehearseUntil: steps.at(-1)!.name };
  options.note?.(`rehearsing ${plural(steps.length, 'step')} in one transaction`);
  const started = Date.now();
  // The outer transaction also holds what the runner sets up first (its history table).
  await client.query('BEGIN');
  try {
    await ensureChecksumTable(client);
    await runner({ ...runnerOptions(client, directory, state, options), direction: steps[0]!.direction, count: steps.length, singleTransaction: true });
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (messageOf(e) === REHEARSAL_DONE) return Date.now() - started;
    throw failure(e, state, steps[0]!, 'the rehearsal was rolled back, nothing changed');
  }
  await client.query('ROLLBACK');
  throw new JarvisError('INTERNAL', 'the rehearsal ended before its last step ran; rolled back, nothing changed');
}

/** Connects, takes the lock, runs `fn`, releases everything. */
async function withLockedClient<T>(url: string, options: RunOptions, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectPostgres(url, { applicationName: 'jarvis-db migrate' });
  try {
    // If jarvis-db dies mid-migration, the server notices within a second even during a long
    // statement and rolls back, instead of finishing it for nobody while holding the lock.
    await client.query(`DO $$ BEGIN IF current_setting('server_version_num')::int >= 140000 THEN SET client_connection_check_interval = '1s'; END IF; END $$`);
    return await withMigrationLock(client, options.lockTimeoutMs, () => fn(client));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** One step of a saved plan (the engine's handler): re-checked under the lock, then run. */
export async function executeStep(url: string, directory: string, step: MigrateStepParams, options: RunOptions): Promise<StepOutcome> {
  return withLockedClient(url, options, (client) => runStep(client, directory, step, options));
}

/**
 * A rehearsal of a plan's steps (the engine's handler, `migrate up --rehearse`): under the lock,
 * checked to start at the applied version, run in one transaction and rolled back. Returns the
 * milliseconds it took.
 */
export async function rehearseLocked(url: string, directory: string, steps: MigrateStepParams[], options: RunOptions): Promise<number> {
  return withLockedClient(url, options, async (client) => {
    const version = (await readApplied(client)).at(-1)?.name ?? '0';
    if (steps[0]!.from !== version) {
      throw new JarvisError('STALE_PLAN', `the rehearsal starts at ${steps[0]!.from} but the schema is at ${version}`, { hint: 'run again' });
    }
    return rehearseSteps(client, directory, steps, options);
  });
}

export interface MigrateResult {
  plan: MigratePlan;
  /** The version before, a migration name or `0`. */
  from: string;
  done: StepOutcome[];
  /** Milliseconds the rehearsal took, when the steps were rehearsed instead of applied. */
  rehearsedMs: number | null;
}

/**
 * `migrate up/down` and `init`: under the lock, observe, plan with the same checks as
 * `jarvis-db plan`, and (unless dryRun) run every step in order. A second process waits for
 * the first, then finds nothing left to do.
 */
export async function migrateTo(
  url: string,
  directory: string,
  request: MigrateRequest,
  options: RunOptions & {
    dryRun?: boolean;
    /** Run the steps in one transaction and roll it back (see rehearseSteps). */
    rehearse?: boolean;
    /** Runs under the lock once the steps are known and before the first one (a backup). */
    beforeSteps?: (plan: MigratePlan) => Promise<void>;
  },
): Promise<MigrateResult> {
  return withLockedClient(url, options, async (client) => {
    const observed: MigrateObserved = {
      database: databaseOf(url), databaseExists: true, directory, ...(await readMigrationFiles(directory)),
      applied: await readApplied(client), embeddingType: null,
    };
    const plan = planMigrationSteps(observed, request);
    const from = observed.applied.at(-1)?.name ?? '0';
    if (plan.errors.length > 0) {
      throw new JarvisError(plan.errors.some((e) => /changed|vanished|out of order/.test(e.message)) ? 'MIGRATION_DRIFT' : 'PLAN_ERRORS', plan.errors[0]!.message, {
        details: plan.errors.slice(1).map((e) => e.message),
      });
    }
    const done: StepOutcome[] = [];
    const steps = plan.actions.map((a): MigrateStepParams => a.params);
    if (options.dryRun || steps.length === 0) return { plan, from, done, rehearsedMs: null };
    if (options.rehearse) return { plan, from, done, rehearsedMs: await rehearseSteps(client, directory, steps, options) };
    await options.beforeSteps?.(plan);
    for (const step of steps) done.push(await runStep(client, directory, step, options));
    return { plan, from, done, rehearsedMs: null };
  });
}
