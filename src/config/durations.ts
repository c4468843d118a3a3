/**
 * Durations as the config writes them: a positive whole number and a unit,
 * `30s 15m 12h 7d 2w 6mo 2y`. Pure; used by config validation and by every module that
 * turns a duration into a cut-off or an interval.
 */
import { JarvisError } from '../errors.js';

/** The units, in seconds. A month counts 30 days and a year 365 days. */
export const DURATION_UNITS = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800, mo: 2_592_000, y: 31_536_000 } as const;
export type DurationUnit = keyof typeof DURATION_UNITS;

/** The same rule as `$defs/duration` in schemas/jarvis-db.schema.json. */
export const DURATION_PATTERN = /^([1-9][0-9]{0,8})(s|m|h|d|w|mo|y)$/;

export const DURATION_EXPECTED = 'a positive duration such as 30s, 15m, 12h, 7d, 2w, 6mo or 2y';

export interface ParsedDuration { amount: number; unit: DurationUnit; seconds: number }

/** Parses a duration, or returns a sentence saying what is wrong with it. */
export function checkDuration(text: string): ParsedDuration | string {
  const m = DURATION_PATTERN.exec(text);
  if (!m) {
    if (/^\s*0+\s*[a-z]*\s*$/.test(text)) return `"${text}" is not a valid duration (it must be longer than zero)`;
    return `"${text}" is not ${DURATION_EXPECTED}`;
  }
  const amount = Number(m[1]);
  const unit = m[2] as DurationUnit;
  return { amount, unit, seconds: amount * DURATION_UNITS[unit] };
}

/** `parseDuration('6mo')` → 15552000. Throws JarvisError('CONFIG_INVALID') on a bad duration. */
export function parseDuration(text: string): number {
  const parsed = checkDuration(text);
  if (typeof parsed === 'string') throw new JarvisError('CONFIG_INVALID', parsed);
  return parsed.seconds;
}

/** `2592000` → `30d`: the largest unit that divides the number of seconds exactly. */
export function formatDuration(seconds: number): string {
  const units = Object.entries(DURATION_UNITS).sort((a, b) => b[1] - a[1]);
  for (const [unit, size] of units) if (seconds > 0 && seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}
