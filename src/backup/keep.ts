/**
 * Keep rules with restic's `forget` semantics (pure):
 * - backups are walked newest first; `last` keeps the n newest; `hourly|daily|weekly|monthly|
 *   yearly` keep the newest backup of each of the n most recent calendar buckets that hold a
 *   backup (buckets in the schedule's timezone; weeks are ISO weeks, as restic's);
 * - `within` keeps every backup newer than the duration before the newest backup;
 * - rules are OR'ed: a backup is kept if any rule keeps it, with every reason listed;
 * - restic: "If there are not enough snapshots to keep one for each duration related
 *   --keep-{within-,} option, the oldest snapshot in the group is kept additionally."
 * Our addition (docs/architecture.md §4 rule 4): the newest valid backup is never pruned. With no rule
 * at all nothing is pruned (restic refuses to forget without a policy).
 */
import type { KeepRules } from '../config/types.js';
import { JarvisError } from '../errors.js';

export interface KeepInput { id: string; time: string | Date }
export interface KeepDecision { id: string; time: string; keep: boolean; reasons: string[] }

type Unit = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';
const UNITS: Unit[] = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];

interface LocalParts { year: number; month: number; day: number; hour: number }

const formatters = new Map<string, Intl.DateTimeFormat>();
function localParts(time: Date, timeZone: string): LocalParts {
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric' });
    } catch (e) {
      throw new JarvisError('CONFIG_INVALID', `unknown timezone "${timeZone}"`, { cause: e });
    }
    formatters.set(timeZone, f);
  }
  const parts: Record<string, number> = {};
  for (const p of f.formatToParts(time)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour! };
}

function isoWeek(p: LocalParts): number {
  // ISO week of the local calendar date: the Thursday of its week decides the year.
  const date = new Date(Date.UTC(p.year, p.month - 1, p.day));
  const weekday = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - weekday);
  const yearStart = new Date(Date.UTC(date.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((date.getTime() - yearStart.getTime()) / 86400000 + 1) / 7);
  return date.getUTCFullYear() * 100 + week;
}

/** The calendar bucket of a time, in the given timezone. */
export function bucketOf(unit: Unit, time: Date, timeZone: string): number {
  const p = localParts(time, timeZone);
  switch (unit) {
    case 'hourly': return ((p.year * 100 + p.month) * 100 + p.day) * 100 + p.hour;
    case 'daily': return (p.year * 100 + p.month) * 100 + p.day;
    case 'weekly': return isoWeek(p);
    case 'monthly': return p.year * 100 + p.month;
    case 'yearly': return p.year;
  }
}

/** `30s 15m 12h 7d 2w 6mo 2y` subtracted from a time (months and years on the calendar, UTC). */
export function subtractDuration(from: Date, duration: string): Date {
  const m = /^(\d+)(s|m|h|d|w|mo|y)$/.exec(duration.trim());
  if (!m) throw new JarvisError('CONFIG_INVALID', `invalid duration "${duration}": use 30s, 15m, 12h, 7d, 2w, 6mo or 2y`);
  const n = Number(m[1]);
  const d = new Date(from.getTime());
  switch (m[2]) {
    case 's': return new Date(d.getTime() - n * 1000);
    case 'm': return new Date(d.getTime() - n * 60_000);
    case 'h': return new Date(d.getTime() - n * 3_600_000);
    case 'd': d.setUTCDate(d.getUTCDate() - n); return d;
    case 'w': d.setUTCDate(d.getUTCDate() - 7 * n); return d;
    case 'mo': d.setUTCMonth(d.getUTCMonth() - n); return d;
    default: d.setUTCFullYear(d.getUTCFullYear() - n); return d;
  }
}

export function hasKeepRules(rules: KeepRules): boolean {
  return rules.within !== undefined || (['last', ...UNITS] as const).some((k) => (rules[k] ?? 0) > 0);
}

/** Decides keep/prune for the valid backups of one schedule. Output newest first. */
export function applyKeepRules(backups: KeepInput[], rules: KeepRules, timeZone = 'UTC'): KeepDecision[] {
  const list = backups
    .map((b) => ({ id: b.id, date: new Date(b.time) }))
    .sort((a, b) => b.date.getTime() - a.date.getTime() || (a.id < b.id ? 1 : -1));
  const decisions: KeepDecision[] = list.map((b) => ({ id: b.id, time: b.date.toISOString(), keep: false, reasons: [] }));
  if (list.length === 0) return decisions;
  if (!hasKeepRules(rules)) {
    for (const d of decisions) { d.keep = true; d.reasons.push('no keep rules'); }
    return decisions;
  }
  const keep = (i: number, reason: string) => { decisions[i]!.keep = true; decisions[i]!.reasons.push(reason); };

  if (rules.within !== undefined) {
    const limit = subtractDuration(list[0]!.date, rules.within);
    list.forEach((b, i) => { if (b.date.getTime() > limit.getTime()) keep(i, `within=${rules.within}`); });
  }

  const buckets: { name: string; label: string; count: number; last: number | null; of: (d: Date, i: number) => number }[] = [];
  if ((rules.last ?? 0) > 0) buckets.push({ name: 'last', label: `last=${rules.last}`, count: rules.last!, last: null, of: (_d, i) => i });
  for (const unit of UNITS) {
    const n = rules[unit] ?? 0;
    if (n > 0) buckets.push({ name: unit, label: `${unit}=${n}`, count: n, last: null, of: (d) => bucketOf(unit, d, timeZone) });
  }
  const oldest = list.length - 1;
  list.forEach((b, i) => {
    for (const bucket of buckets) {
      if (bucket.count <= 0) continue;
      const value = bucket.of(b.date, i);
      if (value !== bucket.last) {
        bucket.last = value;
        bucket.count--;
        keep(i, bucket.label);
      } else if (i === oldest && bucket.name !== 'last') {
        // Not enough buckets to fill the rule: the oldest backup is kept additionally.
        bucket.count--;
        keep(i, `oldest ${bucket.label}`);
      }
    }
  });

  if (!decisions[0]!.keep || !decisions[0]!.reasons.includes('newest')) {
    decisions[0]!.keep = true;
    decisions[0]!.reasons.unshift('newest');
  }
  return decisions;
}
