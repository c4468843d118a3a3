/** Health reports and history as text: aligned tables, readable times, the history's summary first. */
import t from 'tap';
import { TrendBuilder, type HistoryRecord } from '../../src/health/history.js';
import type { HealthObservation } from '../../src/health/samples.js';
import { renderHealthText, renderHistoryText } from '../../src/render/health.js';

const LONG = 'postgres-nightly-for-the-reporting-replica-in-eu-west';

const observation: HealthObservation = {
  takenAt: '2026-11-24T10:00:00.000Z',
  durationMs: 42,
  services: ['backups'],
  probeMs: { backups: 40 },
  samples: [
    { check: 'backups.valid', labels: { schedule: 'hourly' }, value: 3 },
    { check: 'backups.valid', labels: { schedule: LONG }, value: 12 },
    { check: 'backups.newest_timestamp_seconds', labels: { schedule: 'hourly' }, value: Date.parse('2026-11-24T09:00:00Z') / 1000 },
  ],
};

t.test('a check whose labels make a long name still lines up its value with the others', async (t) => {
  const text = renderHealthText(observation, [], 'HEALTHY');
  const rows = text.split('\n').filter((l) => l.includes('valid{'));
  t.equal(rows.length, 2);
  t.equal(rows[0]!.indexOf('3'), rows[1]!.indexOf('12'), `values in one column:\n${rows.join('\n')}`);
});

t.test('the newest backup\'s start time shows as a UTC time, not seconds since 1970', async (t) => {
  const text = renderHealthText(observation, [], 'HEALTHY');
  t.match(text, /newest_timestamp_seconds\{schedule=hourly\}\s+2026-11-24 09:00:00Z/);
  t.notMatch(text, /1795\d{6}/, 'no epoch seconds');
});

function history(days: number): ReturnType<TrendBuilder['trends']> {
  const builder = new TrendBuilder();
  for (let d = 0; d < days; d++) {
    for (let h = 0; h < 24; h += 6) {
      const at = new Date(Date.UTC(2026, 10, 1 + d, h)).toISOString();
      const record: HistoryRecord = {
        v: 1, at, status: 'HEALTHY',
        values: { 'postgres.connections_used_ratio': 0.1 + d * 0.01, 'redis.memory_used_ratio': 0.5 },
        statuses: { 'postgres.connections_used_ratio': d === days - 1 && h === 18 ? 'WARNING' : 'HEALTHY', 'redis.memory_used_ratio': 'HEALTHY' },
      } as HistoryRecord;
      builder.add(record);
    }
  }
  return builder.trends();
}

t.test('health history opens with one summary line per check (status now, min/avg/max, trend), then the days', async (t) => {
  const trends = history(30);
  const text = renderHistoryText(trends, new Date('2026-11-01T00:00:00Z'), new Date('2026-12-01T00:00:00Z'));
  const lines = text.split('\n');
  const summaryAt = lines.indexOf('Summary (2 checks):');
  const byDayAt = lines.indexOf('By day:');
  t.ok(summaryAt > 0 && byDayAt > summaryAt, 'the summary comes before the detail');
  t.match(lines[summaryAt + 1], /^  check\s+now\s+worst\s+min\s+avg\s+max\s+checks\s+trend$/);
  t.match(lines[summaryAt + 2], /^  postgres\.connections_used_ratio\s+WARNING\s+WARNING\s+10%\s+[\d.]+%\s+39%\s+120\s+[▁-█]{30} rising$/);
  t.match(lines[summaryAt + 3], /^  redis\.memory_used_ratio\s+HEALTHY\s+HEALTHY\s+50%\s+50%\s+50%\s+120\s+▁{30} steady$/);
  t.equal(lines.slice(summaryAt + 1, byDayAt).filter((l) => l.startsWith('  ')).length, 3, 'one line per check and the header');
  t.match(text, /\n\npostgres\.connections_used_ratio  [▁-█]+\n  day\s+min/);
});
