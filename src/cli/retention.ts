/**
 * `jarvis-db retention preview|run`: the retention part of a plan, and running it now through
 * the engine (lock, journal, confirmation of destructive actions). Flags → src/retention/
 * operations → the engine's renderers. Heavy modules are imported inside the actions.
 */
import type { Command } from 'commander';
import { colors, durationFlag, exitWith, globalOptions, loadDesired, note, print } from './common.js';

export function define(program: Command): void {
  const retention = program.command('retention').description('Preview or run the data retention policies');

  retention
    .command('preview')
    .description('What each policy would touch now, in rows, without changing anything')
    .option('--policy <name>', 'only this policy')
    .action(async (opts: { policy?: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { previewRetention } = await import('../retention/operations.js');
      const { plan, policies } = await previewRetention(desired, { ...(opts.policy ? { policy: opts.policy } : {}), env: process.env });
      if (g.json) {
        const { renderPlanJson } = await import('../render/json.js');
        const { redactUrl } = await import('../services/redact.js');
        process.stdout.write(redactUrl(JSON.stringify({ ...JSON.parse(renderPlanJson(plan)) as object, policies }, null, 2) + '\n'));
      } else {
        const { renderPlanText } = await import('../render/text.js');
        const { renderPolicyPreviews } = await import('../retention/render.js');
        if (policies.length) print(renderPolicyPreviews(policies) + '\n');
        print(renderPlanText(plan, colors(g)));
      }
      if (plan.errors.length) exitWith(1);
    });

  retention
    .command('run')
    .description('Run the retention policies now, under the apply lock (destructive actions need a yes or --auto-approve)')
    .option('--policy <name>', 'only this policy')
    .option('--auto-approve', 'run destructive actions (delete, anonymize, compress, archive expiry) without asking')
    .option('--lock-timeout <duration>', 'how long to wait for another apply on the same storage to finish', '60s')
    .action(async (opts: { policy?: string; autoApprove?: boolean; lockTimeout: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const lockTimeoutMs = await durationFlag('--lock-timeout', opts.lockTimeout);
      const desired = await loadDesired(g);
      const { runRetentionNow } = await import('../retention/operations.js');
      const text = await import('../render/text.js');
      const { applyReporter } = await import('../render/progress.js');
      const controller = new AbortController();
      const stop = (signal: NodeJS.Signals) => { note(`${signal}: stopping after the current batch…`); controller.abort(); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const result = await runRetentionNow(desired, {
          ...(opts.policy ? { policy: opts.policy } : {}),
          env: process.env, lockTimeoutMs, signal: controller.signal,
          reporter: await applyReporter(colors(g, process.stderr), g.json),
          confirmDestructive: async (plan) => {
            if (opts.autoApprove) return true;
            if (!process.stdin.isTTY || !process.stderr.isTTY) return false;
            process.stderr.write(text.renderPlanText(plan, colors(g, process.stderr)) + '\n');
            const { createInterface } = await import('node:readline/promises');
            const rl = createInterface({ input: process.stdin, output: process.stderr });
            try {
              return (await rl.question("Run the destructive actions? Only 'yes' goes on: ")).trim() === 'yes';
            } finally {
              rl.close();
            }
          },
        });
        if (g.json) {
          const { renderRunJson } = await import('../render/json.js');
          print(renderRunJson(result));
        } else print(text.renderRunText(result, colors(g)));
        if (result.status === 'failed' || result.status === 'cancelled') exitWith(1);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
