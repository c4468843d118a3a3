/**
 * What the commands that write share (`backup create|prune`, `restore`, `archive restore`,
 * `init`, like `migrate up|down` and `retention run`): a domain module narrowed to the actions
 * of one command, run by the engine's `apply`, so that every write takes the one apply lock and
 * is journaled (docs/architecture.md §4 rule 6).
 */
import type { Desired } from '../config/types.js';
import { JarvisError, type ErrorCode } from '../errors.js';
import type { Action, ActionOutcome, ActionResult, DomainModule, Handler, ModulePlan, PlanError } from './types.js';

/**
 * A module whose plan is the command's actions: `base` gives the name, the observation (the
 * command's output may need it) and the housekeeping before it; its fingerprint is that of
 * `base`, or nothing.
 */
export function commandModule<O>(base: Pick<DomainModule<O>, 'name' | 'observe'> & Partial<DomainModule<O>>, actions: (desired: Desired, observed: O) => Action[]): DomainModule<O> {
  return {
    fingerprint: () => null,
    ...base,
    appliesTo: () => true,
    plan: (desired, observed): ModulePlan => ({ actions: actions(desired, observed), findings: [], errors: [] }),
  };
}

/** What the handlers of a command's run returned and threw, by action id. */
export interface Recorded {
  outcomes: Map<string, ActionOutcome>;
  errors: Map<string, unknown>;
}

export const newRecord = (): Recorded => ({ outcomes: new Map(), errors: new Map() });

/**
 * The handler, keeping what it returns and what it throws: the command prints from the
 * outcome's details, and reports an error as it was thrown (its details, its stack with
 * --debug), not as the run result's plain copy.
 */
export function recording<A extends Action>(handler: Handler<A>, into: Recorded): Handler<A> {
  return async (action, ctx, progress) => {
    try {
      const outcome = await handler(action, ctx, progress);
      into.outcomes.set(action.id, outcome);
      return outcome;
    } catch (e) {
      into.errors.set(action.id, e);
      throw e;
    }
  };
}

/** The error of an action that did not succeed: as thrown when it ran, else from the result (a reason it did not run). */
export function errorOfResult(result: ActionResult, record: Recorded): unknown {
  const thrown = record.errors.get(result.id);
  if (thrown !== undefined) return thrown;
  if (result.error) return new JarvisError(result.error.code as ErrorCode, result.error.message, result.error.hint ? { hint: result.error.hint } : {});
  return new JarvisError('APPLY_FAILED', `${result.id} was not run: ${result.reason ?? 'the run stopped'}`);
}

/** A command's run: its plan errors (an observation that failed) as one error, else the first failure. */
export function throwIfFailed(run: { errors: readonly PlanError[]; results?: readonly ActionResult[] }, record: Recorded): void {
  if (run.errors.length) {
    const [first, ...rest] = run.errors;
    throw new JarvisError('PLAN_ERRORS', first!.message, { details: rest.map((e) => e.message) });
  }
  const failed = run.results?.find((r) => r.status !== 'done');
  if (failed) throw errorOfResult(failed, record);
}
