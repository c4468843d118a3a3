/**
 * The backup before migrations (`schema.backupBefore`, docs/architecture.md §2): the backup
 * module plans it, the migration steps `require` it, and so it runs first. It is the due backup
 * of the first postgres schedule that is due (its reason then says it is the pre-change one
 * too), or else a backup of the first postgres schedule, added. Pure, and small: the migrate
 * module asks it for the id its steps require.
 */
import type { BackupSchedule, Desired } from '../config/types.js';
import type { Action, CreateBackup } from '../engine/types.js';
import { scheduleStatus } from '../schedule/due.js';
import type { BackupObserved } from './module.js';

export const createActionId = (schedule: string) => `backup.create.${schedule}`;

const PRE_CHANGE_REASON = 'before migrations (schema.backupBefore)';

/** Whether the backup module plans a backup of the schedule now (as `planCreate` decides it). */
function isDue(schedule: BackupSchedule, observed: BackupObserved, now: Date): boolean {
  const newestValid = observed.backups
    .filter((b) => b.schedule === schedule.name && b.service === schedule.service && b.verified !== false)
    .reduce<string | null>((newest, b) => (newest === null || b.startedAt > newest ? b.startedAt : newest), null);
  try {
    return scheduleStatus(schedule, newestValid ? new Date(newestValid) : null, now).due;
  } catch {
    return false; // the schedule's own error (its cron) is the backup module's
  }
}

/**
 * The schedule whose backup comes before migrations; none when no schedule backs up postgres.
 * Without the catalog (`migrate up`, which does not read it), nothing counts as due.
 */
function preChangeSchedule(desired: Desired, observed: BackupObserved | null | undefined, now: Date): BackupSchedule | undefined {
  const postgres = desired.backups.filter((s) => s.service === 'postgres');
  return (observed ? postgres.find((s) => isDue(s, observed, now)) : undefined) ?? postgres[0];
}

/** The id of the backup that migration steps require when `schema.backupBefore`. */
export function preChangeBackupId(desired: Desired, observed: BackupObserved | null | undefined, now: Date): string | undefined {
  const schedule = preChangeSchedule(desired, observed, now);
  return schedule && createActionId(schedule.name);
}

/** The backup module's actions with the pre-change backup: its due backup marked, or one added first. */
export function withPreChangeBackup(desired: Desired, actions: readonly Action[], observed: BackupObserved | null | undefined, now: Date): Action[] {
  const schedule = preChangeSchedule(desired, observed, now);
  if (!schedule) return [...actions]; // the migrate module's error (schema.backupBefore)
  const id = createActionId(schedule.name);
  const due = actions.find((a): a is CreateBackup => a.id === id && a.type === 'create_backup');
  if (due) return actions.map((a) => (a === due ? { ...due, reason: `${due.reason}; and ${PRE_CHANGE_REASON}`, params: { ...due.params, preChange: true } } : a));
  const added: CreateBackup = {
    id, type: 'create_backup', module: 'backup', target: schedule.name, reason: PRE_CHANGE_REASON, risk: 'safe', estimate: null,
    params: { schedule: schedule.name, service: 'postgres', preChange: true }, services: ['postgres'],
  };
  return [added, ...actions];
}
