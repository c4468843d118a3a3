/**
 * Backups: for each schedule, how old its newest valid backup is against the schedule's cron
 * interval, how many valid and damaged backups it has, and the result of its most recent
 * verification. The catalog is the manifests in storage (src/backup/catalog.ts).
 */
import type { BackupSchedule, Desired } from '../../config/types.js';
import { nextRun } from '../../config/cron.js';
import { lastFireAtOrBefore } from '../../schedule/due.js';
import { messageOf } from '../../errors.js';
import type { Sample } from '../samples.js';
import { formatSeconds } from '../format.js';

/** What the probe needs of a catalog entry (plain data). */
export interface BackupFacts {
  id: string;
  service: string;
  schedule: string;
  startedAt: string;
  verification: { at: string; ok: boolean; message: string } | null;
}

export interface DamagedFacts { id: string; service: string; schedule: string; problem: string }

/** Seconds between the two most recent fire times of a cron at `now` (the schedule's period there). */
export function cronIntervalSeconds(schedule: Pick<BackupSchedule, 'cron' | 'timezone'>, now: Date): number {
  const last = lastFireAtOrBefore(schedule.cron, schedule.timezone, now);
  if (last) {
    const before = lastFireAtOrBefore(schedule.cron, schedule.timezone, new Date(last.getTime() - 1000));
    if (before) return (last.getTime() - before.getTime()) / 1000;
    return (nextRun(schedule.cron, schedule.timezone, last).getTime() - last.getTime()) / 1000;
  }
  const next = nextRun(schedule.cron, schedule.timezone, now);
  return (nextRun(schedule.cron, schedule.timezone, next).getTime() - next.getTime()) / 1000;
}

/** Pure: the samples of every schedule. */
export function backupSamples(schedules: BackupSchedule[], valid: BackupFacts[], damaged: DamagedFacts[], now: Date): Sample[] {
  const samples: Sample[] = [];
  for (const schedule of schedules) {
    const labels = { schedule: schedule.name };
    const mine = valid
      .filter((b) => b.schedule === schedule.name && b.service === schedule.service)
      .sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    const bad = damaged.filter((b) => b.schedule === schedule.name && b.service === schedule.service);
    samples.push({ check: 'backups.valid', labels, value: mine.length });
    samples.push({ check: 'backups.damaged', labels, value: bad.length, ...(bad.length ? { detail: bad.map((b) => `${b.id}: ${b.problem}`).join('; ') } : {}) });
    const newest = mine[0];
    if (!newest) {
      samples.push({ check: 'backups.age_interval_ratio', labels, value: null, problem: `no valid backup of ${schedule.service} schedule ${schedule.name}` });
    } else {
      const started = Date.parse(newest.startedAt);
      const age = Math.max((now.getTime() - started) / 1000, 0);
      samples.push({ check: 'backups.age_seconds', labels, value: age, detail: newest.id });
      samples.push({ check: 'backups.newest_timestamp_seconds', labels, value: started / 1000 });
      try {
        const interval = cronIntervalSeconds(schedule, now);
        samples.push({ check: 'backups.age_interval_ratio', labels, value: age / interval, detail: `${newest.id} is ${formatSeconds(age)} old, \`${schedule.cron}\` runs every ${formatSeconds(interval)}` });
      } catch (e) {
        samples.push({ check: 'backups.age_interval_ratio', labels, value: null, problem: `cron "${schedule.cron}": ${messageOf(e)}` });
      }
    }
    const verified = mine.filter((b) => b.verification).sort((a, b) => b.verification!.at.localeCompare(a.verification!.at))[0];
    if (verified) {
      const v = verified.verification!;
      samples.push({ check: 'backups.last_verification_success', labels, value: v.ok ? 1 : 0, detail: `${verified.id} at ${v.at}`, ...(v.ok ? {} : { problem: v.message }) });
    }
  }
  return samples;
}

export async function probeBackups(desired: Desired, now: Date): Promise<Sample[]> {
  const { scanStorage } = await import('../../backup/catalog.js');
  const { openRepositories } = await import('../../storage/repositories.js');
  const scan = await scanStorage(openRepositories(desired));
  // One sample set per backup, whichever repositories hold copies of it (the first copy: the first repository's).
  const firstCopies = scan.valid.filter((e, i, all) => all.findIndex((x) => x.manifest.id === e.manifest.id) === i);
  const valid = firstCopies.map(({ manifest: m }) => ({ id: m.id, service: m.service, schedule: m.schedule, startedAt: m.startedAt, verification: m.verification }));
  return backupSamples(desired.backups, valid, scan.invalid, now);
}
