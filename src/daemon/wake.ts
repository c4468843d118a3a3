/**
 * When the daemon next wakes to apply: the earliest next fire time of any backup schedule's
 * cron, in its timezone. Pure.
 */
import type { BackupSchedule } from '../config/types.js';
import { nextRun } from '../config/cron.js';

export interface Wake { at: Date; schedules: string[] }

export function nextWake(schedules: Pick<BackupSchedule, 'name' | 'cron' | 'timezone'>[], after: Date): Wake | null {
  let best: Wake | null = null;
  for (const s of schedules) {
    const at = nextRun(s.cron, s.timezone, after);
    if (!best || at.getTime() < best.at.getTime()) best = { at, schedules: [s.name] };
    else if (at.getTime() === best.at.getTime()) best.schedules.push(s.name);
  }
  return best;
}

/** setTimeout's longest delay; a later wake is re-computed when this one fires. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
