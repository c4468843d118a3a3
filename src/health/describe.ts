/**
 * The health module's words for a change of its config, the `health` section
 * (`describeChange`, docs/architecture.md §1): each threshold, then the other fields.
 */
import { fieldChanges, type FieldVocabulary } from '../config/changes.js';
import type { Desired, Threshold } from '../config/types.js';
import type { ConfigChange } from '../engine/types.js';

const HEALTH_FIELDS: FieldVocabulary = {
  thresholds: { ignore: true },
  intervalSeconds: { label: 'check interval (s)' },
  // Not shown in a review: how long history is kept, and the alert webhook (its URL may hold a token).
  historySeconds: { ignore: true },
  alerts: { ignore: true },
};

/** `warning 0.8, critical 0.9`; `<` when lower values are worse. */
function thresholdText(t: Threshold | undefined): string {
  if (!t) return 'unset';
  const op = t.lowerIsWorse ? '< ' : '';
  return [t.warning !== undefined ? `warning ${op}${t.warning}` : null, t.critical !== undefined ? `critical ${op}${t.critical}` : null].filter(Boolean).join(', ') || 'none';
}

export function describeHealthChanges(base: Desired, head: Desired): ConfigChange[] {
  const out: ConfigChange[] = [];
  const a = base.health.thresholds;
  const b = head.health.thresholds;
  for (const check of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const before = thresholdText(a[check]);
    const after = thresholdText(b[check]);
    if (before !== after) out.push({ subject: 'health', text: `${check} ${before} → ${after}` });
  }
  for (const change of fieldChanges(base.health, head.health, HEALTH_FIELDS)) out.push({ subject: 'health', ...change });
  return out;
}
