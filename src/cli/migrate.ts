/**
 * `jarvis-db migrate status | up | down | create`: direct schema migrations with the same checks
 * as `plan` (changed or vanished files, order, target, down opt-in), run by the engine: under the
 * storage's apply lock (then node-pg-migrate's advisory lock), journaled. Decisions live in src/migrate; this file maps flags to them and prints.
 */
import type { Command } from 'commander';
import { exitWith, globalOptions, loadDesired, note, print, printJson } from './common.js';

interface StepOptions {
  to?: string;
  dryRun?: boolean;
  rehearse?: boolean;
  lockTimeout: string;
  backup: boolean;
  allowDown?: boolean;
}

async function lockTimeoutMs(text: string): Promise<number> {
  if (text === '0') return 0;
  const { parseDuration } = await import('../config/durations.js');
  return parseDuration(text) * 1000;
}

async function runDirection(direction: 'up' | 'down', opts: StepOptions, cmd: Command): Promise<void> {
  const g = globalOptions(cmd);
  const desired = await loadDesired(g);
  const { migrateCommand } = await import('../migrate/commands.js');
  const result = await migrateCommand(desired, direction, {
    to: opts.to, dryRun: Boolean(opts.dryRun), rehearse: Boolean(opts.rehearse), allowDown: Boolean(opts.allowDown), backup: opts.backup,
    lockTimeoutMs: await lockTimeoutMs(opts.lockTimeout), note: g.json ? undefined : note,
  });
  const { text, ...data } = result;
  if (g.json) printJson(data);
  else print(text);
}

function stepFlags(command: Command): Command {
  return command
    .option('--dry-run', 'check and show the steps without running them')
    .option('--rehearse', 'run the steps in one transaction and roll it back: proves they apply here, changes nothing (takes their locks meanwhile)')
    .option('--lock-timeout <duration>', 'wait this long for another apply or migration to finish (0: fail at once)', '60s')
    .option('--no-backup', 'skip the PostgreSQL backup that schema.backupBefore asks for');
}

export function define(program: Command): void {
  const migrate = program.command('migrate').description('Show, apply and roll back schema migrations');

  migrate
    .command('status')
    .description('Applied and pending migrations, checksum drift, and what reaching schema.target takes')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { migrateStatus } = await import('../migrate/commands.js');
      const { text, ...status } = await migrateStatus(desired);
      if (g.json) printJson(status);
      else print(text);
      // Drift, a missing database or an impossible target: a failing status for CI.
      if (status.errors.length > 0) exitWith(1);
    });

  stepFlags(migrate.command('up').description('Apply pending migrations, up to the latest or --to NAME'))
    .option('--to <name>', 'stop at this migration (default: latest)')
    .action((opts: StepOptions, cmd: Command) => runDirection('up', opts, cmd));

  stepFlags(migrate.command('down').description('Roll back migrations (destructive): the last one, or down to --to NAME|0'))
    .option('--to <name>', 'roll back until this migration is the last applied; 0 rolls back everything')
    .option('--allow-down', 'allow down-migrations (or schema.allowDown: true in the config)')
    .action((opts: StepOptions, cmd: Command) => runDirection('down', opts, cmd));

  migrate
    .command('create <name>')
    .description('Create the next numbered SQL migration file in schema.migrations')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { migrationsDirectory } = await import('../migrate/commands.js');
      const { createMigrationFile } = await import('../migrate/files.js');
      const file = await createMigrationFile(migrationsDirectory(desired), name);
      if (g.json) printJson({ file });
      else print(`created ${file}\nWrite the change under "-- Up Migration" and its exact undo under "-- Down Migration".`);
    });
}
