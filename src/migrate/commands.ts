/**
 * What `jarvis-db migrate ...` does, as functions of the config (I/O; the decisions are in
 * plan.ts): status, up/down with an optional backup first, and the migrations folder.
 */
import { resolve, dirname } from 'node:path';
import type { Desired } from '../config/types.js';
import type { PlanError, Progress } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { postgresUrl } from '../services/postgres.js';
import { observeMigrations, type MigrateObserved } from './observe.js';
import { planMigrations } from './plan.js';
import { addPreChangeBackup, preChangeBackupOf } from '../engine/planner.js';
import { formatSteps, stepLines, versionAfter, type StepLine } from './render.js';
import { migrateTo } from './run.js';
import { formatStatus, migrationStatus, type MigrationStatus } from './status.js';

/** schema.migrations, or ./migrations beside the config when the config has no schema section. */
export function migrationsDirectory(desired: Desired): string {
  return desired.schema?.migrations ?? resolve(dirname(desired.configFile), 'migrations');
}

function schemaSettings(desired: Desired) {
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
  lockTimeoutMs: number;
  note?: (line: string) => void;
}

export interface MigrateCommandResult {
  from: string;
  to: string;
  dryRun: boolean;
  rehearsed: boolean;
  backup: string | null;
  steps: StepLine[];
  text: string;
}

const quietProgress = (note?: (line: string) => void): Progress => ({ note: (m) => note?.(`backup: ${m}`), update: () => undefined });

export async function migrateCommand(desired: Desired, direction: 'up' | 'down', options: MigrateCommandOptions): Promise<MigrateCommandResult> {
  const schema = schemaSettings(desired);
  let backup: string | null = null;
  const result = await migrateTo(postgresUrl(desired), schema.migrations, {
    target: options.to ?? (direction === 'up' ? 'latest' : 'previous'),
    allowDown: options.allowDown || schema.allowDown,
    direction,
    targetSource: options.to ? '--to' : 'the target',
  }, {
    dryRun: options.dryRun,
    rehearse: options.rehearse,
    lockTimeoutMs: options.lockTimeoutMs,
    note: options.note,
    beforeSteps: async (plan) => {
      if (!options.backup || !schema.backupBefore) return;
      const errors: PlanError[] = [];
      const placed = addPreChangeBackup({ ...desired, schema }, plan.actions, errors);
      if (errors.length) throw new JarvisError('CONFIG_INVALID', errors[0]!.message, { hint: 'or run with --no-backup' });
      const ops = await import('../backup/operations.js');
      options.note?.(`backing up PostgreSQL first (schema.backupBefore)`);
      const entry = await ops.createBackup(desired, ops.scheduleByName(desired, preChangeBackupOf(placed)!.params.schedule), process.env, quietProgress(options.note));
      backup = entry.manifest.id;
    },
  });
  const steps = stepLines(result);
  const text = formatSteps(result, { dryRun: options.dryRun, backup });
  return { from: result.from, to: versionAfter(result), dryRun: options.dryRun, rehearsed: result.rehearsedMs !== null, backup, steps, text };
}
