/**
 * Prometheus alert rules from the checks table (checks.ts) and the YAML's thresholds: one alert
 * per check that has a threshold, a rule for each of its levels with a `severity` label, so that
 * `jarvis-db alerts rules` and `jarvis-db health check` judge alike. Pure.
 *
 * Most rules compare the check's own metric with the threshold, as a Prometheus user reads them.
 * Where the value alone does not decide (a check judged only above a context number, or CRITICAL
 * when the thing measured does not exist yet, which exports no value), the rule reads the status
 * the daemon judged instead (`jarvis_db_health_status`), so it fires exactly when the check does.
 * A rule fires after one health interval (two checks in a row): one bad sample is not an alert.
 */
import type { Desired, Threshold } from '../config/types.js';
import { CHECK_NAMES, checkSpec, metricName, type CheckSpec } from './checks.js';
import { describeThreshold, effectiveThreshold } from './evaluate.js';

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  /** `check` names the check; a rule on jarvis_db_health_status keeps the series' own (the check's key, labels included). */
  labels: { severity: 'warning' | 'critical'; service: string; check?: string };
  annotations: { summary: string; description: string };
}

export interface RuleGroup { name: string; interval?: string; rules: AlertRule[] }

/** `postgres.connections_used_ratio` → `JarvisDbPostgresConnectionsUsedRatio`. */
export function alertName(check: string): string {
  return 'JarvisDb' + check.split(/[._]/).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}

/** A PromQL string literal (double-quoted, backslashes and quotes escaped). */
function promString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The samples of `check` in jarvis_db_health_status: the check itself and its labelled keys (`check.label`). */
function statusSelector(check: string): string {
  return `jarvis_db_health_status{check=~${promString(`${check.replace(/\./g, '\\.')}(\\..+)?`)}}`;
}

const STATUS = { warning: 1, critical: 2 } as const;

/** True when the rule reads the judged status rather than the value (see the header). */
function readsStatus(spec: CheckSpec, level: 'warning' | 'critical'): boolean {
  return spec.judgeWhen !== undefined || (spec.whenMissing === 'CRITICAL' && level === 'critical');
}

/** The PromQL for one level of a check, or null when the check has no such level. */
export function levelExpr(check: string, spec: CheckSpec, t: Threshold, level: 'warning' | 'critical', intervalSeconds: number): string | null {
  const at = t[level];
  if (at === undefined) return null;
  if (readsStatus(spec, level)) return `${statusSelector(check)} == ${STATUS[level]}`;
  const op = t.lowerIsWorse ? '<' : '>=';
  // Counters judged on their increase between two checks.
  const value = spec.judgeIncrease ? `increase(${metricName(check)}[${2 * intervalSeconds}s])` : metricName(check);
  const bad = `${value} ${op} ${at}`;
  const worse = level === 'warning' ? t.critical : undefined;
  return worse === undefined ? bad : `${bad} unless ${value} ${op} ${worse}`;
}

export function alertRules(desired: Pick<Desired, 'health' | 'project'>): RuleGroup[] {
  const interval = desired.health.intervalSeconds;
  const rules: AlertRule[] = [];
  for (const check of CHECK_NAMES) {
    const spec = checkSpec(check)!;
    const t = effectiveThreshold(check, desired.health.thresholds);
    if (!t) continue;
    for (const level of ['critical', 'warning'] as const) {
      const expr = levelExpr(check, spec, t, level, interval);
      if (!expr) continue;
      const status = readsStatus(spec, level);
      const labels = status ? '' : (spec.labels ?? []).map((l) => `{{ $labels.${l} }}`).join(', ');
      rules.push({
        alert: alertName(check),
        expr,
        for: `${interval}s`,
        labels: { severity: level, service: spec.service, ...(status ? {} : { check }) },
        annotations: {
          summary: `${status ? '{{ $labels.check }}' : check}${labels ? ` (${labels})` : ''} is ${level.toUpperCase()} on {{ $labels.instance }}`,
          description: `${spec.help} ${status ? 'Judged by jarvis-db (run `jarvis-db health check` for the value)' : 'Value {{ $value }}'}; ${describeThreshold(t, spec)}.`,
        },
      });
    }
  }
  // No fresh check at all: the daemon (or its scrape) is down, and every rule above is blind.
  rules.push({
    alert: 'JarvisDbHealthCheckStale',
    expr: `time() - jarvis_db_health_check_timestamp_seconds > ${3 * interval} or absent(jarvis_db_health_check_timestamp_seconds)`,
    for: `${interval}s`,
    labels: { severity: 'critical', service: 'jarvis-db', check: 'health_check_timestamp_seconds' },
    annotations: {
      summary: 'No health check for three intervals on {{ $labels.instance }}',
      description: `The newest health check is {{ $value | humanizeDuration }} old; the daemon checks every ${interval}s. Is the daemon (\`jarvis-db daemon\`) running and scraped?`,
    },
  });
  return [{ name: `jarvis-db${desired.project ? `-${desired.project}` : ''}`, rules }];
}
