/**
 * `jarvis-db init [--seed [--scale N]]`: create the database and its extensions, migrate to
 * schema.target, and optionally load the JARVIS dataset (the benchmarks' data).
 */
import type { Command } from 'commander';
import { globalOptions, loadDesired, note, print, printJson } from './common.js';

interface InitFlags {
  seed?: boolean;
  scale: string;
  to?: string;
  lockTimeout: string;
}

export function define(program: Command): void {
  program
    .command('init')
    .description('Create the database, its extensions and schema; optionally seed data')
    .option('--seed', 'load the generated JARVIS dataset (users, conversations, messages, memory, metrics, sessions, cache)')
    .option('--scale <n>', 'dataset size with --seed: 1 ≈ 700 MB, 0.1 ≈ 70 MB', '1')
    .option('--to <name>', 'migrate to this migration instead of schema.target')
    .option('--lock-timeout <duration>', 'wait this long for an apply or a migration on the same storage or database to finish (0: fail at once)', '60s')
    .action(async (opts: InitFlags, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError } = await import('../errors.js');
      const scale = Number(opts.scale);
      if (!Number.isFinite(scale) || scale <= 0) throw new JarvisError('USAGE', `--scale must be a positive number (got "${opts.scale}")`);
      const desired = await loadDesired(g);
      const { parseDuration } = await import('../config/durations.js');
      const { initDatabase } = await import('../migrate/init.js');
      const { formatInit } = await import('../migrate/render.js');
      const { progressFor } = await import('../render/progress.js');
      const progress = opts.seed ? await progressFor('seed', g.json) : undefined;
      const result = await initDatabase(desired, {
        to: opts.to,
        seed: opts.seed ? { scale, progress } : undefined,
        lockTimeoutMs: opts.lockTimeout === '0' ? 0 : parseDuration(opts.lockTimeout) * 1000,
        note: g.json ? undefined : note,
      }).finally(() => progress?.stop());
      if (g.json) printJson(result);
      else print(formatInit(result));
    });
}
