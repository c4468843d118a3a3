/**
 * Recovery points in a plan (pure; src/backup/points.ts says what a point is): the create_point
 * of a `service: all` schedule that is due (or of `backup create --service all`) after the
 * create_backup of each member and its copies, and the prune_point of a point whose anchor the
 * keep rules prune, which that prune requires (the point goes first, so a listed point never
 * names a deleted backup).
 */
import type { Desired, PointSchedule } from '../config/types.js';
import type { Action, CreateBackup, CreatePoint, Finding, ModulePlan, PrunePoint } from '../engine/types.js';
import { formatFireTime, scheduleStatus } from '../schedule/due.js';
import { copiesOfNewBackup, createBackupAction, newestValidBackup, type BackupObserved } from './module.js';
import { anchorOf, type ObservedPoint } from './points.js';

/** The points of `backup create --service all` without a `service: all` schedule: the first schedule of each service. */
export function implicitPoint(desired: Desired): PointSchedule {
  const members = (['postgres', 'redis', 'chroma'] as const).flatMap((service) => {
    const mine = desired.backups.filter((s) => s.service === service);
    const first = mine.find((s) => service !== 'postgres' || s.method !== 'physical') ?? mine[0];
    return first ? [{ service, schedule: first.name }] : [];
  });
  return { name: 'all', cron: '@daily', timezone: 'UTC', members, path: 'backups' };
}

/**
 * `actions` plus a point of `point`: a member whose create is already there is reused (the
 * PostgreSQL one marked `point`, so that it reads the WAL position as it starts); a missing one
 * is added with its copies. The create_point requires every member and copy.
 */
export function withPoint(desired: Desired, observed: BackupObserved, point: PointSchedule, reason: string, actions: readonly Action[]): Action[] {
  const out = [...actions];
  const members: string[] = [];
  const requires: string[] = [];
  for (const m of point.members) {
    const schedule = desired.backups.find((s) => s.name === m.schedule && s.service === m.service);
    if (!schedule) continue; // the config check refuses this; a point without the member is still a point of the others
    let i = out.findIndex((a) => a.type === 'create_backup' && a.params.schedule === m.schedule);
    if (i < 0) {
      const create = createBackupAction(schedule, `member of recovery point ${point.name}: ${reason}`, newestValidBackup(schedule, observed));
      out.push(create, ...copiesOfNewBackup(desired, observed, create));
      i = out.indexOf(create);
    }
    let create = out[i] as CreateBackup;
    if (m.service === 'postgres' && !create.params.point) out[i] = create = { ...create, params: { ...create.params, point: true } };
    members.push(create.id);
    requires.push(create.id, ...out.filter((a) => a.type === 'copy_backup' && a.params.fromAction === create.id).map((a) => a.id));
  }
  if (members.length === 0) return out;
  const action: CreatePoint = {
    id: `backup.point.${point.name}`, type: 'create_point', module: 'backup', target: point.name, reason,
    risk: 'safe', estimate: null, params: { schedule: point.name, members }, requires,
  };
  return [...out, action];
}

/** Pure: the points of every `service: all` schedule that is due, from the newest point of each. */
export function planPoints(desired: Desired, observed: BackupObserved, now: Date, out: ModulePlan): void {
  for (const point of desired.points ?? []) {
    const newest = (observed.points ?? []).filter((p) => p.schedule === point.name).sort((a, b) => b.startedAt.localeCompare(a.startedAt))[0];
    let status;
    try {
      status = scheduleStatus({ name: point.name, service: 'all', cron: point.cron, timezone: point.timezone }, newest ? new Date(newest.startedAt) : null, now);
    } catch (e) {
      out.errors.push({ module: 'backup', message: `${point.name}: ${(e as Error).message}`, path: `${point.path}.cron` });
      continue;
    }
    if (!status.due) continue;
    const reason = status.neverRan ? 'no recovery point yet' : `due since ${formatFireTime(new Date(status.dueSince!), point.timezone, now)} per \`${point.cron}\``;
    out.actions = withPoint(desired, observed, point, reason, out.actions);
  }
}

/**
 * Pure: in one repository, a prune_point for each point whose anchor `prunes` deletes there,
 * and that prune made to require it. A point whose anchor is kept (the last valid backup, say)
 * stays.
 */
export function planPointPrunes(points: readonly ObservedPoint[], prunedPoints: readonly string[], out: { actions: Action[]; findings: Finding[] }, repository: string | undefined, idSuffix: string | undefined): void {
  for (const id of prunedPoints) {
    const point = points.find((p) => p.id === id)!;
    const anchor = anchorOf(point);
    const i = out.actions.findIndex((a) => a.type === 'prune_backup' && a.params.id === anchor.id && a.params.repository === repository);
    if (i < 0) continue;
    const prune: PrunePoint = {
      id: `backup.prune.point.${id}${idSuffix ? `.${idSuffix}` : ''}`, type: 'prune_point', module: 'backup', target: repository ? `point ${id} in ${repository}` : `point ${id}`,
      reason: `its ${anchor.service} backup ${anchor.id} is pruned`, risk: 'destructive', estimate: null,
      params: { id, ...(repository ? { repository } : {}) }, ...(repository ? { repositories: [repository] } : {}),
    };
    const anchorPrune = out.actions[i]!;
    out.actions[i] = { ...anchorPrune, requires: [...(anchorPrune.requires ?? []), prune.id] } as Action;
    out.actions.push(prune);
  }
}
