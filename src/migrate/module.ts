/**
 * The `migrate` domain module: observe the applied migrations and the files (read-only), plan
 * the steps to `schema.target` (pure), and the handlers that run them. With
 * `schema.backupBefore` the steps require the PostgreSQL backup that the backup module plans
 * before them (src/backup/pre-change.ts).
 */
import type { Desired, SchemaSettings } from '../config/types.js';
import type { BackupObserved } from '../backup/module.js';
import { preChangeBackupId } from '../backup/pre-change.js';
import type { Action, DomainModule, ExecuteContext, Handler, MigrateDown, MigrateUp, Observed, Progress } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { formatDuration, plural } from '../render/format.js';
import { postgresUrl } from '../services/postgres.js';
import { describeSchemaChanges } from './describe.js';
import { observeMigrations, type MigrateObserved } from './observe.js';
import { planMigrations, requireBackupFirst, type MigratePlan, type MigrationStep } from './plan.js';

/** How long a handler waits for another migration (a plain node-pg-migrate run) to finish. */
export const HANDLER_LOCK_TIMEOUT_MS = 60_000;

function schemaOf(desired: Desired): SchemaSettings {
  if (!desired.schema) throw new JarvisError('CONFIG_INVALID', 'the config has no schema section', { hint: 'add schema: { migrations: ./migrations, target: latest }' });
  return desired.schema;
}

/**
 * The steps, with the backup they require first when `schema.backupBefore` (`all.backup`: the
 * backup module's observation, which tells which postgres schedule is due).
 */
export function withBackupBefore(desired: Desired, part: MigratePlan, now: Date, all: Observed): MigratePlan {
  if (!desired.schema?.backupBefore) return part;
  return requireBackupFirst(part, preChangeBackupId(desired, all.backup as BackupObserved | undefined, now));
}

export const migrateModule: DomainModule<MigrateObserved> = {
  name: 'migrate',
  appliesTo: (desired) => desired.schema !== undefined && desired.services.postgres !== undefined,
  observe: (ctx) => observeMigrations(postgresUrl(ctx.desired), schemaOf(ctx.desired).migrations),
  plan: (desired, observed, now, all) => withBackupBefore(desired, planMigrations(schemaOf(desired), observed), now, all),
  describeChange: describeSchemaChanges,
  fingerprint: (observed) => ({
    databaseExists: observed.databaseExists,
    applied: observed.applied.map((a) => [a.name, a.sha256]),
    files: observed.files.map((f) => [f.name, f.sha256]),
  }),
};

/** How long to wait for node-pg-migrate's lock: `migrate up --lock-timeout` puts it in the params. */
function lockTimeoutOf(action: MigrationStep): number {
  return action.params.lockTimeoutMs ?? HANDLER_LOCK_TIMEOUT_MS;
}

const isStep = (a: Action): a is MigrationStep => a.type === 'migrate_up' || a.type === 'migrate_down';

/**
 * `migrate up --rehearse`: every step of the plan marked `rehearse` runs in one transaction that
 * is rolled back. The first such action rehearses them all; the others only report that.
 */
async function rehearse(action: MigrationStep, ctx: ExecuteContext, progress: Progress) {
  const schema = schemaOf(ctx.desired);
  const rehearsed = ctx.plan.actions.filter(isStep).filter((a) => a.params.rehearse === true);
  const first = rehearsed[0]!;
  if (first.id !== action.id) {
    if (!ctx.outcomes.has(first.id)) throw new JarvisError('PLAN_INVALID', `${action.id} is rehearsed by ${first.id}, which did not run in this apply`);
    return { summary: `rehearsed with ${first.id}, rolled back`, details: { name: action.params.name, rehearsedMs: null } };
  }
  const { rehearseLocked } = await import('./run.js');
  const ms = await rehearseLocked(postgresUrl(ctx.desired), schema.migrations, rehearsed.map((a) => a.params), {
    lockTimeoutMs: lockTimeoutOf(action),
    note: (m) => progress.note(m),
    log: (event, fields) => ctx.log(event, fields),
  });
  return {
    summary: `rehearsed ${plural(rehearsed.length, 'step')} in one transaction in ${formatDuration(ms)}, rolled back; nothing changed`,
    details: { name: action.params.name, rehearsedMs: ms },
  };
}

async function execute(action: MigrationStep, ctx: ExecuteContext, progress: Progress) {
  const schema = schemaOf(ctx.desired);
  const step = action.params;
  if (step.direction === 'down' && !schema.allowDown) {
    throw new JarvisError('PLAN_INVALID', `the plan rolls back ${step.name} but schema.allowDown is not true in the config`, { hint: 'set schema.allowDown: true to allow down-migrations' });
  }
  if (action.params.rehearse === true) return rehearse(action, ctx, progress);
  const { executeStep } = await import('./run.js');
  const outcome = await executeStep(postgresUrl(ctx.desired), schema.migrations, step, {
    lockTimeoutMs: lockTimeoutOf(action),
    note: (m) => progress.note(m),
    log: (event, fields) => ctx.log(event, fields),
  });
  return {
    summary: `${step.direction === 'up' ? 'applied' : 'rolled back'} ${step.file} in ${formatDuration(outcome.ms)}; schema at ${step.to}`,
    details: { name: step.name, direction: step.direction, ms: outcome.ms, version: step.to },
  };
}

export const migrateUpHandler: Handler<MigrateUp> = execute;
export const migrateDownHandler: Handler<MigrateDown> = execute;

export const migrateHandlers = { migrate_up: migrateUpHandler, migrate_down: migrateDownHandler } as const;
