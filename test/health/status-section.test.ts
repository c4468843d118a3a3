/**
 * The health history charts of the status page: the first read takes the last day, later reads
 * add only the newer records (no point twice), points older than a day drop off, and a reloaded
 * config starts again from the files.
 */
import t from 'tap';
import { join } from 'node:path';
import type { Desired } from '../../src/config/types.js';
import { appendHistory, type HistoryRecord } from '../../src/health/history.js';
import { HistoryCharts } from '../../src/health/status-section.js';

const desiredAt = (storage: string): Desired => ({
  version: 1, project: 'jarvis', configFile: join(storage, 'jarvis-db.yaml'), configHash: 'x', services: {}, storage: { path: storage },
  backups: [], retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 30 * 86_400 }, journal: { keepSeconds: 90 * 86_400 },
});

const record = (at: Date, load: number): HistoryRecord => ({ v: 1, at: at.toISOString(), status: 'HEALTHY', values: { 'system.load_per_cpu': load, 'not.a_check': 1 }, statuses: {} });

t.test('the charts grow by the new records only, and forget what is older than a day', async (t) => {
  const storage = t.testdir();
  const start = Date.parse('2026-12-07T10:00:00Z');
  for (let i = 0; i < 3; i++) await appendHistory(storage, record(new Date(start + i * 60_000), i), 30 * 86_400);
  const desired = desiredAt(storage);
  const charts = new HistoryCharts();
  const points = async (now: number) => (await charts.section(desired, new Date(now))).charts!.find((c) => c.title === 'system.load_per_cpu')?.points ?? [];

  t.same((await points(start + 3 * 60_000)).map(([, v]) => v), [0, 1, 2], 'the day so far');
  t.same(await points(start + 3 * 60_000), await points(start + 3 * 60_000), 'reading again adds nothing');
  await appendHistory(storage, record(new Date(start + 3 * 60_000), 3), 30 * 86_400);
  t.same((await points(start + 4 * 60_000)).map(([, v]) => v), [0, 1, 2, 3], 'one new record, one new point');
  t.same((await points(start + 86_400_000 + 90_000)).map(([, v]) => v), [2, 3], 'a day later the first two are gone');
  t.same((await charts.section(desired, new Date(start))).charts!.map((c) => c.title), ['system.load_per_cpu'], 'keys of no check are not charted');

  const reloaded = desiredAt(storage);
  t.same((await charts.section(reloaded, new Date(start + 4 * 60_000))).charts![0]!.points.map(([, v]) => v), [0, 1, 2, 3], 'a reloaded config reads the files again');
});
