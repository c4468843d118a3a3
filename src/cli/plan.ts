/**
 * `jarvis-db plan`: observe, plan, render. `--out` saves the plan for `apply FILE`;
 * `--base REF|FILE` adds the impact of the change and the config diff (the review view of a
 * pull request). Exit codes as Terraform: 0 ok, 1 error, and with --detailed-exitcode 2 when
 * there is something to apply.
 */
import { Option, type Command } from 'commander';
import { colors, exitWith, globalOptions, loadDesired, note, print } from './common.js';
import { plural } from '../render/format.js';

interface PlanFlags { out?: string; format: 'text' | 'markdown' | 'json'; detailedExitcode?: boolean; target?: string; base?: string }

export function define(program: Command): void {
  program
    .command('plan')
    .description('Observe the services, diff them against the config and print a plan')
    .option('--out <file>', 'save the plan as JSON, to run later with `jarvis-db apply FILE`')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'markdown', 'json']).default('text'))
    .option('--detailed-exitcode', 'exit 2 when there are changes to apply (0 none, 1 error)')
    .option('--target <module|action-id>', 'only the actions of this module, or this action (and those it requires)')
    .option('--base <ref|file>', 'review a change: the impact and diff of the desired state against a git ref or a config file')
    .action(async (opts: PlanFlags, cmd: Command) => {
      const g = globalOptions(cmd);
      const format = g.json ? 'json' : opts.format;
      const desired = await loadDesired(g);
      const engine = await import('../engine/index.js');
      const { defaultParts } = await import('../engine/registry.js');
      const parts = await defaultParts();
      const { plan } = await engine.makePlan({ desired, parts, target: opts.target });

      let base: { label: string; impact: import('../engine/impact.js').ImpactLine[]; diff: string } | undefined;
      if (opts.base) {
        const { reviewChange } = await import('../engine/base.js');
        const { configDiff } = await import('../render/diff.js');
        const review = await reviewChange(opts.base, desired, parts, { headPlan: opts.target ? undefined : plan });
        base = { label: review.label, impact: review.impact, diff: configDiff(review.files) };
      }

      if (format === 'json') {
        const { renderPlanJson } = await import('../render/json.js');
        const { redactUrl } = await import('../services/redact.js');
        // Only URL passwords are masked: the JSON is a plan file too (see writePlanFile).
        process.stdout.write(redactUrl(renderPlanJson(plan, { base })));
      } else if (format === 'markdown') {
        const { renderPlanMarkdown } = await import('../render/markdown.js');
        print(renderPlanMarkdown(plan, { base }));
      } else {
        const text = await import('../render/text.js');
        const c = colors(g);
        print((base ? text.renderImpactText(base.label, base.impact, base.diff, c) : '') + text.renderPlanText(plan, c));
      }

      if (opts.out) {
        if (plan.errors.length) note(`not saving the plan to ${opts.out}: it has errors, and a plan saved for review must be whole (fix them, then plan again)`);
        else {
          const { writePlanFile } = await import('../engine/saved-plan.js');
          const { renderPlanJson } = await import('../render/json.js');
          await writePlanFile(opts.out, renderPlanJson(plan));
          note(`Plan saved to ${opts.out}. Apply exactly this plan with: jarvis-db apply ${opts.out}`);
        }
      }
      if (plan.errors.length) {
        note(`error: the plan has ${plural(plan.errors.length, 'error')}`);
        exitWith(1);
      } else if (opts.detailedExitcode && plan.actions.length) exitWith(2);
    });
}
