/**
 * What `jarvis-db retention preview|run` do, through the engine with the retention module
 * alone: preview is `makePlan` (the retention part of a plan); run is `apply` (the same lock,
 * journal, plan-error refusal and stop-at-first-failure as `jarvis-db apply`). `--policy`
 * narrows the config to one policy (its archives only).
 */
import type { Desired } from '../config/types.js';
import type { ApplyReporter, EngineParts } from '../engine/index.js';
import type { Plan, RunResult } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { plural } from '../render/format.js';
import { retentionHandlers, retentionModule } from './module.js';
import type { RetentionObserved } from './observe.js';
import { partitionLines, policyPreviews, type PolicyPreview } from './render.js';

/** The config with only the named policy (and no declared partitions). */
export function onlyPolicy(desired: Desired, name: string | undefined): Desired {
  if (!name) return desired;
  const policy = desired.retention.find((p) => p.name === name);
  if (!policy) {
    throw new JarvisError('USAGE', `no retention policy named "${name}" in ${desired.configFile}`, {
      hint: desired.retention.length ? `policies: ${desired.retention.map((p) => p.name).join(', ')}` : 'add policies under retention:',
    });
  }
  // One policy: its actions only, not the partitions declared for other reasons.
  const { partitions: _declared, ...rest } = desired;
  return { ...rest, retention: [policy] };
}

/** The engine with the retention module only (and every handler). */
export async function retentionParts(): Promise<EngineParts> {
  const { HANDLERS } = await import('../engine/registry.js');
  return { modules: [retentionModule], handlers: { ...HANDLERS, ...retentionHandlers } };
}

/** The retention plan, and a line per policy (rows now eligible, cut-off) even when nothing is due. */
export async function previewRetention(desired: Desired, options: { policy?: string; env: NodeJS.ProcessEnv; now?: Date }): Promise<{ plan: Plan; policies: PolicyPreview[] }> {
  const { makePlan } = await import('../engine/index.js');
  const narrowed = onlyPolicy(desired, options.policy);
  const { plan, observation } = await makePlan({ desired: narrowed, parts: await retentionParts(), env: options.env, ...(options.now ? { now: options.now } : {}) });
  const observed = observation.modules.retention;
  // When the observation failed, the plan holds the error; no line can be counted.
  const retention: RetentionObserved = observed?.ok ? observed.observed as RetentionObserved : { policies: [], archives: [], invalidArchives: [], debris: 0 };
  const byPolicy = partitionLines(plan);
  const policies = policyPreviews(narrowed, retention, new Date(observation.at)).map((p) => (byPolicy.has(p.policy) ? { ...p, partitions: byPolicy.get(p.policy)! } : p));
  return { plan, policies };
}

export interface RunNowOptions {
  policy?: string;
  env: NodeJS.ProcessEnv;
  /** Asked when the plan has destructive actions; false (or a throw) stops before anything runs. */
  confirmDestructive: (plan: Plan) => Promise<boolean>;
  reporter?: ApplyReporter;
  lockTimeoutMs?: number;
  signal?: AbortSignal;
}

export async function runRetentionNow(desired: Desired, options: RunNowOptions): Promise<RunResult> {
  const { apply } = await import('../engine/index.js');
  return apply({
    desired: onlyPolicy(desired, options.policy), parts: await retentionParts(), env: options.env,
    lockTimeoutMs: options.lockTimeoutMs ?? 60_000, reporter: options.reporter ?? {}, ...(options.signal ? { signal: options.signal } : {}),
    confirm: async (plan) => {
      const destructive = plan.actions.filter((a) => a.risk === 'destructive');
      if (destructive.length === 0) return true;
      if (await options.confirmDestructive(plan)) return true;
      throw new JarvisError('CONFIRMATION_REQUIRED', `${plural(destructive.length, 'destructive retention action')} need${destructive.length === 1 ? 's' : ''} confirmation; nothing was run`, {
        hint: 'run on a terminal to confirm, or pass --auto-approve',
      });
    },
  });
}
