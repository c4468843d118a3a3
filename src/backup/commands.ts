/**
 * What `jarvis-db backup create|prune|delete` and `jarvis-db restore` do: each a narrowed plan of the
 * backup module's actions run by the engine's `apply` (docs/architecture.md §4 rule 6: one
 * lock, one journal), as `migrate up` and `retention run` do.
 */
import type { BackupSchedule, Desired, PointSchedule } from '../config/types.js';
import { commandModule, errorOfResult, newRecord, recording, throwIfFailed } from '../engine/command.js';
import type { ApplyReporter, EngineParts } from '../engine/index.js';
import type { Action, CopyBackup, CreateBackup, CreatePoint, Plan, Progress, PruneBackup, PrunePoint, PruneWal, RestoreBackup, RunResult } from '../engine/types.js';
import { findBackup, findBackupCopies } from './catalog.js';
import type { RestoreOptions } from './driver.js';
import { createBackupHandlerWith } from './handlers.js';
import { backupModule, copiesOfNewBackup, createBackupAction, newestValidBackup, planPrunes, planWalPrunes, type BackupObserved } from './module.js';
import { checkRestoreFlags, keepDecisions, repositoriesFor } from './operations.js';
import { withPoint } from './point-plan.js';
import { protectPointMembers, type PointMember } from './points.js';

async function engine() {
  const [{ HANDLERS }, run] = await Promise.all([import('../engine/registry.js'), import('../engine/index.js')]);
  return { HANDLERS, ...run };
}

export interface CommandApplyOptions {
  env: NodeJS.ProcessEnv;
  lockTimeoutMs: number;
  waitingForLock?: ApplyReporter['waitingForLock'];
}

/** One backup of `backup create`: what it wrote, or why it failed (as thrown, for the CLI's one place of reporting). */
export type CreateOutcome =
  | { schedule: BackupSchedule; ok: true; id: string; dir: string; totalBytes: number; files: number; durationMs: number; encrypted: boolean; wallMs: number }
  | { schedule: BackupSchedule; ok: false; error: unknown };

/** One copy of a new backup to another repository (`backup create` with several repositories). */
export type CopyOutcome =
  | { schedule: BackupSchedule; to: string; ok: true; id: string; dir: string }
  | { schedule: BackupSchedule; to: string; ok: false; error: unknown };

export interface CreateCommandOptions extends CommandApplyOptions {
  /** Aborted to stop the running backups (SIGTERM): each removes what it staged and ends INTERRUPTED. */
  signal?: AbortSignal;
  progressFor?(schedule: BackupSchedule): Progress & { stop(): void };
  /** Each backup as it ends (the CLI prints its line then, while the others still run). */
  finished?(outcome: CreateOutcome): void;
  /** Each copy of a new backup to another repository, as it ends. */
  copied?(outcome: CopyOutcome): void;
  /** `--service all`: the recovery points to record once their members are published. */
  points?: readonly PointSchedule[];
  /** Each recovery point, once recorded or not. */
  pointed?(outcome: PointOutcome): void;
}

/** A recovery point of `backup create --service all`: recorded, or why not (a member failed: not run). */
export type PointOutcome =
  | { schedule: string; ok: true; id: string; members: PointMember[]; repositories: string[]; pitr?: { lsn: string; at: string } }
  | { schedule: string; ok: false; error: unknown };

/**
 * `backup create`: one create_backup action per schedule (ids and params as `plan` makes
 * them), the services in parallel (one lane each, its schedules in order), a failure stopping
 * nothing else (keepGoing). The actions name no service: a service down fails its own backups
 * in the driver's words, as it always has, rather than the reachability probe's.
 */
export async function createBackupsCommand(desired: Desired, schedules: readonly BackupSchedule[], options: CreateCommandOptions): Promise<{ outcomes: CreateOutcome[]; run: RunResult }> {
  const { HANDLERS, apply } = await engine();
  const record = newRecord();
  const bySchedule = new Map(schedules.map((s) => [s.name, s]));
  // Written to the first repository that answered, then copied to the other ones that did (lanes: the copies after their create).
  const module = commandModule<BackupObserved>(backupModule, (d, observed) => (options.points ?? []).reduce(
    // A recovery point after its members (and their copies), which it requires.
    (actions, point) => withPoint(d, observed, point, 'requested (backup create --service all)', actions),
    schedules.flatMap((s): Action[] => {
    const { services: _reached, ...action } = createBackupAction(s, `requested (backup create --service ${s.service})`, newestValidBackup(s, observed));
    const reachable = (observed.repositories ?? []).filter((r) => r.reachable).map((r) => r.name);
    const first = observed.repositories?.[0]?.name;
    const create: CreateBackup = reachable[0] !== undefined && reachable[0] !== first ? { ...action, params: { ...action.params, repository: reachable[0] } } : action;
    // A copy to a repository that did not answer is tried too: it fails naming it, the backup stands.
    return [create, ...copiesOfNewBackup(d, observed, create)];
  })));
  const parts: EngineParts = {
    modules: [module],
    handlers: { ...HANDLERS, create_backup: recording(options.signal ? createBackupHandlerWith(options.signal) : HANDLERS.create_backup, record), copy_backup: recording(HANDLERS.copy_backup, record), create_point: recording(HANDLERS.create_point, record) },
  };
  const outcomes: CreateOutcome[] = [];
  const sinks = new Map<string, { stop(): void }>();
  const run = await apply({
    desired, parts, env: options.env, lockTimeoutMs: options.lockTimeoutMs, keepGoing: true, probeServices: false, ...(options.signal ? { signal: options.signal } : {}),
    lanes: (action) => (action.type === 'create_backup' || action.type === 'copy_backup' ? action.params.service : action.id),
    reporter: {
      ...(options.waitingForLock ? { waitingForLock: options.waitingForLock } : {}),
      actionStarted: (action) => {
        if (action.type !== 'create_backup') return undefined;
        const sink = options.progressFor?.(bySchedule.get(action.target)!);
        if (sink) sinks.set(action.id, sink);
        return sink;
      },
      actionFinished: (action, result) => {
        sinks.get(action.id)?.stop();
        if (action.type === 'create_point') {
          const point = action as CreatePoint;
          const d = record.outcomes.get(action.id)?.details;
          options.pointed?.(result.status === 'done' && d
            ? { schedule: point.params.schedule, ok: true, id: String(d.id), members: d.members as PointMember[], repositories: d.repositories as string[], ...(d.pitr ? { pitr: d.pitr as { lsn: string; at: string } } : {}) }
            : { schedule: point.params.schedule, ok: false, error: errorOfResult(result, record) });
          return;
        }
        if (action.type === 'copy_backup') {
          const copy = action as CopyBackup;
          const schedule = bySchedule.get(copy.params.schedule)!;
          const d = record.outcomes.get(action.id)?.details;
          const outcome: CopyOutcome = result.status === 'done' && d
            ? { schedule, to: copy.params.to, ok: true, id: String(d.id), dir: String(d.dir) }
            : { schedule, to: copy.params.to, ok: false, error: errorOfResult(result, record) };
          options.copied?.(outcome);
          return;
        }
        // Not run: a plan error (reported as the command's error below) or an interruption.
        if (result.status === 'not_executed') return;
        const schedule = bySchedule.get(action.target)!;
        const d = record.outcomes.get(action.id)?.details;
        const outcome: CreateOutcome = result.status === 'done' && d
          ? {
            schedule, ok: true, id: String(d.id), dir: String(d.dir), totalBytes: Number(d.totalBytes), files: Number(d.files),
            durationMs: Number(d.durationMs), encrypted: d.encrypted === true, wallMs: result.durationMs ?? 0,
          }
          : { schedule, ok: false, error: errorOfResult(result, record) };
        outcomes.push(outcome);
        options.finished?.(outcome);
      },
    },
  });
  if (run.errors.length) throwIfFailed(run, record);
  for (const r of run.results.filter((x) => x.status === 'not_executed' && x.type === 'create_backup')) {
    const outcome: CreateOutcome = { schedule: bySchedule.get(r.target)!, ok: false, error: errorOfResult(r, record) };
    outcomes.push(outcome);
    options.finished?.(outcome);
  }
  return { outcomes, run };
}

/** `repository`: with several repositories, the one the line is about. */
export interface PruneLine { id: string; schedule: string; startedAt: string; totalBytes: number; repository?: string }
export interface KeptLine { id: string; schedule: string; reasons: string[]; repository?: string }
/** A WAL prune of `backup prune`: what was planned and, once run, what was deleted. */
export interface WalPruneLine { repository: string; before: string; files: number; bytes: number; deleted?: number; storedBytes?: number; held?: string }

/**
 * `backup prune`: the prune_backup actions of the backup module's keep decisions, then the
 * prune_wal actions of the WAL no kept base backup needs, run by `apply` (stopping at the first
 * failure); a dry run only plans. Also what is kept, and why.
 */
export async function pruneBackupsCommand(desired: Desired, options: CommandApplyOptions & { dryRun: boolean }): Promise<{ pruned: PruneLine[]; kept: KeptLine[]; wal: WalPruneLine[]; points: { id: string; repository?: string }[]; run: RunResult | null }> {
  const { HANDLERS, apply, makePlan } = await engine();
  const record = newRecord();
  const seen: { observed?: BackupObserved } = {};
  const module = commandModule<BackupObserved>({ ...backupModule, observe: async (ctx) => (seen.observed = await backupModule.observe(ctx)) }, (d, observed) => {
    const out: Parameters<typeof planPrunes>[2] = { actions: [], findings: [] };
    planPrunes(d, observed, out);
    planWalPrunes(d, observed, out);
    return out.actions;
  });
  const parts: EngineParts = { modules: [module], handlers: { ...HANDLERS, prune_backup: recording(HANDLERS.prune_backup, record), prune_wal: recording(HANDLERS.prune_wal, record), prune_point: recording(HANDLERS.prune_point, record) } };
  let plan: Plan;
  let run: RunResult | null = null;
  if (options.dryRun) {
    plan = (await makePlan({ desired, parts, env: options.env, probeServices: false })).plan;
    throwIfFailed(plan, record);
  } else {
    run = await apply({ desired, parts, env: options.env, lockTimeoutMs: options.lockTimeoutMs, probeServices: false, reporter: options.waitingForLock ? { waitingForLock: options.waitingForLock } : {} });
    plan = run.plan;
    throwIfFailed(run, record);
  }
  const observed = seen.observed ?? { backups: [], debris: [], invalid: [] };
  const names = (observed.repositories ?? []).map((r) => r.name);
  const first = names[0];
  const pruning = new Set(plan.actions.filter((a): a is PruneBackup => a.type === 'prune_backup').map((a) => `${a.params.repository ?? first}\u0000${a.params.id}`));
  const pruned: PruneLine[] = [];
  const kept: KeptLine[] = [];
  const configs = new Map(repositoriesFor(desired, undefined, options.env).map((r) => [r.name, r]));
  for (const name of names.length ? names : [undefined]) {
    const here = observed.backups.filter((b) => name === undefined || (b.repository ?? first) === name);
    const bytes = new Map(here.map((b) => [b.id, b.totalBytes]));
    const keep = name === undefined ? undefined : configs.get(name)?.keep;
    const rules = keep ? { ...desired, backups: desired.backups.map((b) => ({ ...b, keep })) } : desired;
    const repository = names.length > 1 ? { repository: name! } : {};
    const decided = keepDecisions(rules, here);
    protectPointMembers(decided, (observed.points ?? []).filter((p) => name === undefined || (p.repository ?? first) === name));
    for (const { schedule, decisions } of decided.values()) {
      for (const d of decisions) {
        if (pruning.has(`${name ?? first}\u0000${d.id}`)) pruned.push({ id: d.id, schedule: schedule.name, startedAt: d.time, totalBytes: bytes.get(d.id) ?? 0, ...repository });
        // Outside the rules but the schedule's last valid backup: the plan keeps it (its finding says so).
        else kept.push({ id: d.id, schedule: schedule.name, reasons: d.keep ? d.reasons : ['last valid backup'], ...repository });
      }
    }
  }
  const wal = plan.actions.filter((a): a is PruneWal => a.type === 'prune_wal').map((a): WalPruneLine => {
    const done = record.outcomes.get(a.id)?.details;
    return {
      ...a.params,
      ...(done ? { deleted: Number(done.deleted), storedBytes: Number(done.storedBytes), before: String(done.before), ...(typeof done.held === 'string' ? { held: done.held } : {}) } : {}),
    };
  });
  const points = plan.actions.filter((a): a is PrunePoint => a.type === 'prune_point').map((a) => ({ id: a.params.id, ...(a.params.repository ? { repository: a.params.repository } : {}) }));
  return { pruned, kept, wal, points, run };
}

export interface RestoreCommandOptions extends CommandApplyOptions, Omit<RestoreOptions, 'jobs'> {
  progress?: Progress;
  /** --repository: read from this repository only (default: the first whose copy passes its checksums). */
  repository?: string;
}

/**
 * `restore ID`: a one-action plan (restore_backup) run by `apply`. Destructive with --force or
 * --flush (the target may hold data that goes); without them the driver refuses a non-empty
 * target, so nothing is lost. The flags are checked against the backup's service first.
 */
export async function restoreCommand(desired: Desired, id: string, options: RestoreCommandOptions): Promise<{ summary: string; details: Record<string, unknown>; run: RunResult; tombstones: { applied: number; summary: string } }> {
  const entry = await findBackup(repositoriesFor(desired, options.repository, options.env), id);
  const m = entry.manifest;
  checkRestoreFlags(m.service, options);
  const { env, lockTimeoutMs, waitingForLock, progress, ...flags } = options;
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as Omit<RestoreOptions, 'jobs'>;
  const action: RestoreBackup = {
    id: `backup.restore.${m.id}`, type: 'restore_backup', module: 'backup', target: m.id,
    reason: `requested (restore ${m.service}/${m.schedule} ${m.id})`, risk: flags.force || flags.flush ? 'destructive' : 'safe',
    estimate: { bytes: m.totalBytes }, params: { ...defined, id: m.id, service: m.service, force: flags.force },
  };
  // Erasures recorded since the backup was taken are re-applied before the restore reports success.
  const { reapplyAction } = await import('../erasure/commands.js');
  const reapply = await reapplyAction(desired, m.startedAt, { [m.service]: action.id }, env);
  const { HANDLERS, apply } = await engine();
  const record = newRecord();
  const parts: EngineParts = {
    modules: [commandModule({ name: 'backup', observe: async () => ({}) }, () => (reapply ? [action, reapply] : [action]))],
    handlers: { ...HANDLERS, restore_backup: recording(HANDLERS.restore_backup, record), reapply_tombstones: recording(HANDLERS.reapply_tombstones, record) },
  };
  const run = await apply({
    desired, parts, env, lockTimeoutMs, probeServices: false,
    reporter: { ...(waitingForLock ? { waitingForLock } : {}), ...(progress ? { actionStarted: () => progress } : {}) },
  });
  throwIfFailed(run, record);
  const outcome = record.outcomes.get(action.id)!;
  return { summary: outcome.summary, details: outcome.details ?? {}, run, tombstones: tombstonesOutcome(reapply ? record.outcomes.get(reapply.id) : undefined) };
}

/** What a restore says of the tombstones it re-applied (none recorded since its backup: 0). */
export function tombstonesOutcome(outcome: { summary: string; details?: Record<string, unknown> } | undefined): { applied: number; summary: string } {
  if (!outcome) return { applied: 0, summary: '0 tombstones applied (no erasure recorded since the backup was taken)' };
  return { applied: Number(outcome.details?.applied ?? 0), summary: outcome.summary };
}

export interface DeleteCommandOptions extends CommandApplyOptions {
  /** --repository: delete the copy in this repository only (default: every copy). */
  repository?: string;
  /** --force: also when it is the last valid backup of its schedule. */
  force: boolean;
}

/**
 * `backup delete ID`: a prune_backup action per copy (by id, not by the keep rules), run by
 * `apply`. The handler refuses the last valid backup of a schedule in a repository without
 * --force; the copies before it are deleted, those after it are not run.
 */
export async function deleteBackupCommand(desired: Desired, id: string, options: DeleteCommandOptions): Promise<{ deleted: { id: string; repository: string; totalBytes: number }[]; run: RunResult }> {
  const copies = await findBackupCopies(repositoriesFor(desired, options.repository, options.env), id);
  const several = (desired.repositories?.length ?? 0) > 0;
  const actions: PruneBackup[] = copies.map((entry) => {
    const m = entry.manifest;
    return {
      id: `backup.delete.${m.id}${several ? `.${entry.repository}` : ''}`, type: 'prune_backup', module: 'backup', target: `${m.id}${several ? ` in ${entry.repository}` : ''}`,
      reason: `requested (backup delete ${m.id}${options.force ? ' --force' : ''})`, risk: 'destructive', estimate: { bytes: m.totalBytes },
      params: { id: m.id, schedule: m.schedule, service: m.service, byId: true, ...(several ? { repository: entry.repository } : {}), ...(options.force ? { lastValid: true } : {}) },
    };
  });
  const { HANDLERS, apply } = await engine();
  const record = newRecord();
  const parts: EngineParts = {
    modules: [commandModule({ name: 'backup', observe: async () => ({}) }, () => actions)],
    handlers: { ...HANDLERS, prune_backup: recording(HANDLERS.prune_backup, record) },
  };
  const run = await apply({ desired, parts, env: options.env, lockTimeoutMs: options.lockTimeoutMs, probeServices: false, reporter: options.waitingForLock ? { waitingForLock: options.waitingForLock } : {} });
  const deleted = actions.flatMap((a) => {
    const details = record.outcomes.get(a.id)?.details;
    return details ? [{ id: String(details.id), repository: String(details.repository), totalBytes: Number(details.totalBytes) }] : [];
  });
  throwIfFailed(run, record);
  return { deleted, run };
}
