/**
 * Health reports and history for people (text) and machines (JSON). Pure.
 */
import type { Finding, Status } from '../engine/types.js';
import { checkSpec, HEALTH_SERVICES } from '../health/checks.js';
import { STATUS_EXIT_CODE, worstStatus } from '../health/evaluate.js';
import { formatCount, formatDuration, plural, renderTable } from './format.js';
import { formatValue } from '../health/format.js';
import { sparkline, summarizeTrend, type CheckTrend } from '../health/history.js';
import { sampleKey, type HealthObservation } from '../health/samples.js';

const SYMBOL: Record<Status, string> = { HEALTHY: '✓', WARNING: '!', CRITICAL: '✗', UNKNOWN: '?' };

export function renderHealthText(observation: HealthObservation, findings: Finding[], status: Status): string {
  const byKey = new Map(findings.map((f) => [f.check, f]));
  const lines = [`Health: ${status}  (${observation.services.join(', ')} in ${formatDuration(observation.durationMs)})`];
  for (const service of HEALTH_SERVICES) {
    const samples = observation.samples.filter((s) => checkSpec(s.check)?.service === service);
    if (!samples.length) continue;
    const serviceStatus = worstStatus(findings.filter((f) => f.service === service).map((f) => f.status));
    lines.push('', `${service}  ${serviceStatus}`);
    const rows = samples.map((s) => {
      const key = sampleKey(s);
      const finding = byKey.get(key);
      const spec = checkSpec(s.check)!;
      const labels = Object.entries(s.labels ?? {});
      const name = s.check.slice(service.length + 1) + (labels.length ? `{${labels.map(([k, v]) => `${k}=${v}`).join(',')}}` : '');
      const value = s.value === null ? '-' : formatValue(s.value, spec.display);
      let note = [s.detail, s.problem].filter(Boolean).join(': ');
      if (finding && finding.status !== 'HEALTHY' && s.value !== null && spec.display !== 'bool') note = [note, finding.threshold].filter(Boolean).join('; ');
      if (finding?.status === 'HEALTHY' && /not judged/.test(finding.message)) note = finding.message.slice(finding.message.indexOf('not judged'));
      return { symbol: finding ? SYMBOL[finding.status] : '·', name, value, note };
    });
    lines.push(renderTable(rows.map((r) => [`${r.symbol} ${r.name}`, r.value, r.note]), { indent: '  ' }));
  }
  const bad = findings.filter((f) => f.status !== 'HEALTHY');
  if (bad.length) {
    lines.push('', `${plural(bad.length, 'check')} not healthy:`);
    for (const f of bad) lines.push(`  ${SYMBOL[f.status]} ${f.status} ${f.message}`);
  }
  return lines.join('\n') + '\n';
}

export function healthJson(observation: HealthObservation, findings: Finding[], status: Status): unknown {
  return {
    status,
    exitCode: STATUS_EXIT_CODE[status],
    takenAt: observation.takenAt,
    durationMs: observation.durationMs,
    probeMs: observation.probeMs,
    services: Object.fromEntries(observation.services.map((s) => [s, worstStatus(findings.filter((f) => f.service === s).map((f) => f.status))])),
    findings,
    samples: observation.samples.map((s) => ({ key: sampleKey(s), ...s })),
  };
}

export function renderHistoryText(trends: CheckTrend[], since: Date, until: Date): string {
  const days = Math.max(1, Math.round((until.getTime() - since.getTime()) / 86_400_000));
  const lines = [`Health history since ${since.toISOString().slice(0, 16).replace('T', ' ')} UTC (${plural(days, 'day')})`];
  if (!trends.length) {
    lines.push('', 'No health checks recorded in that period (`jarvis-db health check` or the daemon records them).');
    return lines.join('\n') + '\n';
  }
  const showFor = (check: string) => {
    const spec = checkSpec(check.split('.').slice(0, 2).join('.'));
    return (v: number) => (Number.isFinite(v) ? formatValue(v, spec?.display ?? 'number') : '-');
  };
  // One line per check first, so that a long history still opens with what matters: now, the range, where it goes.
  const summary = [['check', 'now', 'worst', 'min', 'avg', 'max', 'checks', 'trend']];
  for (const s of trends.map(summarizeTrend)) {
    const show = showFor(s.check);
    summary.push([s.check, s.now, s.worst, show(s.min), show(s.avg), show(s.max), formatCount(s.samples), `${sparkline(s.daily)} ${s.direction}`]);
  }
  lines.push('', `Summary (${plural(trends.length, 'check')}):`, renderTable(summary, { indent: '  ', align: [, , , 'right', 'right', 'right', 'right'] }));
  lines.push('', 'By day:');
  for (const trend of trends) {
    const show = showFor(trend.check);
    lines.push('', `${trend.check}  ${sparkline(trend.days.map((d) => (d.samples ? d.avg : null)))}`);
    const table = [['day', 'min', 'avg', 'max', 'checks', 'worst', 'by hour (UTC)']];
    for (const d of trend.days) table.push([d.day, show(d.min), show(d.avg), show(d.max), formatCount(d.samples), d.worst, sparkline(d.hourly)]);
    lines.push(renderTable(table, { indent: '  ', align: [, 'right', 'right', 'right', 'right'] }));
  }
  return lines.join('\n') + '\n';
}

export function historyJson(trends: CheckTrend[], since: Date, until: Date): unknown {
  return { since: since.toISOString(), until: until.toISOString(), checks: trends };
}
