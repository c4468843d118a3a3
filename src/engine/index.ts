/**
 * The engine's API, for the CLI, the daemon and tests: observe → plan (`makePlan`), and
 * lock → prepare → observe → plan or stale check → confirm → execute (`apply`).
 *
 * Every function takes the engine parts (modules and handlers) as a parameter, the registry
 * being the default, so that tests inject a module of their own.
 */
import type { Desired } from '../config/types.js';
import { JarvisError, isJarvisError, messageOf } from '../errors.js';
import { redact } from '../services/redact.js';
import { Journal, newRunId, pruneJournals } from './journal.js';
import { acquireApplyLock, type LockOwner } from './lock.js';
import { acquireRepositoryLocks, type RepositoryLockRecord, type RepositoryLocks } from './repository-lock.js';
import { applicableModules, blockedActions, buildPlan, errorsFor, fingerprintOf, narrowPlan, targetModuleOf, type Observation } from './planner.js';
import { defaultParts, type EngineParts } from './registry.js';
import { describeBasisChange } from './stale.js';
import { canonicalJson } from '../storage/durable.js';
import type { Action, ActionOutcome, ActionResult, Handler, Plan, PlanError, Progress, RunResult } from './types.js';

export type { EngineParts } from './registry.js';

const silent: Progress = { note: () => undefined, update: () => undefined };

/** Every applicable module's observation, in parallel; a failure is recorded, not thrown. */
export async function observeAll(desired: Desired, parts: EngineParts, now: Date, env: NodeJS.ProcessEnv = process.env, probe = true): Promise<{ observation: Observation; timingsMs: Record<string, number> }> {
  const observation: Observation = { at: now.toISOString(), modules: {} };
  const timingsMs: Record<string, number> = {};
  const probing = probe && (async () => {
    const started = performance.now();
    const { probeServices } = await import('../services/reachability.js');
    observation.services = await probeServices(desired, env);
    timingsMs.services = performance.now() - started;
  })();
  await Promise.all([probing, ...applicableModules(parts.modules, desired).map(async (module) => {
    const started = performance.now();
    try {
      observation.modules[module.name] = { ok: true, observed: await module.observe({ desired, env, now }) };
    } catch (e) {
      observation.modules[module.name] = { ok: false, error: redact(messageOf(e), env) };
    }
    timingsMs[module.name] = performance.now() - started;
  })]);
  return { observation, timingsMs };
}

export interface PlanOptions {
  desired: Desired;
  parts?: EngineParts;
  now?: Date;
  env?: NodeJS.ProcessEnv;
  /** `--target MODULE|ACTION_ID` */
  target?: string;
  /**
   * false: do not probe the services. For a command whose actions name no service (`backup
   * create`, `restore`): each reports a service down in its own words, so the probe only costs.
   */
  probeServices?: boolean;
}

export interface PlanRun {
  plan: Plan;
  observation: Observation;
  /** Wall time of observation (all modules, in parallel) and of planning. */
  timingsMs: { observe: number; plan: number; modules: Record<string, number> };
}

/** Observes the world and plans. */
export async function makePlan(options: PlanOptions): Promise<PlanRun> {
  const env = options.env ?? process.env;
  const parts = options.parts ?? (await defaultParts(env));
  const now = options.now ?? new Date();
  const t0 = performance.now();
  const { observation, timingsMs } = await observeAll(options.desired, parts, now, env, options.probeServices !== false);
  const t1 = performance.now();
  let plan = buildPlan(options.desired, parts.modules, observation);
  if (options.target) plan = narrowPlan(plan, options.target, parts.modules.map((m) => m.name));
  return { plan, observation, timingsMs: { observe: t1 - t0, plan: performance.now() - t1, modules: timingsMs } };
}

/** What the CLI (or the daemon's log) shows while an apply runs. Every callback is optional. */
export interface ApplyReporter {
  /** The run's id, before anything else happens (the daemon logs every line of the run with it). */
  runStarted?(runId: string): void;
  waitingForLock?(owner: LockOwner | null, timeoutMs: number): void;
  /** Another machine's apply holds the lock of a shared repository (repository-lock.ts). */
  waitingForRepositoryLock?(repository: string, holder: RepositoryLockRecord | null, timeoutMs: number): void;
  prepared?(lines: string[]): void;
  /** Returns the progress sink of this action (a bar on a terminal). */
  actionStarted?(action: Action, index: number, total: number): Progress | void;
  actionFinished?(action: Action, result: ActionResult, progress: Progress | void): void;
}

export interface ApplyOptions {
  desired: Desired;
  /** A saved plan (`apply plan.json`): executed as saved if its basis still holds. */
  savedPlan?: Plan;
  parts?: EngineParts;
  /** How long to wait for another apply to finish (default 60 s). */
  lockTimeoutMs?: number;
  /** Asked with the plan before anything runs (a terminal prompt); false cancels. */
  confirm?(plan: Plan): Promise<boolean>;
  reporter?: ApplyReporter;
  env?: NodeJS.ProcessEnv;
  /** Aborting stops the run between actions; the rest is reported as not executed. */
  signal?: AbortSignal;
  /** `--target` when planning afresh. */
  target?: string;
  clock?: () => Date;
  /**
   * Actions of different lanes run at the same time; within a lane, one after the other in plan
   * order (`backup create --service all`: one lane per service). Without it, one lane.
   * `requires` is honoured across lanes.
   */
  lanes?: (action: Action) => string;
  /**
   * A failed action holds back only the actions that require it; the others still run
   * (`backup create --service all`: a service down does not stop the other backups).
   * Without it, the first failure stops everything not yet started.
   */
  keepGoing?: boolean;
  /** See PlanOptions.probeServices. */
  probeServices?: boolean;
}

function errorOf(e: unknown, env: NodeJS.ProcessEnv): NonNullable<ActionResult['error']> {
  if (isJarvisError(e)) return { code: e.code, message: redact(e.message, env), ...(e.hint ? { hint: redact(e.hint, env) } : {}) };
  return { code: 'INTERNAL', message: redact(messageOf(e), env) };
}

/**
 * The refusal of a saved plan whose basis changed, naming what changed. A module that cannot be
 * observed now is left out of the comparison: its actions are held back by its error instead, so
 * that one service down does not refuse the whole plan.
 */
function checkStale(saved: Plan, current: Plan, unobserved: ReadonlySet<string>): void {
  const stale = (changes: string[]) => new JarvisError('STALE_PLAN', `the saved plan is stale: the state it was made from has changed since ${saved.createdAt}`, {
    details: changes.map((c) => `  changed: ${c}`),
    hint: 'make a new plan with `jarvis-db plan --out FILE` and apply that',
  });
  if (saved.fingerprint !== fingerprintOf(saved)) throw editedPlan(saved, current);
  const without = (modules: Record<string, unknown>) => Object.fromEntries(Object.entries(modules).filter(([name]) => !unobserved.has(name)));
  const changes = describeBasisChange({ ...saved.basis, modules: without(saved.basis.modules) }, { ...current.basis, modules: without(current.basis.modules) });
  if (changes.length) throw stale(changes);
}

/**
 * The refusal of a saved plan whose content no longer matches its fingerprint. The fingerprint
 * tells that something changed, not what: the action named is the first one that a fresh plan
 * does not have (by id, or of that type), or the only one that differs from the fresh plan's.
 */
function editedPlan(saved: Plan, current: Plan): JarvisError {
  const fresh = new Map(current.actions.map((a) => [a.id, a]));
  const strange = saved.actions.findIndex((a) => fresh.get(a.id)?.type !== a.type);
  const differing = saved.actions.map((a, i) => [a, i] as const).filter(([a]) => canonicalJson(a) !== canonicalJson(fresh.get(a.id)));
  const index = strange >= 0 ? strange : differing.length === 1 ? differing[0]![1] : -1;
  const what = index >= 0 ? `actions[${index}] (${saved.actions[index]!.id}) is not what was planned` : 'its actions, basis or target are not what was planned';
  return new JarvisError('PLAN_INVALID', `the plan file was edited: ${what} (its fingerprint does not match)`, {
    hint: 'make a new plan with `jarvis-db plan --out FILE` and apply that, unchanged',
  });
}

/** The modules whose observation failed (not `errors` of their plan: those are the plan's own). */
function unobservedModules(observation: Observation): Set<string> {
  return new Set(Object.entries(observation.modules).filter(([, o]) => !o.ok).map(([name]) => name));
}

/**
 * Runs an apply under the lock of the storage path and of every shared repository. Resolves
 * with the run's result whether actions failed or not (status `failed`); rejects when nothing
 * ran: a lock could not be taken, the saved plan is stale, or the confirmation was refused. A plan error (a service
 * down, a module that cannot be observed) holds back only the actions that depend on it
 * (`blockedActions`); the others run, and the run is `failed`.
 */
export async function apply(options: ApplyOptions): Promise<RunResult> {
  const env = options.env ?? process.env;
  const clock = options.clock ?? (() => new Date());
  const parts = options.parts ?? (await defaultParts(env));
  const { desired, reporter = {} } = options;
  const startedAt = clock();
  const runId = newRunId(startedAt);
  reporter.runStarted?.(runId);
  const lockTimeoutMs = options.lockTimeoutMs ?? 60_000;
  const lockDeadline = Date.now() + lockTimeoutMs;
  const lock = await acquireApplyLock(desired.storage.path, {
    timeoutMs: lockTimeoutMs, runId, signal: options.signal, onWait: (owner) => reporter.waitingForLock?.(owner, lockTimeoutMs),
  });
  let journal: Journal | undefined;
  let repositoryLocks: RepositoryLocks | undefined;
  try {
    // Then the shared repositories, within what is left of the same --lock-timeout. Without
    // `repositories:` the storage path is the only one, and its lock is taken.
    const repositories = desired.repositories?.length ? (await import('../storage/repositories.js')).openRepositories(desired, env) : [];
    repositoryLocks = await acquireRepositoryLocks(repositories, desired.storage.path, {
      runId, deadline: lockDeadline, timeoutMs: lockTimeoutMs, env, ...(options.signal ? { signal: options.signal } : {}),
      onWait: (repository, holder) => reporter.waitingForRepositoryLock?.(repository.name, holder, Math.max(0, lockDeadline - Date.now())),
    });
    journal = await Journal.open(desired.storage.path, runId, env);
    await journal.write('run_started', { pid: process.pid, configFile: desired.configFile, configHash: desired.configHash, savedPlan: options.savedPlan ? options.savedPlan.fingerprint : null });
    if (repositoryLocks.held.length || repositoryLocks.skipped.length) {
      await journal.write('repository_locks', { held: repositoryLocks.held.map((l) => l.repository), skipped: repositoryLocks.skipped.map((s) => ({ ...s, reason: redact(s.reason, env) })) });
    }
    const prepared: string[] = [];
    for (const module of applicableModules(parts.modules, desired)) {
      if (module.beforeApply) prepared.push(...(await module.beforeApply({ desired, env, runId })));
    }
    if (prepared.length) {
      await journal.write('prepared', { lines: prepared });
      reporter.prepared?.(prepared);
    }
    let plan: Plan;
    let errors: PlanError[];
    let blocked: Map<string, string>;
    try {
      const { plan: current, observation } = await makePlan({ desired, parts, env, now: clock(), target: options.savedPlan ? undefined : options.target, probeServices: options.probeServices !== false });
      plan = current;
      errors = current.errors;
      if (options.savedPlan) {
        checkStale(options.savedPlan, current, unobservedModules(observation));
        plan = options.savedPlan;
        // The saved plan was made from an observation of its own; what stops its actions now is
        // what goes wrong now (a service down since), whatever the saved file says.
        errors = plan.target ? errorsFor(current.errors, plan.actions, targetModuleOf(plan.target, parts.modules.map((m) => m.name), current.errors)) : current.errors;
      }
      blocked = blockedActions(plan.actions, errors);
      if (plan.actions.length > blocked.size && options.confirm && !(await options.confirm(plan))) {
        throw new JarvisError('CONFIRMATION_REQUIRED', 'apply cancelled: the plan was not confirmed; nothing was applied');
      }
    } catch (e) {
      await journal.write('run_refused', { error: errorOf(e, env) });
      throw e;
    }
    await journal.write('plan', { fingerprint: plan.fingerprint, target: plan.target ?? null, actions: plan.actions.map((a) => ({ id: a.id, type: a.type, target: a.target, risk: a.risk })) });
    if (errors.length) await journal.write('plan_errors', { errors });
    const results = await execute(plan, blocked, { desired, parts, env, runId, journal, reporter, signal: options.signal, clock, lanes: options.lanes, keepGoing: options.keepGoing === true });
    const finishedAt = clock();
    // An action a signal stopped on purpose (a backup, on SIGTERM) is part of a cancelled run, not a failure.
    const interrupted = (r: ActionResult) => r.status === 'failed' && r.error?.code === 'INTERRUPTED' && options.signal?.aborted === true;
    const status: RunResult['status'] = errors.length || results.some((r) => r.status === 'failed' && !interrupted(r)) ? 'failed'
      : plan.actions.length === 0 ? 'nothing_to_do'
        : results.some((r) => r.status === 'not_executed' || interrupted(r)) ? 'cancelled' : 'succeeded';
    const counts = { done: 0, failed: 0, not_executed: 0 };
    for (const r of results) counts[r.status]++;
    const durationMs = finishedAt.getTime() - startedAt.getTime();
    // journal.keep: the journals of runs older than it go, under the same lock as the run.
    const journalsPruned = await pruneJournals(desired.storage.path, finishedAt, desired.journal.keepSeconds)
      .catch(async (e: unknown) => { await journal!.write('journal_prune_failed', { error: errorOf(e, env) }); return 0; });
    await journal.write('run_finished', { status, ...counts, durationMs, ...(journalsPruned ? { journalsPruned } : {}) });
    return { runId, status, startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), durationMs, prepared, plan, errors, results, journalFile: journal.file };
  } finally {
    await journal?.close().catch(() => undefined);
    await repositoryLocks?.release();
    await lock.release();
  }
}

interface ExecuteContextIn {
  desired: Desired;
  parts: EngineParts;
  env: NodeJS.ProcessEnv;
  runId: string;
  journal: Journal;
  reporter: ApplyReporter;
  signal?: AbortSignal;
  clock: () => Date;
  lanes?: (action: Action) => string;
  keepGoing: boolean;
}

/**
 * The apply loop: each lane in plan order, the lanes at the same time (one lane unless
 * `lanes` says otherwise). An action held back by a plan error is skipped with its cause; so
 * is one whose required action did not succeed. The first failure (or an abort) stops what has
 * not started yet, unless `keepGoing`. Results come back in plan order. The journal writes its
 * lines one at a time, in the order they are written, whatever the lanes.
 */
async function execute(plan: Plan, blocked: ReadonlyMap<string, string>, c: ExecuteContextIn): Promise<ActionResult[]> {
  const outcomes = new Map<string, ActionOutcome>();
  const signal = c.signal ?? new AbortController().signal;
  const indexOf = new Map(plan.actions.map((a, i) => [a.id, i]));
  const finished = new Map<string, Promise<ActionResult>>();
  const laneTails = new Map<string, Promise<unknown>>();
  let stopped: string | null = null;

  const notExecuted = async (action: Action, base: Pick<ActionResult, 'id' | 'type' | 'target'>, reason: string): Promise<ActionResult> => {
    const result: ActionResult = { ...base, status: 'not_executed', reason: redact(reason, c.env) };
    await c.journal.write('action_not_executed', { action: action.id, reason: result.reason });
    c.reporter.actionFinished?.(action, result, undefined);
    return result;
  };

  const run = async (action: Action, index: number): Promise<ActionResult> => {
    const base = { id: action.id, type: action.type, target: action.target };
    // Only earlier actions can be waited for (a later one would wait for this one's lane).
    const required = (action.requires ?? []).filter((id) => (indexOf.get(id) ?? index) < index);
    const unmet = (await Promise.all(required.map((id) => finished.get(id)!))).find((r) => r.status !== 'done');
    const reason = stopped ?? blocked.get(action.id) ?? (signal.aborted ? 'the apply was interrupted' : null)
      ?? (unmet ? `it requires ${unmet.id}, which ${unmet.status === 'failed' ? 'failed' : 'did not run'}` : null);
    if (reason !== null) return notExecuted(action, base, reason);
    const startedAt = c.clock();
    await c.journal.write('action_started', { action: action.id, type: action.type, target: action.target, risk: action.risk, reason: action.reason });
    const progress = c.reporter.actionStarted?.(action, index, plan.actions.length);
    const ctx = {
      desired: c.desired, plan, runId: c.runId, env: c.env, signal, outcomes,
      // a failed log line surfaces at the next awaited journal write, not as an unhandled rejection
      log: (event: string, fields: Record<string, unknown> = {}) => { c.journal.write(event, { action: action.id, ...fields }).catch(() => undefined); },
    };
    let result: ActionResult;
    try {
      // The map gives each type the handler of its own variant, so this one takes `action`.
      const handler = c.parts.handlers[action.type] as Handler | undefined;
      if (!handler) throw new JarvisError('PLAN_INVALID', `no handler for action type ${action.type}`);
      const outcome = await handler(action, ctx, progress ?? silent);
      outcomes.set(action.id, outcome);
      result = { ...base, status: 'done', startedAt: startedAt.toISOString(), durationMs: c.clock().getTime() - startedAt.getTime(), summary: redact(outcome.summary, c.env) };
      await c.journal.write('action_done', { action: action.id, durationMs: result.durationMs, summary: result.summary, details: outcome.details ?? null });
    } catch (e) {
      result = { ...base, status: 'failed', startedAt: startedAt.toISOString(), durationMs: c.clock().getTime() - startedAt.getTime(), error: errorOf(e, c.env) };
      if (!c.keepGoing) stopped ??= `an earlier action failed (${action.id})`;
      await c.journal.write('action_failed', { action: action.id, durationMs: result.durationMs, error: result.error });
    }
    c.reporter.actionFinished?.(action, result, progress);
    return result;
  };

  for (const [index, action] of plan.actions.entries()) {
    const lane = c.lanes?.(action) ?? '';
    const done = (laneTails.get(lane) ?? Promise.resolve()).then(() => run(action, index));
    // A journal that cannot be written fails the run: nothing more starts in any lane.
    done.catch(() => { stopped ??= 'the journal could not be written'; });
    finished.set(action.id, done);
    laneTails.set(lane, done.catch(() => undefined));
  }
  const settled = await Promise.allSettled(finished.values());
  const broken = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (broken) throw broken.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<ActionResult>).value);
}
