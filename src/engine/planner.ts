/**
 * The pure planner (docs/architecture.md §1, §2): the observation of every module and the desired state
 * in, one Plan out. No I/O, no clock: `now` is the observation's.
 *
 * It owns what no single domain can decide: the order of actions across domains (migrations →
 * due backups → retention, archive before delete → pruning → verification, and every action
 * after what it `requires`), ids that are unique and stable across re-plans, the fingerprint,
 * and `--target`. Cross-domain decisions are the modules' (a module's `plan` sees every
 * module's observation): the backup before migrations is the backup module's, which the
 * migration steps require.
 */
import { createHash } from 'node:crypto';
import type { Desired } from '../config/types.js';
import { canonicalJson } from '../storage/durable.js';
import { JarvisError } from '../errors.js';
import type { Reachability } from '../services/reachability.js';
import {
  PLAN_FORMAT_VERSION, type Action, type ActionType, type DomainModule, type Finding, type ModulePlan,
  type Observed, type Plan, type PlanBasis, type PlanError, type ServiceName,
} from './types.js';

/** What observation produced for one module: its data, or why it could not be read. */
export type ModuleObservation = { ok: true; observed: unknown } | { ok: false; error: string };

export interface Observation {
  /** The clock the observation was taken at (ISO). */
  at: string;
  /** By module name; modules that do not apply to the config are absent. */
  modules: Record<string, ModuleObservation>;
  /** Whether each configured service answered; absent when not probed (tests of pure planning). */
  services?: Partial<Record<ServiceName, Reachability>>;
}

/** The order of apply by type (docs/architecture.md §2); `requires` comes on top of it. */
const PHASE: Record<ActionType, number> = {
  migrate_up: 1,
  migrate_down: 1,
  create_backup: 2,
  copy_backup: 3,
  // Declared partitions before retention; whole old partitions before the batches of the rest.
  create_partition: 3,
  retention_drop_partitions: 4,
  retention_archive: 4,
  retention_anonymize: 5,
  retention_erase: 5,
  retention_compress: 6,
  retention_delete: 7,
  prune_backup: 8,
  // After the prune_backup actions it follows from (its `requires`).
  prune_wal: 8,
  // After every member and copy it `requires`; a point goes before the member it is pruned with (that prune requires it).
  create_point: 3,
  prune_point: 8,
  // After the archive runs of the same apply (their archives are finished by then; copied by the next plan).
  copy_archive: 8,
  prune_archive: 8,
  verify_backup: 9,
  // Command-only types (never planned together with the others): a restore replaces data as a
  // migration changes the schema; the seed needs the migrations; an archive restore is retention's.
  restore_backup: 1,
  seed_dataset: 2,
  restore_archive: 4,
  // After the restores it requires; an erasure on its own.
  erase_user: 7,
  reapply_tombstones: 9,
};
/** Action types of test modules (not in ACTION_TYPES) run after the due backups. */
const UNKNOWN_PHASE = 3;

export function phaseOf(action: Action): number {
  return PHASE[action.type] ?? UNKNOWN_PHASE;
}

/**
 * Stable sort by phase (within a phase, the order the modules gave: migrations in sequence),
 * then every action after what it `requires`: a required action moves up to just before the
 * first action that requires it (the backup before migrations, docs/architecture.md §2).
 */
export function orderActions(actions: readonly Action[]): Action[] {
  const byPhase = actions.map((a, i) => ({ a, i })).sort((x, y) => phaseOf(x.a) - phaseOf(y.a) || x.i - y.i).map(({ a }) => a);
  const byId = new Map(byPhase.map((a) => [a.id, a]));
  const placed = new Set<Action>();
  const visiting = new Set<Action>();
  const out: Action[] = [];
  const place = (a: Action) => {
    if (placed.has(a) || visiting.has(a)) return; // requires in a cycle: no order satisfies them all
    visiting.add(a);
    for (const r of a.requires ?? []) { const dep = byId.get(r); if (dep) place(dep); }
    visiting.delete(a);
    placed.add(a);
    out.push(a);
  };
  for (const a of byPhase) place(a);
  return out;
}

/**
 * SHA-256 of what a saved plan stands for: its basis (what `apply plan.json` compares to refuse
 * a stale plan), its actions and its `--target`. A plan file edited by hand no longer matches.
 */
export function fingerprintOf(plan: Pick<Plan, 'basis' | 'actions' | 'target'>): string {
  return createHash('sha256').update(canonicalJson({ basis: plan.basis, actions: plan.actions, target: plan.target ?? null })).digest('hex');
}

function checkIds(actions: readonly Action[], errors: PlanError[]): void {
  const seen = new Set<string>();
  for (const a of actions) {
    if (seen.has(a.id)) errors.push({ module: a.module, message: `two actions have the id ${a.id} (a module bug: ids must be unique)` });
    seen.add(a.id);
  }
  for (const a of actions) {
    for (const r of a.requires ?? []) {
      if (!seen.has(r)) errors.push({ module: a.module, message: `${a.id} requires ${r}, which is not in the plan` });
    }
  }
}

/** The modules that take part for this config, in registry order. */
export function applicableModules<M extends Pick<DomainModule, 'name' | 'appliesTo'>>(modules: readonly M[], desired: Desired): M[] {
  return modules.filter((m) => m.appliesTo(desired));
}

/**
 * Pure: every applicable module's plan, merged and ordered. A module whose observation
 * failed, or whose planner threw, gives a plan error (the others are still planned).
 */
export function buildPlan(desired: Desired, modules: readonly DomainModule<unknown>[], observation: Observation): Plan {
  const now = new Date(observation.at);
  const all: Observed = {};
  for (const [name, o] of Object.entries(observation.modules)) if (o.ok) all[name] = o.observed;
  const actions: Action[] = [];
  const findings: Finding[] = [];
  const errors: PlanError[] = [];
  const basis: PlanBasis = { configHash: desired.configHash, modules: {} };
  for (const module of applicableModules(modules, desired)) {
    const o = observation.modules[module.name];
    if (!o) {
      errors.push({ module: module.name, message: 'was not observed' });
      continue;
    }
    if (!o.ok) {
      errors.push({ module: module.name, message: `cannot observe: ${o.error}` });
      continue;
    }
    let part: ModulePlan;
    try {
      part = module.plan(desired, o.observed, now, all);
      basis.modules[module.name] = module.fingerprint(o.observed) ?? null;
    } catch (e) {
      errors.push({ module: module.name, message: `planning failed: ${(e as Error).message}` });
      continue;
    }
    actions.push(...part.actions);
    findings.push(...part.findings);
    errors.push(...part.errors);
  }
  const ordered = orderActions(actions);
  checkIds(ordered, errors);
  errors.push(...unreachableServiceErrors(ordered, observation));
  return {
    formatVersion: PLAN_FORMAT_VERSION,
    createdAt: observation.at,
    configFile: desired.configFile,
    configHash: desired.configHash,
    fingerprint: fingerprintOf({ basis, actions: ordered }),
    basis,
    actions: ordered,
    findings,
    errors,
  };
}

/** One error per service that observation found down and that a planned action needs. */
function unreachableServiceErrors(actions: readonly Action[], observation: Observation): PlanError[] {
  const errors: PlanError[] = [];
  for (const [service, reach] of Object.entries(observation.services ?? {}) as [ServiceName, Reachability][]) {
    if (reach.ok) continue;
    const needing = actions.filter((a) => a.services?.includes(service)).length;
    if (needing === 0) continue;
    errors.push({ module: 'services', service, message: `${reach.error}; ${needing === 1 ? 'the action that needs it waits' : `the ${needing} actions that need it wait`} for it, the others go on` });
  }
  return errors;
}

/** Whether an error stops an action: by the repository or the service the action reaches, or else by module. */
function stops(error: PlanError, action: Action): boolean {
  if (error.repository) return (action.repositories ?? []).includes(error.repository);
  return error.service ? (action.services ?? []).includes(error.service) : error.module === action.module;
}

/**
 * Pure: the actions that must not run, with the cause, given the errors of the observation they
 * are applied against. An error stops only what depends on it (the actions of its module, or
 * those that reach its service) and what requires a stopped action; everything else still runs.
 */
export function blockedActions(actions: readonly Action[], errors: readonly PlanError[]): Map<string, string> {
  const blocked = new Map<string, string>();
  for (const a of actions) {
    const e = errors.find((err) => stops(err, a));
    if (e) blocked.set(a.id, `${e.module}: ${e.message}`);
  }
  for (let changed = true; changed;) {
    changed = false;
    for (const a of actions) {
      if (blocked.has(a.id)) continue;
      const dep = (a.requires ?? []).find((r) => blocked.has(r));
      if (dep) {
        blocked.set(a.id, `it requires ${dep}, which does not run (${blocked.get(dep)})`);
        changed = true;
      }
    }
  }
  return blocked;
}

/** The errors that concern a narrowed plan: those that stop one of its actions, and its target module's. */
export function errorsFor(errors: readonly PlanError[], actions: readonly Action[], targetModule: string | undefined): PlanError[] {
  return errors.filter((e) => e.module === targetModule || actions.some((a) => stops(e, a)));
}

/**
 * The module a `--target` names: itself, or the module of an action id when that module has an
 * error of its own (`--target retention.delete.x` while retention cannot be observed).
 */
export function targetModuleOf(target: string, moduleNames: readonly string[], errors: readonly PlanError[]): string | undefined {
  if (moduleNames.includes(target)) return target;
  return moduleNames.find((m) => target.startsWith(m + '.') && errors.some((e) => e.module === m && !e.service));
}

/**
 * `--target MODULE|ACTION_ID`: only that module's actions, or that action (an id, or an id
 * prefix ending at a dot such as `backup.prune`), with the actions they require.
 * A target that names neither a module nor a planned action is a usage error.
 */
export function narrowPlan(plan: Plan, target: string, moduleNames: readonly string[]): Plan {
  const byId = new Map(plan.actions.map((a) => [a.id, a]));
  const direct = plan.actions.filter((a) => a.module === target || a.id === target || a.id.startsWith(target + '.'));
  // `--target retention.delete.x` while retention cannot be observed: its error is the answer.
  const targetModule = targetModuleOf(target, moduleNames, plan.errors);
  if (direct.length === 0 && !targetModule) {
    const ids = plan.actions.map((a) => a.id);
    throw new JarvisError('USAGE', `--target ${target} names no module and no planned action`, {
      hint: `modules: ${moduleNames.join(', ')}${ids.length ? `; planned actions: ${ids.slice(0, 8).join(', ')}${ids.length > 8 ? ', …' : ''}` : ''}`,
    });
  }
  const keep = new Set<string>();
  const add = (a: Action) => {
    if (keep.has(a.id)) return;
    keep.add(a.id);
    for (const r of a.requires ?? []) { const dep = byId.get(r); if (dep) add(dep); }
  };
  direct.forEach(add);
  const actions = plan.actions.filter((a) => keep.has(a.id));
  return { ...plan, fingerprint: fingerprintOf({ basis: plan.basis, actions, target }), target, actions, errors: errorsFor(plan.errors, actions, targetModule) };
}
