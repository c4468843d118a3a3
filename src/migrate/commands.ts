/**
 * What `jarvis-db migrate ...` does, as functions of the config (I/O; the decisions are in
 * plan.ts): status, up/down (a narrowed plan through the engine's apply), and the migrations folder.
 */
import { resolve, dirname } from 'node:path';
import type { Desired } from '../config/types.js';
import type { ApplyReporter, EngineParts } from '../engine/index.js';
import { newRecord, recording } from '../engine/command.js';
import type { ActionOutcome, DomainModule, Plan, PlanError, RunResult } from '../engine/types.js';
import { JarvisError, type ErrorCode } from '../errors.js';
import { formatDuration } from '../render/format.js';
import { postgresUrl } from '../services/postgres.js';
import { withPreChangeBackup } from '../backup/pre-change.js';
import { migrateModule, withBackupBefore } from './module.js';
import { observeMigrations, type MigrateObserved } from './observe.js';
import { planMigrationSteps, planMigrations, type MigrateRequest, type MigrateStepParams, type MigrationStep } from './plan.js';
import { formatSteps, stepLines, versionAfter, type StepLine } from './render.js';
import type { MigrateResult } from './run.js';
import { formatStatus, migrationStatus, type MigrationStatus } from './status.js';

/** schema.migrations, or ./migrations beside the config when the config has no schema section. */
export function migrationsDirectory(desired: Desired): string {
  return desired.schema?.migrations ?? resolve(dirname(desired.configFile), 'migrations');
}

export function schemaSettings(desired: Desired) {
  return desired.schema ?? { migrations: migrationsDirectory(desired), target: 'latest', allowDown: false, backupBefore: false };
}

export async function migrateStatus(desired: Desired): Promise<MigrationStatus & { target: string; steps: string[]; errors: string[]; text: string }> {
  const schema = schemaSettings(desired);
  const observed: MigrateObserved = await observeMigrations(postgresUrl(desired), schema.migrations);
  const plan = planMigrations(schema, observed);
  const status = migrationStatus(observed);
  return {
    ...status, target: schema.target,
    steps: plan.actions.map((a) => `${a.type === 'migrate_up' ? '+' : '-'} ${a.target}`),
    errors: plan.errors.map((e) => e.message),
    text: formatStatus(status, schema.target, plan),
  };
}

export interface MigrateCommandOptions {
  to?: string;
  dryRun: boolean;
  /** Run the steps in one transaction and roll it back. */
  rehearse: boolean;
  allowDown: boolean;
  /** Take the backup schema.backupBefore asks for (before the first step). */
  backup: boolean;
  /** How long to wait for the apply lock of the storage (and then node-pg-migrate's lock). */
  lockTimeoutMs: number;
  note?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface MigrateCommandResult {
  from: string;
  to: string;
  dryRun: boolean;
  rehearsed: boolean;
  backup: string | null;
  steps: StepLine[];
  /** The run's id and journal file (null for a dry run, which writes nothing). */
  runId: string | null;
  journal: string | null;
  text: string;
}

/**
 * The migrate module narrowed to one request (`--to`, the direction, the down opt-in): its plan
 * is the steps to that target, not to schema.target. `seen` keeps what it observed (the version
 * before, for the output).
 */
export function requestModule(request: MigrateRequest, extra: Pick<MigrateStepParams, 'lockTimeoutMs' | 'rehearse'>, seen: { observed?: MigrateObserved }): DomainModule<MigrateObserved> {
  return {
    ...migrateModule,
    observe: async (ctx) => (seen.observed = await migrateModule.observe(ctx)),
    plan: (desired, observed, now, all) => {
      const part = planMigrationSteps(observed, request);
      const steps = part.actions.map((a): MigrationStep => (a.type === 'migrate_up' ? { ...a, params: { ...a.params, ...extra } } : { ...a, params: { ...a.params, ...extra } }));
      return withBackupBefore(desired, { ...part, actions: steps }, now, all);
    },
  };
}

/**
 * The backup module narrowed to the backup schema.backupBefore asks for before the steps of
 * the request: a fresh one of the first postgres schedule (the catalog is not read, so no
 * schedule counts as due, as `withBackupBefore` sees it too).
 */
function preChangeBackupModule(request: MigrateRequest): DomainModule<null> {
  return {
    name: 'backup',
    appliesTo: (desired) => desired.schema?.backupBefore === true,
    observe: async () => null,
    plan: (desired, observed, now, all) => {
      const migrate = all.migrate as MigrateObserved | undefined;
      const migrating = migrate !== undefined && planMigrationSteps(migrate, request).actions.length > 0;
      return { actions: migrating ? withPreChangeBackup(desired, [], observed, now) : [], findings: [], errors: [] };
    },
    fingerprint: () => null,
  };
}

/** A plan's errors as the one error `migrate up/down` has always refused with. */
export function refusal(errors: readonly PlanError[]): JarvisError {
  const first = errors[0]!;
  const drift = errors.some((e) => /changed|vanished|out of order/.test(e.message));
  return new JarvisError(drift ? 'MIGRATION_DRIFT' : 'PLAN_ERRORS', first.message, {
    details: errors.slice(1).map((e) => e.message),
    ...(first.path === 'schema.backupBefore' ? { hint: 'or run with --no-backup' } : {}),
  });
}

/**
 * `migrate up|down`: the migrate module's steps to the requested target, with the pre-change
 * backup when schema.backupBefore (unless --no-backup), as a narrowed plan run by the engine's
 * `apply`: under the storage's apply lock, journaled, stopping at the first failure. A dry run
 * only plans. A second process waits for the first, then finds nothing left to do.
 */
export async function migrateCommand(desired: Desired, direction: 'up' | 'down', options: MigrateCommandOptions): Promise<MigrateCommandResult> {
  const env = options.env ?? process.env;
  const schema = schemaSettings(desired);
  const allowDown = options.allowDown || schema.allowDown;
  // The opt-ins of the command line are the config of this run: the handler checks allowDown,
  // the backup comes from backupBefore (never for a dry run or a rehearsal).
  const narrowed: Desired = { ...desired, schema: { ...schema, allowDown, backupBefore: schema.backupBefore && options.backup && !options.rehearse } };
  const request: MigrateRequest = {
    target: options.to ?? (direction === 'up' ? 'latest' : 'previous'), allowDown, direction, targetSource: options.to ? '--to' : 'the target',
  };
  const seen: { observed?: MigrateObserved } = {};
  const extra = { lockTimeoutMs: options.lockTimeoutMs, ...(options.rehearse ? { rehearse: true } : {}) };
  const { HANDLERS } = await import('../engine/registry.js');
  const record = newRecord();
  const { outcomes } = record;
  const parts: EngineParts = {
    modules: [requestModule(request, extra, seen), preChangeBackupModule(request)],
    handlers: { ...HANDLERS, create_backup: recording(HANDLERS.create_backup, record), migrate_up: recording(HANDLERS.migrate_up, record), migrate_down: recording(HANDLERS.migrate_down, record) },
  };
  const engine = await import('../engine/index.js');
  let plan: Plan;
  let run: RunResult | null = null;
  if (options.dryRun) {
    plan = (await engine.makePlan({ desired: narrowed, parts, env })).plan;
    if (plan.errors.length) throw refusal(plan.errors);
  } else {
    run = await engine.apply({ desired: narrowed, parts, env, lockTimeoutMs: options.lockTimeoutMs, reporter: migrateReporter(options) });
    plan = run.plan;
    if (run.errors.length) throw refusal(run.errors);
    const failed = run.results.find((r) => r.status === 'failed');
    if (failed?.error) throw new JarvisError(failed.error.code as ErrorCode, failed.error.message, failed.error.hint ? { hint: failed.error.hint } : {});
  }
  const pre = plan.actions.find((a) => a.type === 'create_backup');
  const backup = pre ? String(outcomes.get(pre.id)?.details?.id ?? '') || null : null;
  const result = migrateResultOf(plan, seen.observed, outcomes, options.rehearse);
  const text = formatSteps(result, { dryRun: options.dryRun, backup, ...(options.dryRun && pre ? { backupSchedule: pre.target } : {}) });
  return {
    from: result.from, to: versionAfter(result), dryRun: options.dryRun, rehearsed: result.rehearsedMs !== null, backup,
    steps: stepLines(result), runId: run?.runId ?? null, journal: run?.journalFile ?? null, text,
  };
}

/** The steps of a run's plan and what each did, as `migrate up/down` and `init` report them. */
export function migrateResultOf(plan: Plan, observed: MigrateObserved | undefined, outcomes: ReadonlyMap<string, ActionOutcome>, rehearse: boolean): MigrateResult {
  const steps = plan.actions.filter((a): a is MigrationStep => a.type === 'migrate_up' || a.type === 'migrate_down');
  const rehearsedMs = rehearse && steps[0] ? Number(outcomes.get(steps[0].id)?.details?.rehearsedMs ?? 0) : null;
  return {
    plan: { actions: steps, findings: [], errors: [] },
    from: observed?.applied.at(-1)?.name ?? '0',
    done: rehearse ? [] : steps.filter((a) => outcomes.has(a.id)).map((a) => ({ step: a.params, ms: Number(outcomes.get(a.id)!.details?.ms ?? 0) })),
    rehearsedMs: steps.length ? rehearsedMs : null,
  };
}

/** The lines `migrate up/down` shows while it runs: the lock wait, each step, the backup first. */
export function migrateReporter(options: Pick<MigrateCommandOptions, 'note'>): ApplyReporter {
  const note = options.note;
  if (!note) return {};
  return {
    waitingForLock: (owner, timeoutMs) => note(`waiting up to ${formatDuration(timeoutMs)} for the apply lock (held by ${owner ? `pid ${owner.pid}, run ${owner.runId}, since ${owner.since}` : 'another process'})…`),
    actionStarted: (action) => {
      if (action.type !== 'create_backup') return { note: (m) => note(m), update: () => undefined };
      note('backing up PostgreSQL first (schema.backupBefore)');
      return { note: (m) => note(`backup: ${m}`), update: () => undefined };
    },
  };
}
