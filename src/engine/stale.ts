/**
 * Stale-plan refusal (docs/architecture.md §2): a saved plan is applied only if what its actions depend
 * on is unchanged. Pure: names what changed between the plan's basis and the current one.
 */
import { canonicalJson } from '../storage/durable.js';
import type { PlanBasis } from './types.js';

const MAX_LISTED = 5;

function list(items: unknown[]): string {
  const shown = items.slice(0, MAX_LISTED).map((v) => (typeof v === 'string' ? v : canonicalJson(v)));
  return shown.join(', ') + (items.length > MAX_LISTED ? ` and ${items.length - MAX_LISTED} more` : '');
}

/** What differs between two fingerprint values, in words, or null when they are equal. */
function describeValueChange(before: unknown, after: unknown): string | null {
  if (canonicalJson(before) === canonicalJson(after)) return null;
  if (Array.isArray(before) && Array.isArray(after)) {
    const key = (v: unknown) => canonicalJson(v);
    const had = new Set(before.map(key));
    const has = new Set(after.map(key));
    const added = after.filter((v) => !had.has(key(v)));
    const removed = before.filter((v) => !has.has(key(v)));
    const parts: string[] = [];
    if (added.length) parts.push(`new: ${list(added)}`);
    if (removed.length) parts.push(`gone: ${list(removed)}`);
    return parts.length ? parts.join('; ') : 'same items in another order';
  }
  if (before && after && typeof before === 'object' && typeof after === 'object' && !Array.isArray(before) && !Array.isArray(after)) {
    const b = before as Record<string, unknown>;
    const a = after as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].sort();
    const parts = keys.flatMap((k) => {
      const d = describeValueChange(b[k], a[k]);
      return d === null ? [] : [`${k} (${d})`];
    });
    return parts.join('; ');
  }
  return `${canonicalJson(before)} → ${canonicalJson(after)}`;
}

/** One line per thing that changed since the plan was made; empty when the basis holds. */
export function describeBasisChange(saved: PlanBasis, current: PlanBasis): string[] {
  const out: string[] = [];
  if (saved.configHash !== current.configHash) out.push('the config file or one of its policy files changed');
  const names = [...new Set([...Object.keys(saved.modules), ...Object.keys(current.modules)])].sort();
  for (const name of names) {
    const inSaved = name in saved.modules;
    const inCurrent = name in current.modules;
    if (!inSaved) out.push(`${name}: takes part now but did not when the plan was made`);
    else if (!inCurrent) out.push(`${name}: took part when the plan was made but does not now`);
    else {
      const d = describeValueChange(saved.modules[name], current.modules[name]);
      if (d !== null) out.push(`${name}: ${d}`);
    }
  }
  return out;
}
