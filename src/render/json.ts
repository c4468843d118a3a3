/**
 * Plans and apply results as JSON for machines. A plan's JSON is also the saved-plan file
 * (`plan --out`), read back by `apply FILE`; `summary` is derived and ignored on reading.
 */
import type { Plan, RunResult } from '../engine/types.js';
import type { MarkdownExtras } from './markdown.js';
import { planCounts } from './text.js';

/** With `base` (`plan --base`), the impact and diff are added beside the plan. */
export function renderPlanJson(plan: Plan, extras: Pick<MarkdownExtras, 'base'> = {}): string {
  return JSON.stringify({ ...plan, summary: planCounts(plan), ...(extras.base ? { base: extras.base } : {}) }, null, 2) + '\n';
}

export function renderRunJson(result: RunResult): string {
  const { plan, ...rest } = result;
  return JSON.stringify({ ...rest, plan: { fingerprint: plan.fingerprint, summary: planCounts(plan) } }, null, 2) + '\n';
}
