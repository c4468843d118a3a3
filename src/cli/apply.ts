/**
 * `jarvis-db apply [PLANFILE]`: run the plan under the lock of the storage path.
 * - With a plan file: re-observes, refuses it if stale (naming what changed), runs it as saved.
 * - Without: plans afresh and asks for confirmation on a terminal; elsewhere (CI, cron) it
 *   needs --auto-approve.
 * Exit 0 when everything ran (or nothing had to), 1 otherwise; the journal says what ran.
 */
import type { Command } from 'commander';
import type { Plan } from '../engine/types.js';
import { askYes, colors, durationFlag, exitWith, globalOptions, loadDesired, note, onTerminal as isOnTerminal, print } from './common.js';
import { plural } from '../render/format.js';

interface ApplyFlags { autoApprove?: boolean; lockTimeout: string; target?: string }

export function define(program: Command): void {
  program
    .command('apply [planfile]')
    .description('Execute the plan: due backups, pending migrations, retention, pruning (one apply at a time)')
    .option('--auto-approve', 'do not ask for confirmation (needed when not on a terminal, unless a plan file is given)')
    .option('--lock-timeout <duration>', 'how long to wait for another apply on the same storage to finish', '60s')
    .option('--target <module|action-id>', 'only the actions of this module, or this action (and those it requires)')
    .action(async (planfile: string | undefined, opts: ApplyFlags, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError } = await import('../errors.js');
      const lockTimeoutMs = await durationFlag('--lock-timeout', opts.lockTimeout);
      const onTerminal = isOnTerminal();
      if (!planfile && !opts.autoApprove && !onTerminal) {
        throw new JarvisError('USAGE', 'apply is not on a terminal, so it cannot ask for confirmation: pass --auto-approve, or a plan file', {
          hint: 'jarvis-db plan --out plan.json; review it; jarvis-db apply plan.json',
        });
      }
      if (planfile && opts.target) throw new JarvisError('USAGE', '--target applies when planning; a plan file is applied as saved (make it with plan --target --out)');

      const { defaultParts } = await import('../engine/registry.js');
      const parts = await defaultParts();
      let savedPlan: Plan | undefined;
      if (planfile) {
        const { readPlanFile } = await import('../engine/saved-plan.js');
        savedPlan = await readPlanFile(planfile, new Set(Object.keys(parts.handlers)));
      }
      // A plan file names its config; -c (or JARVIS_DB_CONFIG) still wins when given.
      const desired = await loadDesired(savedPlan && !g.configGiven ? { ...g, config: savedPlan.configFile } : g);

      const engine = await import('../engine/index.js');
      const { applyReporter } = await import('../render/progress.js');
      const text = await import('../render/text.js');
      const cOut = colors(g);
      const confirm = async (plan: Plan): Promise<boolean> => {
        if (!g.json) print(text.renderPlanText(plan, cOut));
        if (savedPlan || opts.autoApprove) return true;
        const destructive = plan.actions.filter((a) => a.risk === 'destructive').length;
        return askYes(`Apply ${plan.actions.length === 1 ? 'this action' : `these ${plural(plan.actions.length, 'action')}`}${destructive ? `, ${destructive} of them destructive` : ''}? Only 'yes' goes on: `);
      };

      const controller = new AbortController();
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        if (++signals > 1) process.exit(130);
        note(`${signal}: stopping after the current action (again to quit at once)…`);
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const result = await engine.apply({
          desired, parts, savedPlan, lockTimeoutMs, confirm, target: opts.target, signal: controller.signal,
          reporter: await applyReporter(colors(g, process.stderr), g.json),
        });
        if (g.json) {
          const { renderRunJson } = await import('../render/json.js');
          print(renderRunJson(result));
        } else print(text.renderRunText(result, cOut));
        if (result.status === 'failed' || result.status === 'cancelled') exitWith(1);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
