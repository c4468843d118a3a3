/**
 * The `health` domain module: observe takes the samples (read-only), plan turns them into
 * findings against the thresholds (pure, no actions). Only findings that are not HEALTHY go
 * into the plan, so a healthy system still plans "No changes".
 */
import type { Desired } from '../config/types.js';
import type { DomainModule, ModulePlan } from '../engine/types.js';
import { describeHealthChanges } from './describe.js';
import { evaluate } from './evaluate.js';
import type { HealthObservation } from './samples.js';

export function planHealth(desired: Desired, observed: HealthObservation): ModulePlan {
  const findings = evaluate(observed.samples, desired.health.thresholds, observed.previous).filter((f) => f.status !== 'HEALTHY');
  return { actions: [], findings, errors: [] };
}

export const healthModule: DomainModule<HealthObservation> = {
  name: 'health',
  appliesTo: () => true,
  async observe(ctx) {
    const { configuredProbes, observeHealth } = await import('./check.js');
    // A plan does not wait for a CPU window: CPU use is measured over the check's own probes.
    // PITR is the wal module's in a plan (from the backup module's WAL listing, not a second one).
    // The cross-store comparison reads every key of the links: a health check's work, not a plan's.
    const services = configuredProbes(ctx.desired).filter((s) => s !== 'wal' && s !== 'consistency');
    return observeHealth(ctx.desired, { env: ctx.env, now: ctx.now, cpuWindowMs: 0, services });
  },
  plan: (desired, observed) => planHealth(desired, observed),
  describeChange: describeHealthChanges,
  // Health plans no actions: nothing an apply does depends on it.
  fingerprint: () => null,
};
