/**
 * Due / since when / next runs of backup schedules: pure, on fixtures, including the two
 * daylight-saving changes of Europe/Paris in 2026 (29 March: 02:00 CET → 03:00 CEST, i.e.
 * 01:00 UTC; 25 October: 03:00 CEST → 02:00 CET, i.e. 01:00 UTC).
 */
import t from 'tap';
import {
  MAX_COUNTED_RUNS, fireTimesAfter, formatFireTime, lastFireAtOrBefore, scheduleStatus, scheduleStatuses,
} from '../../src/schedule/due.js';

const PARIS = 'Europe/Paris';
const at = (iso: string) => new Date(iso);
const nightly = { name: 'nightly', service: 'postgres', cron: '30 2 * * *', timezone: PARIS };
const hourly = { name: 'hourly', service: 'redis', cron: '0 * * * *', timezone: PARIS };

t.test('spring forward: a 02:30 Paris job fires once on the day the hour is skipped, at 03:30 CEST', async (t) => {
  t.same(fireTimesAfter(nightly.cron, PARIS, at('2026-03-27T00:00:00Z'), 4).map((d) => d.toISOString()),
    ['2026-03-27T01:30:00.000Z', '2026-03-28T01:30:00.000Z', '2026-03-29T01:30:00.000Z', '2026-03-30T00:30:00.000Z']);
  // The previous run agrees with the next runs (cron-parser's own prev() skips the 29th).
  t.equal(lastFireAtOrBefore(nightly.cron, PARIS, at('2026-03-29T02:00:00Z'))!.toISOString(), '2026-03-29T01:30:00.000Z');
  const before = scheduleStatus(nightly, at('2026-03-28T01:30:05Z'), at('2026-03-29T01:00:00Z'));
  t.equal(before.due, false, 'not due at 03:00 CEST: the run of the 29th has not come');
  const after = scheduleStatus(nightly, at('2026-03-28T01:30:05Z'), at('2026-03-29T01:45:00Z'));
  t.same([after.due, after.dueSince, after.missedRuns], [true, '2026-03-29T01:30:00.000Z', 1]);
  t.equal(formatFireTime(new Date(after.dueSince!), PARIS, at('2026-03-29T01:45:00Z')), '03:30 Europe/Paris');
});

t.test('fall back: a 02:30 Paris job fires once in the repeated hour, and is not due again in its second pass', async (t) => {
  t.same(fireTimesAfter(nightly.cron, PARIS, at('2026-10-24T00:00:00Z'), 3).map((d) => d.toISOString()),
    ['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  // 02:45 CET (01:45 UTC), the second time the clock shows 02:30: no second run.
  t.equal(lastFireAtOrBefore(nightly.cron, PARIS, at('2026-10-25T01:45:00Z'))!.toISOString(), '2026-10-25T00:30:00.000Z');
  const s = scheduleStatus(nightly, at('2026-10-25T00:30:05Z'), at('2026-10-25T01:45:00Z'));
  t.equal(s.due, false);
  t.same(s.nextRuns, ['2026-10-26T01:30:00.000Z']);
  const missed = scheduleStatus(nightly, at('2026-10-24T00:30:05Z'), at('2026-10-25T01:45:00Z'));
  t.same([missed.due, missed.dueSince, missed.missedRuns], [true, '2026-10-25T00:30:00.000Z', 1]);
});

t.test('an hourly Paris job runs every real hour across both changes', async (t) => {
  // Spring: 01:00 CET, then 03:00 CEST: one hour apart in real time.
  const spring = scheduleStatus(hourly, at('2026-03-29T00:00:05Z'), at('2026-03-29T01:30:00Z'));
  t.same([spring.due, spring.dueSince, spring.missedRuns], [true, '2026-03-29T01:00:00.000Z', 1]);
  // Autumn: 02:00 CEST and 02:00 CET are both runs.
  t.same(fireTimesAfter(hourly.cron, PARIS, at('2026-10-24T23:30:00Z'), 3).map((d) => d.toISOString()),
    ['2026-10-25T00:00:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T02:00:00.000Z']);
  const autumn = scheduleStatus(hourly, at('2026-10-25T00:00:05Z'), at('2026-10-25T01:30:00Z'));
  t.same([autumn.due, autumn.dueSince], [true, '2026-10-25T01:00:00.000Z']);
});

t.test('a schedule that never ran is due, since its most recent fire time', async (t) => {
  const s = scheduleStatus({ name: 'n', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC' }, null, at('2026-11-24T10:00:00Z'), 2);
  t.same(s, {
    name: 'n', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC', lastBackupAt: null, lastFireAt: '2026-11-24T03:00:00.000Z',
    due: true, dueSince: '2026-11-24T03:00:00.000Z', missedRuns: 0, neverRan: true, clockBehind: false,
    nextRuns: ['2026-11-25T03:00:00.000Z', '2026-11-26T03:00:00.000Z'],
  });
});

t.test('a clock earlier than the last backup: not due, said so, next run from the clock', async (t) => {
  const s = scheduleStatus({ name: 'n', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC' }, at('2026-11-24T03:00:01Z'), at('2026-11-24T02:00:00Z'));
  t.same([s.due, s.clockBehind, s.dueSince, s.nextRuns], [false, true, null, ['2026-11-24T03:00:00.000Z']]);
});

t.test('a backup that starts exactly at the fire time covers it; one a second earlier does not', async (t) => {
  const daily = { name: 'n', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC' };
  t.equal(scheduleStatus(daily, at('2026-11-24T03:00:00Z'), at('2026-11-24T10:00:00Z')).due, false);
  t.equal(scheduleStatus(daily, at('2026-11-24T02:59:59Z'), at('2026-11-24T10:00:00Z')).due, true);
});

t.test('missed runs are counted up to a limit', async (t) => {
  const s = scheduleStatus({ name: 'm', service: 'redis', cron: '* * * * *', timezone: 'UTC' }, at('2026-11-17T10:00:00Z'), at('2026-11-24T10:00:00Z'));
  t.same([s.due, s.missedRuns, s.dueSince], [true, MAX_COUNTED_RUNS, '2026-11-17T10:01:00.000Z']);
});

t.test('each schedule is paired with the newest valid backup of its own service and name', async (t) => {
  const schedules = [{ name: 'a', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC' }, { name: 'a', service: 'redis', cron: '0 3 * * *', timezone: 'UTC' }];
  const backups = [
    { service: 'postgres', schedule: 'a', startedAt: '2026-11-23T03:00:00Z' },
    { service: 'postgres', schedule: 'a', startedAt: '2026-11-24T03:00:00Z' },
    { service: 'postgres', schedule: 'b', startedAt: '2026-11-24T09:00:00Z' },
  ];
  const [pg, redis] = scheduleStatuses(schedules, backups, at('2026-11-24T10:00:00Z'));
  t.same([pg!.lastBackupAt, pg!.due], ['2026-11-24T03:00:00.000Z', false]);
  t.same([redis!.lastBackupAt, redis!.neverRan], [null, true]);
});

t.test('fire times read in the schedule timezone, with the date when it is not today', async (t) => {
  const now = at('2026-11-24T10:00:00Z');
  t.equal(formatFireTime(at('2026-11-24T03:00:00Z'), 'UTC', now), '03:00 UTC');
  t.equal(formatFireTime(at('2026-11-22T03:00:00Z'), 'UTC', now), '2026-11-22 03:00 UTC');
  t.equal(formatFireTime(at('2026-11-23T18:00:00Z'), 'Asia/Tokyo', now), '03:00 Asia/Tokyo');
});

t.test('an invalid cron or timezone is a clear error', async (t) => {
  t.throws(() => scheduleStatus({ name: 'x', service: 'postgres', cron: '0 25 * * *', timezone: 'UTC' }, null, new Date()), { code: 'CONFIG_INVALID', message: /hour 25 is out of range/ });
  t.throws(() => scheduleStatus({ name: 'x', service: 'postgres', cron: '0 3 * * *', timezone: 'Mars/Olympus' }, null, new Date()), { code: 'CONFIG_INVALID' });
});
