/**
 * When a backup schedule is due (docs/architecture.md §1, issue 3 item 2). Pure: the cron expression,
 * its timezone, the start of the newest valid backup and a clock in; due / since when / next
 * runs out.
 *
 * The fire times are the ones cron-parser's `next()` produces, which behaves as cron(8) does
 * across daylight-saving changes: a time inside the skipped hour of spring fires once, an hour
 * later in wall-clock terms; a time inside the repeated hour of autumn fires once, at its first
 * occurrence. cron-parser's `prev()` disagrees with `next()` on those nights (it skips the
 * spring run and repeats the autumn one), so the previous fire time is found by stepping back
 * with `prev()` and then forward with `next()`.
 */
import { parseCron } from '../config/cron.js';

export interface ScheduleInput {
  name: string;
  service: string;
  cron: string;
  timezone: string;
}

export interface ScheduleStatus {
  name: string;
  service: string;
  cron: string;
  timezone: string;
  /** Start of the newest valid backup, or null when the schedule never ran. */
  lastBackupAt: string | null;
  /** The most recent fire time at or before now. */
  lastFireAt: string | null;
  due: boolean;
  /**
   * Since when it is due: the first fire time after the newest backup (the first run missed),
   * or, when it never ran, the most recent fire time (null if the cron has not fired yet).
   */
  dueSince: string | null;
  /** Fire times between the newest backup and now (counted up to MAX_COUNTED_RUNS). */
  missedRuns: number;
  neverRan: boolean;
  /** The newest backup is later than the clock: the clock is behind (or was set back). */
  clockBehind: boolean;
  nextRuns: string[];
}

/** Counting missed runs stops here (a minutely schedule that stopped a year ago). */
export const MAX_COUNTED_RUNS = 1000;

/** How far back `prev()` steps before walking forward; covers the one run prev() may skip. */
const STEPS_BACK = 3;

/** The fire times strictly after `after`, up to `count` of them. */
export function fireTimesAfter(cron: string, timezone: string, after: Date, count: number): Date[] {
  const expr = parseCron(cron, timezone, after);
  const out: Date[] = [];
  for (let i = 0; i < count; i++) {
    try {
      out.push(expr.next().toDate());
    } catch {
      break; // an expression with no further run (cron-parser gives up after its search limit)
    }
  }
  return out;
}

/** The most recent fire time at or before `at`, as `next()` defines fire times; null if none in reach. */
export function lastFireAtOrBefore(cron: string, timezone: string, at: Date): Date | null {
  const back = parseCron(cron, timezone, new Date(at.getTime() + 1));
  let anchor: Date | null = null;
  for (let i = 0; i < STEPS_BACK; i++) {
    try {
      anchor = back.prev().toDate();
    } catch {
      break;
    }
  }
  if (!anchor) return null;
  let last: Date | null = null;
  const forward = parseCron(cron, timezone, new Date(anchor.getTime() - 1));
  for (;;) {
    let t: Date;
    try {
      t = forward.next().toDate();
    } catch {
      return last;
    }
    if (t.getTime() > at.getTime()) return last;
    last = t;
  }
}

/** Fire times in (after, until], counted up to `limit`; the first of them is returned too. */
function runsBetween(cron: string, timezone: string, after: Date, until: Date, limit: number): { first: Date | null; count: number } {
  const expr = parseCron(cron, timezone, after);
  let first: Date | null = null;
  let count = 0;
  while (count < limit) {
    let t: Date;
    try {
      t = expr.next().toDate();
    } catch {
      break;
    }
    if (t.getTime() > until.getTime()) break;
    first ??= t;
    count++;
  }
  return { first, count };
}

/**
 * Due when a fire time has passed since the newest valid backup started (a backup started at
 * or after a fire time covers it), or when the schedule never ran. Throws JarvisError on an
 * invalid cron or timezone (the config loader has normally refused those already).
 */
export function scheduleStatus(schedule: ScheduleInput, newestBackupAt: Date | null, now: Date, nextCount = 1): ScheduleStatus {
  const lastFire = lastFireAtOrBefore(schedule.cron, schedule.timezone, now);
  const base = {
    name: schedule.name, service: schedule.service, cron: schedule.cron, timezone: schedule.timezone,
    lastBackupAt: newestBackupAt ? newestBackupAt.toISOString() : null,
    lastFireAt: lastFire ? lastFire.toISOString() : null,
    nextRuns: fireTimesAfter(schedule.cron, schedule.timezone, now, nextCount).map((d) => d.toISOString()),
  };
  if (!newestBackupAt) {
    return { ...base, due: true, dueSince: base.lastFireAt, missedRuns: 0, neverRan: true, clockBehind: false };
  }
  const clockBehind = newestBackupAt.getTime() > now.getTime();
  if (clockBehind || !lastFire || newestBackupAt.getTime() >= lastFire.getTime()) {
    return { ...base, due: false, dueSince: null, missedRuns: 0, neverRan: false, clockBehind };
  }
  // A backup started exactly at a fire time covers it: count the runs strictly after its start.
  const missed = runsBetween(schedule.cron, schedule.timezone, newestBackupAt, now, MAX_COUNTED_RUNS);
  return {
    ...base, due: true, dueSince: (missed.first ?? lastFire).toISOString(), missedRuns: missed.count, neverRan: false, clockBehind: false,
  };
}

/** The newest backup start per schedule (`service/schedule` key), from catalog entries. */
export function newestBackupBySchedule(backups: readonly { service: string; schedule: string; startedAt: string }[]): Map<string, Date> {
  const out = new Map<string, Date>();
  for (const b of backups) {
    const key = `${b.service}/${b.schedule}`;
    const t = new Date(b.startedAt);
    const seen = out.get(key);
    if (!seen || t.getTime() > seen.getTime()) out.set(key, t);
  }
  return out;
}

/** Every schedule's status, from the catalog's valid backups (verified ones or not yet verified). */
export function scheduleStatuses(
  schedules: readonly ScheduleInput[],
  validBackups: readonly { service: string; schedule: string; startedAt: string }[],
  now: Date,
  nextCount = 1,
): ScheduleStatus[] {
  const newest = newestBackupBySchedule(validBackups);
  return schedules.map((s) => scheduleStatus(s, newest.get(`${s.service}/${s.name}`) ?? null, now, nextCount));
}

/** Local wall-clock parts of an instant in a timezone. */
function localParts(d: Date, timeZone: string): { date: string; time: string } {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(d);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { date: `${get('year')}-${get('month')}-${get('day')}`, time: `${get('hour')}:${get('minute')}` };
}

/**
 * A fire time as people read it in the schedule's timezone: `03:00 UTC` on the same local day
 * as `now`, `2026-11-21 03:00 UTC` otherwise.
 */
export function formatFireTime(d: Date, timeZone: string, now: Date): string {
  const at = localParts(d, timeZone);
  const today = localParts(now, timeZone);
  return `${at.date === today.date ? '' : at.date + ' '}${at.time} ${timeZone}`;
}
