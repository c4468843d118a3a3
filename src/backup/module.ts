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
 * - Pruning base backups prunes the WAL archived before the oldest base backup kept in each
 *   repository (`planWalPrunes`, the cut-off decided in src/wal/prune.ts), after those prunes.
 * - `verify: restore` schedules get a restore test of their newest backup: of the one this
 *   apply creates when the schedule is due, else of the newest one if none was restore-tested.
 * - With `schema.backupBefore`, a PostgreSQL backup before the migrations the migrate module
 *   plans (src/backup/pre-change.ts), which require it.
 * - Damaged backups are the health module's finding (`backups.damaged.<schedule>`, from the
 *   backups probe, in every plan and health check); here they only explain a create.
 */
import type { BackupSchedule, Desired, KeepRules } from '../config/types.js';
import type { Action, CopyBackup, CreateBackup, DomainModule, Finding, Handler, ModulePlan, PlanError, PruneBackup, PruneWal, RestoreBackup, VerifyBackup } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { formatBytes, plural } from '../render/format.js';
import { planMigrations } from '../migrate/plan.js';
import type { MigrateObserved } from '../migrate/observe.js';
import { formatFireTime, MAX_COUNTED_RUNS, scheduleStatus } from '../schedule/due.js';
import { openRepositories, repositoryConfigs, type Repository } from '../storage/repositories.js';
import { findBackup, scanStorage, toObserved, type ObservedBackup } from './catalog.js';
import { applyKeepRules } from './keep.js';
import { describeScheduleChanges } from './describe.js';
import { keepDecisions, scheduleByName } from './operations.js';
import { createActionId, withPreChangeBackup } from './pre-change.js';
import { cleanDebris, findDebris } from './storage.js';
import { planPointPrunes, planPoints } from './point-plan.js';
import { cleanPointDebris, scanPoints, toObservedPoint } from './point-store.js';
import { protectPointMembers, type ObservedPoint } from './points.js';
import { observeWalArchives, type ObservedWal } from '../wal/observe.js';
import { prunableWal, segmentCount, walCutoff, type BaseStart } from '../wal/prune.js';

export interface ObservedScheduleBackup extends ObservedBackup {
  /** How the last verification was made, when there was one. */
  verifiedBy: 'checksum' | 'restore' | null;
}

export interface BackupObserved {
  /** One entry per copy: a backup in two repositories is listed twice, with each `repository`. */
  backups: ObservedScheduleBackup[];
  debris: string[];
  /** Published-looking dirs whose manifest fails (damaged backups). */
  invalid: { id: string; service: string; schedule: string; problem: string; repository?: string }[];
  /** The repositories, in order, and whether their catalog could be read (absent: the first alone, read). */
  repositories?: { name: string; reachable: boolean; location?: string; message?: string }[];
  /**
   * The archived WAL of each repository read (observed when PostgreSQL has pitr enabled or a
   * physical schedule): what the WAL prune plans from. Absent: not observed, nothing to prune.
   */
  wal?: ObservedWal[];
  /** Recovery points, one entry per copy (src/backup/points.ts); absent: none read. */
  points?: ObservedPoint[];
}

export type { ObservedWal } from '../wal/observe.js';

/** A repository as planning sees it: its keep rules and whether its catalog was read. */
interface RepositoryView { name: string; keep?: KeepRules; reachable: boolean; location?: string; message?: string }

/** Pure: the repositories of `desired` in order, with what observation found of each. */
function repositoryViews(desired: Desired, observed: BackupObserved): RepositoryView[] {
  return repositoryConfigs(desired).map((c) => {
    const seen = observed.repositories?.find((r) => r.name === c.name);
    return { name: c.name, keep: c.keep, reachable: seen?.reachable ?? true, location: seen?.location, message: seen?.message };
  });
}

/** The repository a copy is in (observations made before repositories: the first). */
function repositoryOf(b: { repository?: string }, repositories: readonly RepositoryView[]): string {
  return b.repository ?? repositories[0]!.name;
}

/** One entry per backup id (the first copy, a valid one when there is one): what is due and verified is about backups, not copies. */
function uniqueBackups(observed: BackupObserved): BackupObserved {
  const byId = new Map<string, ObservedScheduleBackup>();
  for (const b of observed.backups) {
    const seen = byId.get(b.id);
    if (!seen || (seen.verified === false && b.verified !== false)) byId.set(b.id, b);
  }
  const invalid = observed.invalid.filter((d, i, all) => !byId.has(d.id) && all.findIndex((x) => x.id === d.id) === i);
  return { ...observed, backups: [...byId.values()], invalid };
}

function ruleLabels(schedule: Pick<BackupSchedule, 'keep'>): string {
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

/** Pure: the prunes of every repository that was read, each by its own keep rules (or the schedule's). */
export function planPrunes(desired: Desired, observed: BackupObserved, out: { actions: Action[]; findings: Finding[] }): void {
  const repositories = repositoryViews(desired, observed);
  const several = repositoryConfigs(desired).length > 1 || desired.repositories !== undefined;
  for (const repository of repositories) {
    if (!repository.reachable) continue;
    const inRepository = {
      ...observed, backups: observed.backups.filter((b) => repositoryOf(b, repositories) === repository.name),
      points: (observed.points ?? []).filter((p) => repositoryOf(p, repositories) === repository.name),
    };
    const rulesOf = (s: BackupSchedule): BackupSchedule => (repository.keep ? { ...s, keep: repository.keep } : s);
    const withRules = repository.keep ? { ...desired, backups: desired.backups.map(rulesOf) } : desired;
    planPrunesIn(withRules, inRepository, out, repository.name === repositories[0]!.name ? undefined : repository.name, several ? repository.name : undefined);
  }
}

/**
 * The prunes in one repository. `idSuffix`: the repository's name in action ids (not for the
 * first, whose ids are those of a single repository); `repository`: in params and reasons.
 */
function planPrunesIn(desired: Desired, observed: BackupObserved, out: { actions: Action[]; findings: Finding[] }, idSuffix: string | undefined, repository: string | undefined): void {
  const where = repository ? ` in ${repository}` : '';
  const decided = keepDecisions(desired, observed.backups);
  // The members of a kept point are kept (src/backup/points.ts); a point whose anchor goes is pruned first.
  const { pruned: prunedPoints } = protectPointMembers(decided, observed.points ?? []);
  for (const [name, { schedule, decisions }] of decided) {
    const mine = backupsOf(schedule, observed);
    const byId = new Map(mine.map((b) => [b.id, b]));
    const pruned = new Set(decisions.filter((d) => !d.keep).map((d) => d.id));
    // The newest valid backup (of this repository): if the keep rules would drop it, every valid backup there would go.
    const newestValid = mine.find(isValid);
    const lastValidGoes = newestValid !== undefined && pruned.has(newestValid.id);
    if (lastValidGoes && !schedule.allowPruneLast) {
      pruned.delete(newestValid.id);
      out.findings.push({
        check: `backup.keep.${name}${idSuffix ? `.${idSuffix}` : ''}`, service: schedule.service, status: 'WARNING', value: newestValid.id, threshold: ruleLabels(schedule),
        message: `${newestValid.id} is outside the keep rules of ${name}${where} but is its last valid backup there (the newer ones failed verification); kept (set allowPruneLast: true to prune it)`,
      });
    }
    for (const d of decisions) {
      if (!pruned.has(d.id)) continue;
      const b = byId.get(d.id)!;
      const last = lastValidGoes && b.id === newestValid!.id;
      out.actions.push({
        id: `backup.prune.${d.id}${idSuffix ? `.${idSuffix}` : ''}`, type: 'prune_backup', module: 'backup', target: repository ? `${d.id} in ${repository}` : d.id,
        reason: `outside keep rules ${ruleLabels(schedule)} of ${name}${where}${last ? '; the last valid backup of the schedule (allowPruneLast)' : ''}${b.verified === false ? '; failed verification' : ''}`,
        risk: 'destructive', estimate: { bytes: b.totalBytes, backups: 1 },
        params: { id: d.id, schedule: name, service: schedule.service, ...(repository ? { repository } : {}), ...(last ? { lastValid: true } : {}) },
        ...(repository ? { repositories: [repository] } : {}),
      });
    }
  }
  planPointPrunes(observed.points ?? [], prunedPoints, out, repository, idSuffix);
}

/**
 * Pure: per repository, a prune_wal of the archived WAL that no base backup kept there needs once
 * the prune_backup actions already in `out` have run (src/wal/prune.ts decides the cut-off). It
 * requires those prunes of physical base backups in that repository, so it runs after them and
 * not at all when one of them is held back. No physical base backup kept there: its WAL is kept.
 * A damaged PostgreSQL backup there may be a base backup: nothing is pruned, and a finding says so.
 */
export function planWalPrunes(desired: Desired, observed: BackupObserved, out: { actions: Action[]; findings: Finding[] }): void {
  if (!observed.wal) return;
  const repositories = repositoryViews(desired, observed);
  for (const wal of observed.wal) {
    const repository = repositories.find((r) => r.name === wal.repository);
    if (!repository?.reachable) continue;
    if ('error' in wal) {
      out.findings.push({
        check: `backup.wal_prune.${wal.repository}`, service: 'postgres', status: 'WARNING', value: null, threshold: null,
        message: `the WAL archive of repository ${wal.repository} cannot be listed (${wal.error}): its WAL is not pruned`,
      });
      continue;
    }
    const here = observed.backups.filter((b) => repositoryOf(b, repositories) === wal.repository);
    const prunes = out.actions.filter((a): a is PruneBackup => a.type === 'prune_backup' && (a.params.repository ?? repositories[0]!.name) === wal.repository);
    const pruned = new Set(prunes.map((a) => a.params.id));
    const kept: BaseStart[] = here.flatMap((b) => (b.walStart && !pruned.has(b.id) ? [{ id: b.id, ...b.walStart }] : []));
    const cutoff = walCutoff(kept, wal.segmentBytes);
    if (!cutoff) continue;
    const names = prunableWal(wal.timelines, cutoff.segment, wal.segmentBytes);
    if (names.length === 0) continue;
    const damaged = observed.invalid.find((d) => d.service === 'postgres' && (d.repository ?? repositories[0]!.name) === wal.repository);
    if (damaged) {
      out.findings.push({
        check: `backup.wal_prune.${wal.repository}`, service: 'postgres', status: 'WARNING', value: plural(names.length, 'WAL file'), threshold: null,
        message: `${plural(names.length, 'WAL file')} before ${cutoff.segment} in ${wal.repository} are not pruned: backup ${damaged.id} there is damaged (${damaged.problem}) and may be a base backup that needs them`,
      });
      continue;
    }
    const bytes = segmentCount(names) * wal.segmentBytes;
    const after = prunes.filter((a) => here.some((b) => b.id === a.params.id && b.walStart));
    out.actions.push({
      id: `backup.prune.wal.${wal.repository}`, type: 'prune_wal', module: 'backup', target: `${wal.repository}: ${plural(names.length, 'WAL file')} before ${cutoff.segment}`,
      reason: `needed by no kept base backup (the oldest kept there, ${cutoff.baseBackup}, starts in ${cutoff.segment})`,
      risk: 'destructive', estimate: { bytes },
      params: { repository: wal.repository, before: cutoff.segment, files: names.length, bytes },
      repositories: [wal.repository],
      ...(after.length ? { requires: after.map((a) => a.id) } : {}),
    } satisfies PruneWal);
  }
}

/**
 * Pure: copies to every other repository. A due backup is copied to each other repository once
 * it is created (unreachable ones too: the error holds those copies back); an existing valid
 * backup that a repository lacks is copied there when that repository's keep rules, applied to
 * what it holds plus what it lacks, would keep it (never a copy that its next prune removes).
 */
export function planCopies(desired: Desired, observed: BackupObserved, created: ReadonlyMap<string, CreateBackup>, out: { actions: Action[] }): void {
  const repositories = repositoryViews(desired, observed);
  if (repositories.length < 2) return;
  for (const schedule of desired.backups) {
    const create = created.get(schedule.name);
    if (create) out.actions.push(...copiesOfNewBackup(desired, observed, create));
    const copies = observed.backups.filter((b) => b.schedule === schedule.name && b.service === schedule.service);
    for (const to of repositories) {
      if (!to.reachable) continue;
      const here = copies.filter((b) => repositoryOf(b, repositories) === to.name);
      const held = new Set(here.map((b) => b.id));
      const missing = new Map<string, { backup: ObservedScheduleBackup; from: string }>();
      for (const from of repositories) {
        if (from.name === to.name || !from.reachable) continue;
        for (const b of copies) {
          if (repositoryOf(b, repositories) === from.name && isValid(b) && !held.has(b.id) && !missing.has(b.id)) missing.set(b.id, { backup: b, from: from.name });
        }
      }
      if (missing.size === 0) continue;
      const keep = to.keep ?? schedule.keep;
      const candidates = [...here, ...[...missing.values()].map((m) => m.backup)].map((b) => ({ id: b.id, time: b.startedAt }));
      const kept = new Set(applyKeepRules(candidates, keep, schedule.timezone).filter((d) => d.keep).map((d) => d.id));
      const ordered = [...missing.values()].sort((a, b) => b.backup.startedAt.localeCompare(a.backup.startedAt) || b.backup.id.localeCompare(a.backup.id));
      for (const { backup, from } of ordered) {
        if (!kept.has(backup.id)) continue;
        out.actions.push({
          id: `backup.copy.${backup.id}.${to.name}`, type: 'copy_backup', module: 'backup', target: `${schedule.name}/${backup.id} to ${to.name}`,
          reason: `missing there (from ${from}; kept by ${to.keep ? `${to.name}'s` : `${schedule.name}'s`} keep rules ${ruleLabels({ keep })})`,
          risk: 'safe', estimate: { bytes: backup.totalBytes, backups: 1 },
          params: { schedule: schedule.name, service: schedule.service, id: backup.id, from, to: to.name },
          repositories: [from, to.name],
        });
      }
    }
  }
}

/** Pure: the copies of the backup `create` makes to every repository but the one it is written to (`backup create` plans them too). */
export function copiesOfNewBackup(desired: Desired, observed: BackupObserved, create: CreateBackup): CopyBackup[] {
  const repositories = repositoryViews(desired, observed);
  const writtenTo = create.params.repository ?? repositories[0]!.name;
  const schedule = create.params.schedule;
  return repositories.filter((to) => to.name !== writtenTo).map((to): CopyBackup => ({
    id: `backup.copy.${schedule}.${to.name}`, type: 'copy_backup', module: 'backup', target: `${schedule}/<new backup> to ${to.name}`,
    reason: `missing there: the backup that ${create.id} creates in ${writtenTo}`, risk: 'safe', estimate: create.estimate,
    params: { schedule, service: create.params.service, fromAction: create.id, from: writtenTo, to: to.name },
    requires: [create.id], repositories: [writtenTo, to.name],
  }));
}

/** Pure: a plan error per repository whose catalog could not be read; it holds back only the actions that reach it. */
function unreachableErrors(desired: Desired, observed: BackupObserved): PlanError[] {
  return repositoryViews(desired, observed).filter((r) => !r.reachable).map((r) => ({
    module: 'backup', repository: r.name, path: repositoryConfigs(desired).find((c) => c.name === r.name)?.path,
    message: `repository ${r.name}${r.location ? ` (${r.location})` : ''} cannot be read: ${r.message ?? 'unreachable'}; copies to it and prunes in it are held back, the other repositories go on`,
  }));
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

/**
 * Pure: the actions for one observation. What is due and what to verify is decided on the
 * backups of every repository read (a backup in any of them counts); a due backup goes to the
 * first repository read, then copies to the others; each repository prunes its own.
 */
export function planBackups(desired: Desired, observed: BackupObserved, now: Date): ModulePlan {
  const out: ModulePlan = { actions: [], findings: [], errors: unreachableErrors(desired, observed) };
  const repositories = repositoryViews(desired, observed);
  const writeTo = repositories.find((r) => r.reachable);
  const unique = uniqueBackups(observed);
  const created = new Map<string, CreateBackup>();
  for (const schedule of desired.backups) {
    if (!writeTo) break;
    const start = out.actions.length;
    if (planCreate(schedule, backupsOf(schedule, unique), damagedOf(schedule, unique), now, out)) {
      let create = out.actions[start] as CreateBackup;
      if (writeTo.name !== repositories[0]!.name) {
        create = { ...create, reason: `${create.reason}; written to ${writeTo.name} (${repositories[0]!.name} cannot be read)`, params: { ...create.params, repository: writeTo.name } };
        out.actions[start] = create;
      }
      created.set(schedule.name, create);
    }
  }
  planCopies(desired, observed, created, out);
  planPoints(desired, observed, now, out);
  planPrunes(desired, observed, out);
  planWalPrunes(desired, observed, out);
  for (const schedule of desired.backups) planVerify(schedule, backupsOf(schedule, unique), created.has(schedule.name), out.actions);
  return out;
}

/** Whether the config archives WAL or takes base backups: only then is the WAL archive read. */
function archivesWal(desired: Desired): boolean {
  return desired.services.postgres?.pitr?.enabled === true || desired.backups.some((s) => s.service === 'postgres' && s.method === 'physical');
}

export const backupModule: DomainModule<BackupObserved> = {
  name: 'backup',
  appliesTo: (desired) => desired.backups.length > 0,
  async observe(ctx) {
    const repositories = openRepositories(ctx.desired, ctx.env);
    const scan = await scanStorage(repositories);
    // Not one repository answered: nothing can be planned from the catalog (as with one repository).
    const firstUnreachable = scan.unreachable[0];
    if (firstUnreachable && scan.unreachable.length === repositories.length) throw firstUnreachable.cause ?? new JarvisError('STORAGE_FAILED', firstUnreachable.message);
    const down = new Map(scan.unreachable.map((u) => [u.repository, u]));
    return {
      backups: scan.valid.map((e) => ({ ...toObserved(e), verifiedBy: e.manifest.verification?.how ?? null })),
      debris: await findDebris(repositories.filter((r) => !down.has(r.name))),
      invalid: scan.invalid.map(({ id, service, schedule, problem, repository }) => ({ id, service, schedule, problem, repository })),
      repositories: repositories.map((r) => {
        const u = down.get(r.name);
        return u ? { name: r.name, reachable: false, location: r.location, message: u.message } : { name: r.name, reachable: true, location: r.location };
      }),
      ...(archivesWal(ctx.desired) ? { wal: await observeWalArchives(repositories.filter((r) => !down.has(r.name))) } : {}),
      points: (await scanPoints(repositories.filter((r) => !down.has(r.name)))).points.map(toObservedPoint),
    };
  },
  plan(desired, observed, now, all) {
    const part = planBackups(desired, observed, now);
    // schema.backupBefore: the migration steps the migrate module plans require a backup first.
    const migrate = all.migrate as MigrateObserved | undefined;
    const migrating = desired.schema?.backupBefore === true && migrate !== undefined && planMigrations(desired.schema, migrate).actions.length > 0;
    if (!migrating) return part;
    // A pre-change backup that was not due is copied to the other repositories like any new one.
    const actions = withPreChangeBackup(desired, part.actions, observed, now);
    const copied = new Set(actions.flatMap((a) => (a.type === 'copy_backup' && a.params.fromAction ? [a.params.fromAction] : [])));
    const added = actions.flatMap((a) => (a.type === 'create_backup' && !copied.has(a.id) ? copiesOfNewBackup(desired, observed, a) : []));
    return { ...part, actions: [...actions, ...added] };
  },
  describeChange: describeScheduleChanges,
  // A copy in a repository other than the first is `<repository>:<id>`: a copy made or lost makes a saved plan stale.
  fingerprint: (observed) => {
    const first = observed.repositories?.[0]?.name;
    return { backups: observed.backups.map((b) => (b.repository && b.repository !== first ? `${b.repository}:${b.id}` : b.id)).sort() };
  },
  async beforeApply(ctx) {
    const repositories = openRepositories(ctx.desired, ctx.env);
    return [...await cleanDebris(repositories), ...await cleanPointDebris(repositories)].map((path) => `removed ${path}, left by a killed backup`);
  },
};

/**
 * create_backup. With `stop`, the backup itself stops when it aborts (`backup create` on
 * SIGTERM: its tool killed, what it staged removed); without, an apply or the daemon stopping
 * lets the running backup finish (a second signal forces the exit).
 */
export function createBackupHandlerWith(stop?: AbortSignal): Handler<CreateBackup> {
  return async (action, ctx, progress) => {
    const { createBackup } = await import('./operations.js');
    // A recovery point's PostgreSQL member: with PITR, where the WAL is as it starts (a PITR restore can reach it).
    const start = action.params.point ? await (await import('./point-store.js')).pointStart(ctx.desired) : null;
    const entry = await createBackup(ctx.desired, scheduleByName(ctx.desired, action.params.schedule), ctx.env, progress, new Date(), action.params.repository, stop);
    const m = entry.manifest;
    return {
      summary: `backup ${m.id} written${ctx.desired.repositories ? ` to ${entry.repository}` : ''}, ${formatBytes(m.totalBytes)} in ${plural(m.files.length, 'file')}`,
      details: {
        id: m.id, service: m.service, schedule: m.schedule, repository: entry.repository, dir: entry.dir, totalBytes: m.totalBytes, files: m.files.length, durationMs: m.durationMs,
        encrypted: m.encrypted, ...(start ? { startLsn: start.lsn, startAt: start.at } : {}),
      },
    };
  };
}

export const createBackupHandler: Handler<CreateBackup> = createBackupHandlerWith();

export const pruneBackupHandler: Handler<PruneBackup> = async (action, ctx) => {
  const { pruneOne } = await import('./operations.js');
  const { id, repository, byId, lastValid } = action.params;
  // By id (`backup delete`), the backup's schedule may be gone from the config.
  const allowPruneLast = Boolean((byId ? ctx.desired.backups.find((b) => b.name === action.params.schedule) : scheduleByName(ctx.desired, action.params.schedule))?.allowPruneLast);
  const allowLast = allowPruneLast || (byId === true && lastValid === true);
  const entry = await pruneOne(ctx.desired, id, { allowLast, allowNewest: allowLast || byId === true, byId: byId === true }, repository, ctx.env);
  return { summary: `backup ${entry.manifest.id} deleted${repository ? ` from ${repository}` : ''} (${formatBytes(entry.manifest.totalBytes)})`, details: { id: entry.manifest.id, repository: entry.repository, totalBytes: entry.manifest.totalBytes } };
};

/** Deletes the archived WAL of one repository that no base backup there needs (src/wal/prune.ts: never past what one needs now). */
export const pruneWalHandler: Handler<PruneWal> = async (action, ctx, progress) => {
  const { pruneWal } = await import('../wal/prune.js');
  const r = await pruneWal(ctx.desired, { repository: action.params.repository, before: action.params.before, env: ctx.env, progress });
  const held = r.held ? `; ${r.held}` : '';
  return {
    summary: `${plural(r.deleted, 'WAL file')} before ${r.before} deleted from ${r.repository} (${formatBytes(r.storedBytes)} stored)${held}`,
    details: { repository: r.repository, before: r.before, deleted: r.deleted, storedBytes: r.storedBytes, ...(r.held ? { held: r.held } : {}) },
  };
};

/** Copies a backup (by id, or the one an earlier create of this run wrote) to another repository. */
export const copyBackupHandler: Handler<CopyBackup> = async (action, ctx, progress) => {
  const { copyBackup } = await import('./operations.js');
  const { from, to } = action.params;
  const id = backupIdOf(action, ctx.outcomes);
  const { entry, copied } = await copyBackup(ctx.desired, { id, from, to, env: ctx.env, progress });
  const m = entry.manifest;
  return {
    summary: copied ? `backup ${m.id} copied from ${from} to ${to}, ${formatBytes(m.totalBytes)} in ${plural(m.files.length, 'file')}` : `backup ${m.id} already in ${to}`,
    details: { id: m.id, from, to, dir: entry.dir, totalBytes: m.totalBytes, copied },
  };
};

/** The backup an action is about: by id, or the one an earlier action of this run created. */
function backupIdOf(action: VerifyBackup | CopyBackup, outcomes: ReadonlyMap<string, { details?: Record<string, unknown> }>): string {
  if (action.params.id !== undefined) return action.params.id;
  const from = String(action.params.fromAction);
  const id = outcomes.get(from)?.details?.id;
  if (typeof id !== 'string') throw new JarvisError('PLAN_INVALID', `${action.id} ${action.type === 'copy_backup' ? 'copies' : 'verifies'} the backup of ${from}, which did not run in this apply`);
  return id;
}

export const verifyBackupHandler: Handler<VerifyBackup> = async (action, ctx, progress) => {
  const { verifyBackup } = await import('./operations.js');
  const entry = await findBackup(openRepositories(ctx.desired, ctx.env), backupIdOf(action, ctx.outcomes));
  const r = await verifyBackup(ctx.desired, entry, { restoreTest: action.params.restoreTest, env: ctx.env, progress });
  if (!r.ok) throw new JarvisError('VERIFY_FAILED', `backup ${entry.manifest.id} failed verification: ${r.message}`);
  // A base backup is only as good as the WAL its recovery replays.
  const { verifyWalOfBase, walChecked, walProblems, WAL_FAILED_HINT } = await import('../wal/verify.js');
  const repository = openRepositories(ctx.desired, ctx.env).find((x) => x.name === entry.repository)!;
  const wal = await verifyWalOfBase(ctx.desired, entry.manifest, repository, { env: ctx.env });
  if (wal && !wal.ok) throw new JarvisError('VERIFY_FAILED', `the archived WAL of backup ${entry.manifest.id} failed verification: ${walProblems(wal)[0]}`, { hint: WAL_FAILED_HINT });
  const walSummary = wal ? `; WAL ${walChecked(wal)}: checksums match` : '';
  return { summary: `backup ${entry.manifest.id} verified: ${r.message}${walSummary}`, details: { id: entry.manifest.id, ...(wal ? { walFiles: wal.files } : {}) } };
};

/** `jarvis-db restore` (command-only): checksums first, then the service's driver. */
export const restoreBackupHandler: Handler<RestoreBackup> = async (action, ctx, progress) => {
  const { restoreBackup } = await import('./operations.js');
  const { id, service: _service, ...options } = action.params;
  const r = await restoreBackup(ctx.desired, id, { ...options, env: ctx.env, progress });
  return { summary: r.summary, details: { target: r.target, ...r.details } };
};
