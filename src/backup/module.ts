/**
 * The `backup` domain module (issue 4 item 5): observe the catalog (read-only), plan
 * create / prune / verify actions (pure), and the handlers that execute them.
 *
 * - A schedule is due per src/schedule, from its cron, its timezone and its newest valid
 *   backup (a backup whose verification failed does not count).
 * - Keep rules (src/backup/keep.ts through `keepDecisions`) become destructive prune actions.
 *   The newest backup of a schedule is never pruned (keep.ts); when the newest ones failed
 *   verification, the newest backup still valid is protected too, unless the schedule says
 *   `allowPruneLast` (docs/architecture.md §4 rule 4).
 * - `verify: restore` schedules get a restore test of their newest backup: of the one this
 *   apply creates when the schedule is due, else of the newest one if none was restore-tested.
 * - With `schema.backupBefore`, a PostgreSQL backup before the migrations the migrate module
 *   plans (src/backup/pre-change.ts), which require it.
 * - Damaged backups are the health module's finding (`backups.damaged.<schedule>`, from the
 *   backups probe, in every plan and health check); here they only explain a create.
 */
import type { BackupSchedule, Desired } from '../config/types.js';
import type { Action, CreateBackup, DomainModule, Finding, Handler, ModulePlan, PlanError, PruneBackup, RestoreBackup, VerifyBackup } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { formatBytes, plural } from '../render/format.js';
import { planMigrations } from '../migrate/plan.js';
import type { MigrateObserved } from '../migrate/observe.js';
import { formatFireTime, MAX_COUNTED_RUNS, scheduleStatus } from '../schedule/due.js';
import { findBackup, scanStorage, toObserved, type ObservedBackup } from './catalog.js';
import { describeScheduleChanges } from './describe.js';
import { keepDecisions, scheduleByName } from './operations.js';
import { createActionId, withPreChangeBackup } from './pre-change.js';
import { cleanDebris, findDebris } from './storage.js';

export interface ObservedScheduleBackup extends ObservedBackup {
  /** How the last verification was made, when there was one. */
  verifiedBy: 'checksum' | 'restore' | null;
}

export interface BackupObserved {
  backups: ObservedScheduleBackup[];
  debris: string[];
  /** Published-looking dirs whose manifest fails (damaged backups). */
  invalid: { id: string; service: string; schedule: string; problem: string }[];
}

function ruleLabels(schedule: BackupSchedule): string {
  const k = schedule.keep;
  return (['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly', 'within'] as const)
    .filter((r) => k[r] !== undefined && k[r] !== 0)
    .map((r) => `${r}=${k[r]}`)
    .join(', ');
}

/** A schedule's backups in the catalog, newest first. */
function backupsOf(schedule: BackupSchedule, observed: BackupObserved): ObservedScheduleBackup[] {
  return observed.backups
    .filter((b) => b.schedule === schedule.name && b.service === schedule.service)
    .sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
}

const isValid = (b: ObservedScheduleBackup) => b.verified !== false;

/** A schedule's damaged backups (their manifest does not hold), newest first. */
function damagedOf(schedule: BackupSchedule, observed: BackupObserved): BackupObserved['invalid'] {
  return observed.invalid.filter((b) => b.schedule === schedule.name && b.service === schedule.service).sort((a, b) => b.id.localeCompare(a.id));
}

/** Why a schedule without a valid backup is due: none yet, or the ones it has failed or are damaged. */
function noValidBackupReason(mine: ObservedScheduleBackup[], damaged: BackupObserved['invalid']): string {
  if (mine.length) return `no valid backup: the newest, ${mine[0]!.id}, failed verification`;
  const d = damaged[0];
  if (!d) return 'no backup yet';
  return damaged.length === 1
    ? `no valid backup: the only one, ${d.id}, is damaged (${d.problem})`
    : `no valid backup: all ${damaged.length} are damaged, the newest ${d.id} (${d.problem})`;
}

function planCreate(schedule: BackupSchedule, mine: ObservedScheduleBackup[], damaged: BackupObserved['invalid'], now: Date, out: { actions: Action[]; findings: Finding[]; errors: PlanError[] }): boolean {
  const newestValid = mine.find(isValid);
  let status;
  try {
    status = scheduleStatus(schedule, newestValid ? new Date(newestValid.startedAt) : null, now);
  } catch (e) {
    out.errors.push({ module: 'backup', message: `${schedule.name}: ${(e as Error).message}`, path: `${schedule.path}.cron` });
    return false;
  }
  if (status.clockBehind) {
    out.findings.push({
      check: `backup.clock.${schedule.name}`, service: schedule.service, status: 'WARNING', value: status.lastBackupAt, threshold: null,
      message: `the newest backup of ${schedule.name} started at ${status.lastBackupAt}, later than the clock (${now.toISOString()}): is the clock behind?`,
    });
  }
  if (!status.due) return false;
  let reason: string;
  if (status.neverRan) reason = noValidBackupReason(mine, damaged);
  else {
    reason = `due since ${formatFireTime(new Date(status.dueSince!), schedule.timezone, now)} per \`${schedule.cron}\``;
    if (status.missedRuns > 1) reason += ` (${status.missedRuns >= MAX_COUNTED_RUNS ? `${MAX_COUNTED_RUNS}+` : status.missedRuns} runs missed)`;
    if (newestValid !== mine[0]) reason += `; the newer ${mine[0]!.id} failed verification`;
  }
  out.actions.push(createBackupAction(schedule, reason, newestValid));
  return true;
}

/** The create_backup action of a schedule, as `plan` makes it (and `backup create`, src/backup/commands.ts). */
export function createBackupAction(schedule: BackupSchedule, reason: string, newestValid: ObservedScheduleBackup | undefined): CreateBackup {
  return {
    id: createActionId(schedule.name), type: 'create_backup', module: 'backup', target: schedule.name, reason,
    risk: 'safe', estimate: newestValid ? { bytes: newestValid.totalBytes } : null,
    params: { schedule: schedule.name, service: schedule.service },
    services: [schedule.service],
  };
}

/** A schedule's newest backup that did not fail verification. */
export function newestValidBackup(schedule: BackupSchedule, observed: BackupObserved): ObservedScheduleBackup | undefined {
  return backupsOf(schedule, observed).find(isValid);
}

export function planPrunes(desired: Desired, observed: BackupObserved, out: { actions: Action[]; findings: Finding[] }): void {
  for (const [name, { schedule, decisions }] of keepDecisions(desired, observed.backups)) {
    const mine = backupsOf(schedule, observed);
    const byId = new Map(mine.map((b) => [b.id, b]));
    const pruned = new Set(decisions.filter((d) => !d.keep).map((d) => d.id));
    // The newest valid backup: if the keep rules would drop it, every valid backup would go.
    const newestValid = mine.find(isValid);
    const lastValidGoes = newestValid !== undefined && pruned.has(newestValid.id);
    if (lastValidGoes && !schedule.allowPruneLast) {
      pruned.delete(newestValid.id);
      out.findings.push({
        check: `backup.keep.${name}`, service: schedule.service, status: 'WARNING', value: newestValid.id, threshold: ruleLabels(schedule),
        message: `${newestValid.id} is outside the keep rules of ${name} but is its last valid backup (the newer ones failed verification); kept (set allowPruneLast: true to prune it)`,
      });
    }
    for (const d of decisions) {
      if (!pruned.has(d.id)) continue;
      const b = byId.get(d.id)!;
      const last = lastValidGoes && b.id === newestValid!.id;
      out.actions.push({
        id: `backup.prune.${d.id}`, type: 'prune_backup', module: 'backup', target: d.id,
        reason: `outside keep rules ${ruleLabels(schedule)} of ${name}${last ? '; the last valid backup of the schedule (allowPruneLast)' : ''}${b.verified === false ? '; failed verification' : ''}`,
        risk: 'destructive', estimate: { bytes: b.totalBytes, backups: 1 },
        params: { id: d.id, schedule: name, service: schedule.service, ...(last ? { lastValid: true } : {}) },
      });
    }
  }
}

function planVerify(schedule: BackupSchedule, mine: ObservedScheduleBackup[], willCreate: boolean, actions: Action[]): void {
  if (schedule.verify !== 'restore') return;
  if (willCreate) {
    const createId = createActionId(schedule.name);
    actions.push({
      id: `backup.verify.${schedule.name}`, type: 'verify_backup', module: 'backup', target: `${schedule.name} (new backup)`,
      reason: `restore test of the backup that ${createId} creates (verify: restore)`, risk: 'safe', estimate: mine[0] ? { bytes: mine[0].totalBytes } : null,
      params: { schedule: schedule.name, fromAction: createId, restoreTest: true }, requires: [createId], services: [schedule.service],
    });
    return;
  }
  const newest = mine[0];
  if (newest && newest.verified !== false && newest.verifiedBy !== 'restore') {
    actions.push({
      id: `backup.verify.${newest.id}`, type: 'verify_backup', module: 'backup', target: newest.id,
      reason: `newest backup of ${schedule.name} not yet restore-tested (verify: restore)`, risk: 'safe', estimate: { bytes: newest.totalBytes },
      params: { id: newest.id, schedule: schedule.name, restoreTest: true },
      services: [schedule.service],
    });
  }
}

/** Pure: the actions for one observation. */
export function planBackups(desired: Desired, observed: BackupObserved, now: Date): ModulePlan {
  const out: ModulePlan = { actions: [], findings: [], errors: [] };
  const willCreate = new Set<string>();
  for (const schedule of desired.backups) {
    if (planCreate(schedule, backupsOf(schedule, observed), damagedOf(schedule, observed), now, out)) willCreate.add(schedule.name);
  }
  planPrunes(desired, observed, out);
  for (const schedule of desired.backups) planVerify(schedule, backupsOf(schedule, observed), willCreate.has(schedule.name), out.actions);
  return out;
}

export const backupModule: DomainModule<BackupObserved> = {
  name: 'backup',
  appliesTo: (desired) => desired.backups.length > 0,
  async observe(ctx) {
    const scan = await scanStorage(ctx.desired.storage.path);
    return {
      backups: scan.valid.map((e) => ({ ...toObserved(e), verifiedBy: e.manifest.verification?.how ?? null })),
      debris: await findDebris(ctx.desired.storage.path),
      invalid: scan.invalid.map(({ id, service, schedule, problem }) => ({ id, service, schedule, problem })),
    };
  },
  plan(desired, observed, now, all) {
    const part = planBackups(desired, observed, now);
    // schema.backupBefore: the migration steps the migrate module plans require a backup first.
    const migrate = all.migrate as MigrateObserved | undefined;
    const migrating = desired.schema?.backupBefore === true && migrate !== undefined && planMigrations(desired.schema, migrate).actions.length > 0;
    return migrating ? { ...part, actions: withPreChangeBackup(desired, part.actions, observed, now) } : part;
  },
  describeChange: describeScheduleChanges,
  fingerprint: (observed) => ({ backups: observed.backups.map((b) => b.id).sort() }),
  async beforeApply(ctx) {
    return (await cleanDebris(ctx.desired.storage.path)).map((path) => `removed ${path}, left by a killed backup`);
  },
};

export const createBackupHandler: Handler<CreateBackup> = async (action, ctx, progress) => {
  const { createBackup } = await import('./operations.js');
  const entry = await createBackup(ctx.desired, scheduleByName(ctx.desired, action.params.schedule), ctx.env, progress);
  const m = entry.manifest;
  return {
    summary: `backup ${m.id} written, ${formatBytes(m.totalBytes)} in ${plural(m.files.length, 'file')}`,
    details: { id: m.id, dir: entry.dir, totalBytes: m.totalBytes, files: m.files.length, durationMs: m.durationMs, encrypted: m.encrypted },
  };
};

export const pruneBackupHandler: Handler<PruneBackup> = async (action, ctx) => {
  const { pruneOne } = await import('./operations.js');
  const schedule = scheduleByName(ctx.desired, action.params.schedule);
  const entry = await pruneOne(ctx.desired, action.params.id, Boolean(schedule.allowPruneLast));
  return { summary: `backup ${entry.manifest.id} deleted (${formatBytes(entry.manifest.totalBytes)})` };
};

/** The backup to verify: by id, or the one an earlier action of this run created. */
function verifyTarget(action: VerifyBackup, outcomes: ReadonlyMap<string, { details?: Record<string, unknown> }>): string {
  if (action.params.id !== undefined) return action.params.id;
  const from = String(action.params.fromAction);
  const id = outcomes.get(from)?.details?.id;
  if (typeof id !== 'string') throw new JarvisError('PLAN_INVALID', `${action.id} verifies the backup of ${from}, which did not run in this apply`);
  return id;
}

export const verifyBackupHandler: Handler<VerifyBackup> = async (action, ctx, progress) => {
  const { verifyBackup } = await import('./operations.js');
  const entry = await findBackup(ctx.desired.storage.path, verifyTarget(action, ctx.outcomes));
  const r = await verifyBackup(ctx.desired, entry, { restoreTest: action.params.restoreTest, env: ctx.env, progress });
  if (!r.ok) throw new JarvisError('VERIFY_FAILED', `backup ${entry.manifest.id} failed verification: ${r.message}`);
  return { summary: `backup ${entry.manifest.id} verified: ${r.message}`, details: { id: entry.manifest.id } };
};

/** `jarvis-db restore` (command-only): checksums first, then the service's driver. */
export const restoreBackupHandler: Handler<RestoreBackup> = async (action, ctx, progress) => {
  const { restoreBackup } = await import('./operations.js');
  const { id, service: _service, ...options } = action.params;
  const r = await restoreBackup(ctx.desired, id, { ...options, env: ctx.env, progress });
  return { summary: r.summary, details: { target: r.target, ...r.details } };
};
