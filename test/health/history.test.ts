import t from 'tap';
import { readdir, readFile, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  appendHistory, historyDir, historyTrends, lastRecord, pruneHistory, readHistory, sparkline, toRecord, TrendBuilder, type HistoryRecord,
} from '../../src/health/history.js';
import { evaluate } from '../../src/health/evaluate.js';
import type { Sample } from '../../src/health/samples.js';

function check(at: string, connections: number, extra: Sample[] = []): HistoryRecord {
  const samples: Sample[] = [{ check: 'postgres.connections_used_ratio', value: connections }, ...extra];
  return toRecord(new Date(at), samples, evaluate(samples, {}));
}

t.test('a check is one JSON line in the file of its UTC hour, with values by key and the non-healthy statuses', async (t) => {
  const storage = t.testdir();
  await appendHistory(storage, check('2026-11-24T10:15:00Z', 0.9, [{ check: 'backups.age_seconds', labels: { schedule: 'n' }, value: 12 }]), 86_400);
  await appendHistory(storage, check('2026-11-24T10:45:00Z', 0.1), 86_400);
  t.same(await readdir(historyDir(storage)), ['2026-11-24T10.jsonl']);
  const lines = (await readFile(join(historyDir(storage), '2026-11-24T10.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as HistoryRecord);
  t.same(lines[0], {
    v: 1, at: '2026-11-24T10:15:00.000Z', status: 'WARNING',
    values: { 'postgres.connections_used_ratio': 0.9, 'backups.age_seconds.n': 12 },
    statuses: { 'postgres.connections_used_ratio': 'WARNING' },
  });
  t.equal(lines[1]!.status, 'HEALTHY');
});

t.test('hour files older than health.history are pruned when a check is appended', async (t) => {
  const storage = t.testdir();
  await appendHistory(storage, check('2026-11-20T08:30:00Z', 0.1), 3 * 86_400);
  await appendHistory(storage, check('2026-11-22T09:30:00Z', 0.2), 3 * 86_400);
  await appendHistory(storage, check('2026-11-24T10:00:00Z', 0.3), 3 * 86_400);
  t.same(await readdir(historyDir(storage)), ['2026-11-22T09.jsonl', '2026-11-24T10.jsonl'], 'the 2026-11-20 file ended more than 3 days ago');
  t.same(await pruneHistory(storage, new Date('2026-11-22T10:00:00Z')), ['2026-11-22T09.jsonl'], 'an hour file goes once its hour has ended before the cut-off');
});

t.test('reading skips records before --since and a torn last line from a crash', async (t) => {
  const storage = t.testdir();
  await appendHistory(storage, check('2026-11-24T10:00:00Z', 0.1), 86_400 * 30);
  await appendHistory(storage, check('2026-11-24T10:30:00Z', 0.2), 86_400 * 30);
  await appendFile(join(historyDir(storage), '2026-11-24T10.jsonl'), '{"v":1,"at":"2026-11-24T10:4');
  const read: string[] = [];
  for await (const r of readHistory(storage, new Date('2026-11-24T10:10:00Z'))) read.push(r.at);
  t.same(read, ['2026-11-24T10:30:00.000Z']);
  t.equal((await lastRecord(storage))!.at, '2026-11-24T10:30:00.000Z');
  await appendHistory(storage, check('2026-11-24T10:50:00Z', 0.3), 86_400 * 30);
  t.equal((await lastRecord(storage))!.at, '2026-11-24T10:50:00.000Z', 'a check appended after the torn line is read');
});

t.test('the last record is found in the tail of a long hour file', async (t) => {
  const storage = t.testdir();
  for (let i = 0; i < 400; i++) {
    const extra: Sample[] = Array.from({ length: 20 }, (_, j) => ({ check: 'backups.age_seconds', labels: { schedule: `s${j}-${'x'.repeat(20)}` }, value: i }));
    await appendHistory(storage, check(`2026-11-24T10:${String(Math.floor(i / 10)).padStart(2, '0')}:${String((i % 10) * 6).padStart(2, '0')}Z`, i / 1000, extra), 86_400);
  }
  const { size } = await import('node:fs/promises').then((fs) => fs.stat(join(historyDir(storage), '2026-11-24T10.jsonl')));
  t.ok(size > 256 * 1024, `the file (${size} bytes) is longer than the tail that is read`);
  t.match(await lastRecord(storage), { at: '2026-11-24T10:39:54.000Z', values: { 'postgres.connections_used_ratio': 0.399 } });
});

t.test('trends: min / avg / max per day, hourly averages, the worst status, filtered by --check', async (t) => {
  const b = new TrendBuilder('postgres.connections_used_ratio');
  b.add(check('2026-11-23T01:00:00Z', 0.2));
  b.add(check('2026-11-23T01:30:00Z', 0.4));
  b.add(check('2026-11-23T05:00:00Z', 0.85));
  b.add(check('2026-11-24T00:00:00Z', 0.1, [{ check: 'redis.up', value: 1 }]));
  const [trend, ...rest] = b.trends();
  t.same(rest, [], 'redis.up is filtered out');
  t.equal(trend!.check, 'postgres.connections_used_ratio');
  const [d1, d2] = trend!.days;
  t.match(d1, { day: '2026-11-23', min: 0.2, max: 0.85, samples: 3, worst: 'WARNING' });
  t.equal(Number(d1!.avg.toFixed(4)), 0.4833);
  t.equal(Number(d1!.hourly[1]!.toFixed(4)), 0.3);
  t.equal(d1!.hourly[5], 0.85);
  t.equal(d1!.hourly[0], null);
  t.match(d2, { day: '2026-11-24', min: 0.1, max: 0.1, worst: 'HEALTHY' });
});

t.test('--check NAME takes the labelled samples of the check too, but not a check that merely starts the same', async (t) => {
  const b = new TrendBuilder('backups.age_seconds');
  b.add(toRecord(new Date('2026-11-24T00:00:00Z'), [
    { check: 'backups.age_seconds', labels: { schedule: 'a' }, value: 1 },
    { check: 'backups.age_seconds', labels: { schedule: 'b' }, value: 2 },
    { check: 'backups.age_seconds_other', value: 3 },
  ], []));
  t.same(b.trends().map((x) => x.check), ['backups.age_seconds.a', 'backups.age_seconds.b']);
});

t.test('historyTrends reads the files of the period', async (t) => {
  const storage = t.testdir();
  const now = Date.now();
  for (let i = 3; i >= 0; i--) await appendHistory(storage, check(new Date(now - i * 3600_000).toISOString(), i / 10), 86_400 * 30);
  const trends = await historyTrends(storage, new Date(now - 2.5 * 3600_000));
  t.equal(trends[0]!.days.reduce((n, d) => n + d.samples, 0), 3);
});

t.test('a sparkline scales between the smallest and largest value, with gaps as spaces', async (t) => {
  t.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7]), '▁▂▃▄▅▆▇█');
  t.equal(sparkline([1, null, 1]), '▁ ▁');
  t.equal(sparkline([null, null]), '  ');
});

t.test('the history directory holds nothing but hour files: stray files are ignored', async (t) => {
  const storage = t.testdir();
  await appendHistory(storage, check('2026-11-24T10:00:00Z', 0.1), 86_400);
  await writeFile(join(historyDir(storage), 'notes.txt'), 'x');
  t.same(await pruneHistory(storage, new Date('2030-01-01T00:00:00Z')), ['2026-11-24T10.jsonl']);
  t.same(await readdir(historyDir(storage)), ['notes.txt']);
});
