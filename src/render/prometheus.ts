/**
 * The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` once per
 * family, then its samples with escaped label values. Names follow
 * `jarvis_db_<service>_<metric>_<unit>` (units `_ratio`, `_bytes`, `_seconds`; counters end in
 * `_total`). Pure.
 */
import type { Finding } from '../engine/types.js';
import { checkSpec, metricName } from '../health/checks.js';
import { STATUS_EXIT_CODE } from '../health/evaluate.js';
import type { HealthObservation } from '../health/samples.js';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricFamily {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  samples: { labels?: Record<string, string>; value: number }[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

export function renderExposition(families: MetricFamily[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const family of families) {
    if (!NAME.test(family.name)) throw new Error(`invalid metric name ${family.name}`);
    if (seen.has(family.name)) throw new Error(`metric family ${family.name} rendered twice`);
    seen.add(family.name);
    if (!family.samples.length) continue;
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels ?? {});
      for (const [k] of labels) if (!LABEL.test(k)) throw new Error(`invalid label name ${k}`);
      const text = labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}` : '';
      lines.push(`${family.name}${text} ${formatNumber(sample.value)}`);
    }
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

/** The families of a health check: one per check with a value, the status of every finding, and the check itself. */
export function healthFamilies(observation: HealthObservation, findings: Finding[]): MetricFamily[] {
  const byName = new Map<string, MetricFamily>();
  for (const sample of observation.samples) {
    const spec = checkSpec(sample.check);
    if (!spec || sample.value === null) continue;
    const name = metricName(sample.check);
    let family = byName.get(name);
    if (!family) byName.set(name, (family = { name, help: spec.help, type: spec.type, samples: [] }));
    family.samples.push({ ...(sample.labels ? { labels: sample.labels } : {}), value: sample.value });
  }
  const status: MetricFamily = {
    name: 'jarvis_db_health_status',
    help: 'Status of each health check: 0 healthy, 1 warning, 2 critical, 3 unknown (the exit codes of `jarvis-db health check`).',
    type: 'gauge',
    samples: findings.map((f) => ({ labels: { check: f.check, service: f.service }, value: STATUS_EXIT_CODE[f.status] })),
  };
  const meta: MetricFamily[] = [
    { name: 'jarvis_db_health_check_duration_seconds', help: 'Wall time of the last health check (all probes at once).', type: 'gauge', samples: [{ value: observation.durationMs / 1000 }] },
    { name: 'jarvis_db_health_check_timestamp_seconds', help: 'When the last health check was taken (Unix time).', type: 'gauge', samples: [{ value: Date.parse(observation.takenAt) / 1000 }] },
  ];
  return [...byName.values(), status, ...meta];
}

export function renderHealthPrometheus(observation: HealthObservation, findings: Finding[]): string {
  return renderExposition(healthFamilies(observation, findings));
}
