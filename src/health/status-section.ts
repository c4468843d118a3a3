/**
 * The health parts of the daemon's status page (render/status-page.ts): each service with its
 * worst check and the checks that are not healthy, and the health history as charts. Data only.
 */
import type { Desired, Threshold } from '../config/types.js';
import type { Finding, Status } from '../engine/types.js';
import type { StatusChart, StatusSection } from '../render/status-page.js';
import { CHECK_NAMES, checkSpec } from './checks.js';
import type { HealthReport } from './check.js';
import { effectiveThreshold, worstStatus } from './evaluate.js';
import { readHistory } from './history.js';
import { keyMatches } from './samples.js';

const SERVICE_NAMES: Record<string, string> = { postgres: 'PostgreSQL', redis: 'Redis', chroma: 'Chroma', system: 'machine', backups: 'backups', repository: 'repositories', wal: 'point-in-time recovery' };

/** The services the config declares (and the machine), each with the worst of its checks. */
export function servicesSection(desired: Desired, report: HealthReport | undefined): StatusSection {
  const services = [...(Object.keys(desired.services) as string[]), 'system', ...(desired.backups.length ? ['backups'] : [])];
  if (!report) {
    return { id: 'services', title: 'Services', status: 'UNKNOWN', note: 'no health check yet', tables: [{ columns: ['service', 'status', ''], rows: services.map((s) => ({ cells: [SERVICE_NAMES[s] ?? s, 'UNKNOWN', 'not checked yet'], status: 'UNKNOWN' as Status })) }] };
  }
  const byService = new Map<string, Finding[]>();
  for (const f of report.findings) byService.set(f.service, [...(byService.get(f.service) ?? []), f]);
  const rows = services.map((s) => {
    const findings = byService.get(s) ?? [];
    const status = findings.length ? worstStatus(findings.map((f) => f.status)) : 'HEALTHY';
    const worst = findings.filter((f) => f.status === status && status !== 'HEALTHY').map((f) => f.message);
    return { cells: [SERVICE_NAMES[s] ?? s, status, worst[0] ?? `${findings.length} checks`], status };
  });
  const notHealthy = report.findings.filter((f) => f.status !== 'HEALTHY');
  return {
    id: 'services', title: 'Services', status: report.status, note: `checked ${report.observation.takenAt}`,
    tables: [
      { columns: ['service', 'status', ''], rows },
      { columns: ['check', 'status', 'what it says'], rows: notHealthy.map((f) => ({ cells: [f.check, f.status, f.message], status: f.status })), empty: 'every check is healthy' },
    ],
  };
}

/** At most this many charts: the checks with levels first, in the table's order. */
const MAX_CHARTS = 12;
const MAX_POINTS = 240;

/** The last day of the health history: one chart per judged check that has values, with its level lines. */
export async function historySection(desired: Desired, now: Date): Promise<StatusSection> {
  const since = new Date(now.getTime() - 86_400_000);
  // Each sample key (`backups.age_seconds.nightly`) resolved to its judged check once, not per record.
  const checkOf = new Map<string, { check: string; threshold: Threshold } | null>();
  const judged = (key: string) => {
    if (!checkOf.has(key)) {
      const check = CHECK_NAMES.find((c) => keyMatches(key, c));
      const threshold = check ? effectiveThreshold(check, desired.health.thresholds) : undefined;
      checkOf.set(key, check && threshold ? { check, threshold } : null);
    }
    return checkOf.get(key)!;
  };
  const series = new Map<string, [number, number][]>();
  for await (const record of readHistory(desired.storage.path, since)) {
    const at = Date.parse(record.at);
    for (const [key, value] of Object.entries(record.values)) {
      if (value === null || !judged(key)) continue;
      const points = series.get(key);
      if (points) points.push([at, value]);
      else series.set(key, [[at, value]]);
    }
  }
  const charts: StatusChart[] = [...series.entries()].slice(0, MAX_CHARTS).map(([key, points]) => {
    const { check, threshold: t } = judged(key)!;
    const step = Math.max(1, Math.ceil(points.length / MAX_POINTS));
    const levels = [
      ...(t.warning !== undefined ? [{ value: t.warning, status: 'WARNING' as Status }] : []),
      ...(t.critical !== undefined ? [{ value: t.critical, status: 'CRITICAL' as Status }] : []),
    ];
    return { title: key, points: points.filter((_, i) => i % step === 0 || i === points.length - 1), levels: checkSpec(check)?.display === 'bool' ? [] : levels };
  });
  return { id: 'history', title: 'Health, the last 24 hours', charts, ...(charts.length ? {} : { note: 'no history yet: the daemon records a check every health.interval' }) };
}
