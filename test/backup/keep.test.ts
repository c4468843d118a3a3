import t from 'tap';
import { applyKeepRules, bucketOf } from '../../src/backup/keep.js';

/** One backup a day at 03:00 UTC, `days` days back from `end` (newest first ids b0, b1...). */
function daily(end: string, days: number, hour = 3) {
  const out = [];
  const last = new Date(end);
  for (let i = 0; i < days; i++) {
    const d = new Date(Date.UTC(last.getUTCFullYear(), last.getUTCMonth(), last.getUTCDate() - i, hour));
    out.push({ id: `b${i}`, time: d.toISOString() });
  }
  return out;
}
const kept = (ds: { id: string; keep: boolean }[]) => ds.filter((d) => d.keep).map((d) => d.id);

t.test('restic docs: backups only on Sundays with keep-daily 4 keep the last four Sundays', async (t) => {
  // Sundays in 2026: Nov 22, 15, 8, 1, Oct 25, 18.
  const sundays = ['2026-11-22', '2026-11-15', '2026-11-08', '2026-11-01', '2026-10-25', '2026-10-18']
    .map((d, i) => ({ id: `s${i}`, time: `${d}T03:00:00Z` }));
  const ds = applyKeepRules(sundays, { daily: 4 });
  t.same(kept(ds), ['s0', 's1', 's2', 's3']);
  t.same(ds[4]!.reasons, []);
});

t.test('restic docs: daily backups with keep-daily 7 keep-weekly 5 keep 7 dailies and 4 more week-ends', async (t) => {
  // 2026-11-22 is a Sunday: the newest 7 dailies cover Mon 16 .. Sun 22 (one ISO week).
  const ds = applyKeepRules(daily('2026-11-22', 60), { daily: 7, weekly: 5 });
  const ids = kept(ds);
  t.equal(ids.length, 7 + 4, 'the 7 dailies already include one weekly');
  // the four further weeklies are the Sundays before: 15, 8, 1 Nov, 25 Oct = b7, b14, b21, b28
  t.same(ids.slice(7), ['b7', 'b14', 'b21', 'b28']);
  const b0 = ds.find((d) => d.id === 'b0')!;
  t.same(b0.reasons, ['newest', 'daily=7', 'weekly=5']);
});

t.test('restic docs: daily, weekly, monthly and yearly rules are OR-ed and count calendar buckets', async (t) => {
  const ds = applyKeepRules(daily('2026-11-24', 800), { daily: 7, weekly: 5, monthly: 12, yearly: 3 });
  const ids = new Set(kept(ds));
  for (let i = 0; i < 7; i++) t.ok(ids.has(`b${i}`), `daily b${i}`);
  // the last day of October 2026 (b24) is a monthly; last day of 2025 is a yearly
  const oct31 = ds.find((d) => d.time.startsWith('2026-10-31'))!;
  t.ok(oct31.keep);
  t.ok(oct31.reasons.includes('monthly=12'));
  const dec31 = ds.find((d) => d.time.startsWith('2025-12-31'))!;
  t.ok(dec31.reasons.includes('yearly=3'));
  t.ok(dec31.reasons.includes('monthly=12'));
  // a mid-month day outside the daily window is pruned
  t.notOk(ds.find((d) => d.time.startsWith('2026-09-15'))!.keep);
});

t.test('fewer backups than a rule asks for keeps the oldest as well', async (t) => {
  // two backups on the same day, keep-daily 3: only one daily bucket exists; restic keeps the oldest additionally
  const ds = applyKeepRules([
    { id: 'new', time: '2026-11-24T12:00:00Z' },
    { id: 'mid', time: '2026-11-24T08:00:00Z' },
    { id: 'old', time: '2026-11-24T03:00:00Z' },
  ], { daily: 3 });
  t.same(kept(ds), ['new', 'old']);
  t.same(ds[2]!.reasons, ['oldest daily=3']);
  t.notOk(ds[1]!.keep);
});

t.test('keep-last keeps the n newest whatever their time', async (t) => {
  const ds = applyKeepRules(daily('2026-11-24', 10), { last: 3 });
  t.same(kept(ds), ['b0', 'b1', 'b2']);
  t.same(ds[1]!.reasons, ['last=3']);
});

t.test('keep-within keeps everything newer than the duration before the newest backup', async (t) => {
  const ds = applyKeepRules(daily('2026-11-24', 10), { within: '3d' });
  // relative to the newest (Nov 24 03:00): Nov 21 03:00 is not strictly newer
  t.same(kept(ds), ['b0', 'b1', 'b2']);
});

t.test('the newest backup is never pruned, even by a rule that would drop it', async (t) => {
  // hourly=1 keeps the newest of the newest hour: make the newest be alone in an older-sorting id
  const ds = applyKeepRules(daily('2026-11-24', 5), { within: '1s' });
  t.same(kept(ds), ['b0']);
  t.equal(ds[0]!.reasons[0], 'newest');
  const only = applyKeepRules([{ id: 'x', time: '2026-11-24T03:00:00Z' }], { last: 0, daily: 0 });
  t.ok(only[0]!.keep, 'with no effective rule nothing is pruned');
});

t.test('daily buckets follow the schedule timezone', async (t) => {
  // 23:30 UTC on Nov 23 is Nov 24 00:30 in Berlin: same Berlin day as Nov 24 10:00 UTC
  const a = new Date('2026-11-23T23:30:00Z');
  const b = new Date('2026-11-24T10:00:00Z');
  t.equal(bucketOf('daily', a, 'Europe/Berlin'), bucketOf('daily', b, 'Europe/Berlin'));
  t.not(bucketOf('daily', a, 'UTC'), bucketOf('daily', b, 'UTC'));
  const ds = applyKeepRules([{ id: 'b', time: b.toISOString() }, { id: 'a', time: a.toISOString() }, { id: 'z', time: '2026-11-20T10:00:00Z' }], { daily: 2 }, 'Europe/Berlin');
  t.same(kept(ds), ['b', 'z']);
});

t.test('weeks are ISO weeks: the 2026/2027 year change', async (t) => {
  // 2026-12-31 is a Thursday (ISO week 2026-53), 2027-01-03 a Sunday in the same ISO week
  t.equal(bucketOf('weekly', new Date('2026-12-31T12:00:00Z'), 'UTC'), bucketOf('weekly', new Date('2027-01-03T12:00:00Z'), 'UTC'));
  t.not(bucketOf('weekly', new Date('2027-01-03T12:00:00Z'), 'UTC'), bucketOf('weekly', new Date('2027-01-04T12:00:00Z'), 'UTC'));
});
