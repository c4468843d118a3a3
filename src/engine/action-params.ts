/**
 * The params of each action type, checked field by field when a saved plan is read: a hand-edited
 * or foreign plan file is refused naming the action and the field, before any handler sees it.
 * Each domain declares its rules next to its params type (`src/<domain>/action-params.ts`); this
 * file only knows the kinds of field.
 */
import { BACKUP_PARAM_RULES } from '../backup/action-params.js';
import { ERASURE_PARAM_RULES } from '../erasure/action-params.js';
import { MIGRATE_PARAM_RULES } from '../migrate/action-params.js';
import { RETENTION_PARAM_RULES } from '../retention/action-params.js';
import type { ActionFor, ActionType } from './types.js';

/** What one field must be. `optional` fields may be absent (never null unless the kind says so). */
export type FieldRule =
  | { kind: 'string' | 'string-list' | 'boolean' | 'positive-integer' | 'positive-number' | 'count' | 'count-or-null' | 'timestamp' | 'sha256-or-null' | 'wal-segment'; optional?: true }
  | { kind: 'one-of'; values: readonly string[]; optional?: true }
  /** A non-empty list of records, each with exactly these fields. */
  | { kind: 'records'; fields: Record<string, FieldRule>; optional?: true };

/**
 * The rules of one params type: one per field (a field without a rule does not compile), and
 * `oneOf` for fields of which exactly one must be there. Fields not listed are refused.
 */
export interface ParamRules<P> {
  fields: { [F in keyof Required<P>]: FieldRule };
  exactlyOne?: readonly (keyof P & string)[];
}

export type ParamRuleTable = { [K in ActionType]: ParamRules<ActionFor<K>['params']> };

export const PARAM_RULES: ParamRuleTable = { ...BACKUP_PARAM_RULES, ...MIGRATE_PARAM_RULES, ...RETENTION_PARAM_RULES, ...ERASURE_PARAM_RULES };

const SHA256 = /^[0-9a-f]{64}$/;
/** An ISO timestamp as `Date.prototype.toISOString` writes it (a retention cut-off). */
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function fieldProblem(rule: FieldRule, value: unknown): string | null {
  switch (rule.kind) {
    case 'string': return typeof value === 'string' && value !== '' ? null : 'must be a non-empty string';
    case 'string-list': return Array.isArray(value) && value.every((v) => typeof v === 'string' && v !== '') ? null : 'must be a list of non-empty strings';
    case 'boolean': return typeof value === 'boolean' ? null : 'must be true or false';
    case 'count-or-null': return value === null || (Number.isInteger(value) && (value as number) >= 0) ? null : 'must be a whole number, 0 or more, or null';
    case 'records': return recordsProblem(rule.fields, value);
    case 'count': return Number.isInteger(value) && (value as number) >= 0 ? null : 'must be a whole number, 0 or more';
    case 'positive-number': return typeof value === 'number' && Number.isFinite(value) && value > 0 ? null : 'must be a number above 0';
    case 'positive-integer': return Number.isInteger(value) && (value as number) > 0 ? null : 'must be a positive integer';
    case 'timestamp': return typeof value === 'string' && ISO.test(value) && !Number.isNaN(Date.parse(value)) ? null : 'must be an ISO timestamp (2026-01-31T00:00:00.000Z)';
    case 'wal-segment': return typeof value === 'string' && /^[0-9A-F]{24}$/.test(value) ? null : 'must be a WAL segment name (24 hex digits)';
    case 'sha256-or-null': return value === null || (typeof value === 'string' && SHA256.test(value)) ? null : 'must be a SHA-256 (64 hex digits) or null';
    case 'one-of': return typeof value === 'string' && rule.values.includes(value) ? null : `must be ${rule.values.map((v) => JSON.stringify(v)).join(' or ')}`;
  }
}

function recordsProblem(fields: Record<string, FieldRule>, value: unknown): string | null {
  if (!Array.isArray(value) || value.length === 0) return 'must be a non-empty list';
  for (const [i, item] of value.entries()) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return `[${i}] must be a record`;
    const problem = fieldsProblem(fields, item as Record<string, unknown>, [], 'is not a known field');
    if (problem) return `[${i}].${problem}`;
  }
  return null;
}

/** The first field of `record` that breaks its rule, or that has no rule, as `FIELD …`. */
function fieldsProblem(fields: Record<string, FieldRule>, record: Record<string, unknown>, exactlyOne: readonly string[], unknownSays: string): string | null {
  for (const [field, rule] of Object.entries(fields)) {
    if (!(field in record) || record[field] === undefined) {
      if (rule.optional || exactlyOne.includes(field)) continue;
      return `${field} is missing`;
    }
    const problem = fieldProblem(rule, record[field]);
    if (problem) return `${field} ${problem}`;
  }
  const unknown = Object.keys(record).find((f) => !(f in fields));
  return unknown === undefined ? null : `${unknown} ${unknownSays}`;
}

/**
 * What is wrong with the params of an action of a known type, as `params.FIELD …`, or null.
 * Types without rules (a test module's own) are not checked.
 */
export function paramsProblem(type: string, params: Record<string, unknown>): string | null {
  const rules = (PARAM_RULES as Partial<Record<string, ParamRules<Record<string, unknown>>>>)[type];
  if (!rules) return null;
  const problem = fieldsProblem(rules.fields, params, rules.exactlyOne ?? [], `is not a param of ${type}`);
  if (problem) return `params.${problem}`;
  if (rules.exactlyOne) {
    const present = rules.exactlyOne.filter((f) => params[f] !== undefined);
    if (present.length !== 1) return `params must have exactly one of ${rules.exactlyOne.join(', ')}`;
  }
  return null;
}
