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

/**
 * The last day of the health history as charts, kept between refreshes: the first read takes the
 * whole day, later ones only the records after the newest one seen (the current hour's file),
 * and points older than a day are dropped. A config reload (other thresholds) starts it again.
 */
export class HistoryCharts {
  private readonly series = new Map<string, [number, number][]>();
  /** Each sample key (`backups.age_seconds.nightly`) resolved to its judged check once, not per record. */
  private readonly checkOf = new Map<string, { check: string; threshold: Threshold } | null>();
  private newest = -Infinity;
  private desired: Desired | undefined;

  private judged(key: string): { check: string; threshold: Threshold } | null {
    if (!this.checkOf.has(key)) {
      const check = CHECK_NAMES.find((c) => keyMatches(key, c));
      const threshold = check ? effectiveThreshold(check, this.desired!.health.thresholds) : undefined;
      this.checkOf.set(key, check && threshold ? { check, threshold } : null);
    }
    return this.checkOf.get(key)!;
  }

  async section(desired: Desired, now: Date): Promise<StatusSection> {
    if (desired !== this.desired) {
      this.desired = desired;
      this.series.clear();
      this.checkOf.clear();
      this.newest = -Infinity;
    }
    const dayAgo = now.getTime() - 86_400_000;
    const since = new Date(Math.max(dayAgo, this.newest + 1));
    for await (const record of readHistory(desired.storage.path, since)) {
      const at = Date.parse(record.at);
      if (at <= this.newest) continue;
      this.newest = at;
      for (const [key, value] of Object.entries(record.values)) {
        if (value === null || !this.judged(key)) continue;
        const points = this.series.get(key);
        if (points) points.push([at, value]);
        else this.series.set(key, [[at, value]]);
      }
    }
    for (const [key, points] of this.series) {
      const keep = points.findIndex(([at]) => at >= dayAgo);
      if (keep === -1) this.series.delete(key);
      else if (keep > 0) points.splice(0, keep);
    }
    const charts: StatusChart[] = [...this.series.entries()].slice(0, MAX_CHARTS).map(([key, points]) => {
      const { check, threshold: t } = this.judged(key)!;
      const step = Math.max(1, Math.ceil(points.length / MAX_POINTS));
      const levels = [
        ...(t.warning !== undefined ? [{ value: t.warning, status: 'WARNING' as Status }] : []),
        ...(t.critical !== undefined ? [{ value: t.critical, status: 'CRITICAL' as Status }] : []),
      ];
      return { title: key, points: points.filter((_, i) => i % step === 0 || i === points.length - 1), levels: checkSpec(check)?.display === 'bool' ? [] : levels };
    });
    return { id: 'history', title: 'Health, the last 24 hours', charts, ...(charts.length ? {} : { note: 'no history yet: the daemon records a check every health.interval' }) };
  }
}
