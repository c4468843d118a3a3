/**
 * Cron expressions (five fields, as crontab) in an IANA timezone, through cron-parser v5.
 * Pure. `src/schedule` uses `parseCron` to compute due and next runs (forward only: cron-parser's
 * `prev()` skips and repeats runs across DST changes); config validation uses
 * `cronProblem` to explain what is wrong with an expression in one short phrase.
 */
import { createRequire } from 'node:module';
import type { CronExpression, CronExpressionParser as Parser } from 'cron-parser';
import { JarvisError } from '../errors.js';

let parser: typeof Parser | undefined;

/**
 * cron-parser, loaded on first use: it and luxon take ~25 ms to load and ~20 ms to a first
 * parse (the ICU data), which a command that only validates plain expressions never needs.
 */
function cronParser(): typeof Parser {
  parser ??= (createRequire(import.meta.url)('cron-parser') as typeof import('cron-parser')).CronExpressionParser;
  return parser;
}

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

/** The `@` shorthands cron(8) knows. */
const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** True when the runtime knows the IANA timezone (`Europe/Berlin`, `UTC`). */
export function isValidTimezone(timeZone: string): boolean {
  if (timeZone.trim() === '' || timeZone !== timeZone.trim()) return false;
  // The default: known without loading the ICU timezone data (~15 ms of every start).
  if (timeZone === 'UTC') return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

function expand(expression: string): string {
  const trimmed = expression.trim();
  return MACROS[trimmed.toLowerCase()] ?? trimmed;
}

function tryParse(expression: string, tz: string): string | null {
  try {
    cronParser().parse(expression, { tz, strict: false, currentDate: new Date(Date.UTC(2026, 0, 1)) });
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

const DIGITS = /^[0-9]{1,2}$/;

/**
 * True for the expressions most files hold (numbers, `*`, ranges, steps and lists, in range),
 * which cron-parser accepts too (test/config/cron.test.ts compares them): no parser needed.
 * Anything else (names, `L`, `#`, `?`, a day of month together with a month, which may never
 * occur) is left to cron-parser.
 */
export function plainlyValid(fields: string[]): boolean {
  if (fields.length !== 5 || (fields[2] !== '*' && fields[3] !== '*')) return false;
  return fields.every((text, i) => {
    const { min, max } = FIELDS[i]!;
    return text.split(',').every((part) => {
      const [range, step, ...extra] = part.split('/');
      if (extra.length > 0 || range === undefined) return false;
      if (step !== undefined && (!DIGITS.test(step) || Number(step) < 1 || Number(step) > max - min + 1)) return false;
      if (range === '*') return true;
      const [from, to, ...more] = range.split('-');
      if (more.length > 0 || from === undefined || !DIGITS.test(from) || (to !== undefined && !DIGITS.test(to))) return false;
      if (step !== undefined && to === undefined) return false;
      const low = Number(from);
      const high = to === undefined ? low : Number(to);
      return low >= min && high <= max && low <= high;
    });
  });
}

/** Why a field is wrong, e.g. `hour 25 is out of range`. */
function fieldProblem(index: number, text: string, tz: string): string | null {
  const field = FIELDS[index]!;
  const probe = FIELDS.map((_, i) => (i === index ? text : '*')).join(' ');
  const message = tryParse(probe, tz);
  if (message === null) return null;
  const range = /got value (\S+) expected range/.exec(message);
  if (range) return `${field.name} ${range[1]} is out of range`;
  return `${field.name} "${text}" is not valid`;
}

/**
 * What is wrong with a cron expression, as a phrase to follow "is not a valid cron
 * expression", or null when it is fine. The timezone is assumed valid (check it first).
 */
export function cronProblem(expression: string, tz = 'UTC'): string | null {
  const expanded = expand(expression);
  if (expanded.startsWith('@')) return `unknown shorthand ${expanded.split(/\s/)[0]} (use ${Object.keys(MACROS).join(', ')})`;
  const fields = expanded.split(/\s+/).filter(Boolean);
  if (fields.length !== 5) {
    return `it has ${fields.length} field${fields.length === 1 ? '' : 's'}; expected 5: minute hour day-of-month month day-of-week`;
  }
  if (plainlyValid(fields)) return null;
  // A valid expression has valid fields: one parse instead of six (the field probes only say what is wrong).
  const whole = tryParse(fields.join(' '), tz);
  if (whole === null) return null;
  for (let i = 0; i < fields.length; i++) {
    const problem = fieldProblem(i, fields[i]!, tz);
    if (problem) return problem;
  }
  if (/day of month/i.test(whole)) return 'that day never occurs in the given month(s)';
  return whole.charAt(0).toLowerCase() + whole.slice(1);
}

/** Expressions (with their timezone) already checked: a plan parses each schedule's several times. */
const VALID = new Set<string>();

/**
 * Parses a five-field expression (or @daily and friends) in a timezone.
 * Throws JarvisError('CONFIG_INVALID') naming the problem.
 */
export function parseCron(expression: string, tz = 'UTC', currentDate?: Date): CronExpression {
  const key = `${tz}\n${expression}`;
  if (!VALID.has(key)) {
    if (!isValidTimezone(tz)) throw new JarvisError('CONFIG_INVALID', `"${tz}" is not a valid IANA timezone (such as UTC or Europe/Berlin)`);
    const problem = cronProblem(expression, tz);
    if (problem) throw new JarvisError('CONFIG_INVALID', `"${expression}" is not a valid cron expression (${problem})`);
    VALID.add(key);
  }
  return cronParser().parse(expand(expression), { tz, strict: false, ...(currentDate ? { currentDate } : {}) });
}

/** The first time strictly after `after` the expression fires. */
export function nextRun(expression: string, tz: string, after: Date): Date {
  return parseCron(expression, tz, after).next().toDate();
}
