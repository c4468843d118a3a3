/**
 * Samples + thresholds → findings. Pure: no I/O, no clock.
 *
 * A threshold level written as a number means "at or above is bad"; written `"< x"`, "below
 * is bad". A check with a YAML threshold uses that threshold whole (warning and critical),
 * otherwise the catalogue's default. A sample with no value is UNKNOWN with its reason, or the
 * status the catalogue gives to a missing thing (no backup at all is CRITICAL).
 */
import type { Threshold } from '../config/types.js';
import type { Finding, Status } from '../engine/types.js';
import { checkSpec, type CheckSpec } from './checks.js';
import { formatValue } from './format.js';
import { sampleKey, type HealthObservation, type Sample } from './samples.js';

export const STATUS_EXIT_CODE: Record<Status, number> = { HEALTHY: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 };

/** Severity order for "the worst": CRITICAL, then WARNING, then UNKNOWN, then HEALTHY. */
const RANK: Record<Status, number> = { HEALTHY: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3 };

export function worstStatus(statuses: Iterable<Status>): Status {
  let worst: Status = 'HEALTHY';
  for (const s of statuses) if (RANK[s] > RANK[worst]) worst = s;
  return worst;
}

export function effectiveThreshold(check: string, configured: Record<string, Threshold>): Threshold | undefined {
  return configured[check] ?? checkSpec(check)?.threshold;
}

/** `warning >= 0.8, critical >= 0.95` or `warning < 0.98, critical < 0.9`. */
export function describeThreshold(t: Threshold, spec?: CheckSpec): string {
  const op = t.lowerIsWorse ? '<' : '>=';
  const parts: string[] = [];
  if (spec?.display === 'bool') {
    const when = t.lowerIsWorse ? 'no' : 'yes';
    if (t.warning !== undefined) parts.push(`warning when ${when}`);
    if (t.critical !== undefined) parts.push(`critical when ${when}`);
    return parts.join(', ');
  }
  if (t.warning !== undefined) parts.push(`warning ${op} ${spec ? formatValue(t.warning, spec.display) : t.warning}`);
  if (t.critical !== undefined) parts.push(`critical ${op} ${spec ? formatValue(t.critical, spec.display) : t.critical}`);
  return parts.join(', ');
}

export function statusOf(value: number, t: Threshold): Status {
  const bad = (level: number | undefined) => level !== undefined && (t.lowerIsWorse ? value < level : value >= level);
  if (bad(t.critical)) return 'CRITICAL';
  if (bad(t.warning)) return 'WARNING';
  return 'HEALTHY';
}

function label(sample: Sample): string {
  const values = Object.values(sample.labels ?? {});
  return values.length ? `${sample.check} (${values.join(', ')})` : sample.check;
}

/**
 * One finding per sample whose check has a threshold (configured or default), HEALTHY ones
 * included. Counters judged on their increase use `previous` (the last check's values).
 */
export function evaluate(samples: Sample[], thresholds: Record<string, Threshold>, previous?: HealthObservation['previous']): Finding[] {
  const findings: Finding[] = [];
  for (const sample of samples) {
    const spec = checkSpec(sample.check);
    const t = effectiveThreshold(sample.check, thresholds);
    if (!spec || !t) continue;
    const key = sampleKey(sample);
    const threshold = describeThreshold(t, spec);
    const base = { check: key, service: spec.service, threshold };
    if (sample.value === null) {
      const status: Status = spec.whenMissing ?? 'UNKNOWN';
      findings.push({ ...base, status, value: null, message: `${label(sample)}: ${sample.problem ?? 'no value'}` });
      continue;
    }
    let value = sample.value;
    let what = formatValue(value, spec.display);
    if (spec.judgeIncrease) {
      const before = previous?.counters[key];
      value = before !== undefined && before <= sample.value ? sample.value - before : sample.value;
      what = before !== undefined && before <= sample.value ? `${formatValue(value, spec.display)} since the previous check` : `${formatValue(value, spec.display)} since the server started`;
    }
    const detail = (sample.detail ? ` (${sample.detail})` : '') + (sample.problem ? `: ${sample.problem}` : '');
    const gate = spec.judgeWhen;
    if (gate && (sample.context?.[gate.context] ?? 0) < gate.atLeast) {
      findings.push({ ...base, status: 'HEALTHY', value, message: `${label(sample)} ${what}${detail}: not judged, ${gate.why}` });
      continue;
    }
    const status = statusOf(value, t);
    findings.push({ ...base, status, value, message: `${label(sample)} ${what}${detail}${status === 'HEALTHY' || spec.display === 'bool' ? '' : `, past ${threshold}`}` });
  }
  return findings;
}

/** The worst status over findings, HEALTHY when there are none. */
export function overallStatus(findings: Pick<Finding, 'status'>[]): Status {
  return worstStatus(findings.map((f) => f.status));
}
