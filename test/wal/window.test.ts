/**
 * The recoverable window in `backup list` and `schedule` (src/render/pitr.ts, windowsOf in
 * src/wal/status.ts): pure lines on fixtures, then both commands on a local repository with
 * fake WAL and base backups (test/wal/fixture.ts), text and JSON.
 */
import t from 'tap';
import { pitrWindowLines, walStreamLines } from '../../src/render/pitr.js';
import { renderScheduleText } from '../../src/render/schedule.js';
import type { RepositoryWindows } from '../../src/wal/status.js';
import { cli, seg, setup } from './fixture.js';

const WINDOWS: RepositoryWindows[] = [
  { repository: 'local', lastArchivedAt: '2026-12-02T14:05:12.345Z', windows: [{ timeline: 1, from: '2026-11-25T03:00:04.120Z', to: '2026-12-02T14:05:12.345Z', baseBackup: '20261125T030000Z-ab12', untilSegment: seg(9) }] },
  { repository: 'offsite', lastArchivedAt: null, windows: [] },
  { repository: 'usb', lastArchivedAt: null, windows: [], error: 'EACCES: permission denied' },
];

t.test('one line per repository: the window and its timeline, none, or why it is unknown', async (t) => {
  t.same(pitrWindowLines(WINDOWS), [
    'postgres PITR window (local): 2026-11-25 03:00:04Z → 2026-12-02 14:05:12Z, timeline 1',
    'postgres PITR window (offsite): none (no physical base backup with a complete WAL chain archived after it)',
    'postgres PITR window (usb): unknown, its WAL cannot be listed (EACCES: permission denied)',
  ]);
});

t.test('schedule: the wal stream line, when it last archived, and the windows under it', async (t) => {
  const now = new Date('2026-12-02T14:05:16Z');
  t.same(walStreamLines('jarvis_db', WINDOWS, now).slice(0, 2), [
    'wal stream (postgres, slot jarvis_db, continuous): last archived 4s ago',
    '  postgres PITR window (local): 2026-11-25 03:00:04Z → 2026-12-02 14:05:12Z, timeline 1',
  ]);
  t.match(walStreamLines('jarvis_db', [WINDOWS[1]!], now)[0], /: nothing archived yet$/);
  t.match(renderScheduleText([], now, undefined, { slot: 'jarvis_db', repositories: WINDOWS }), /^No backup schedules in the config\.\n\nwal stream \(postgres, slot jarvis_db, continuous\)/);
  t.notMatch(renderScheduleText([], now), /wal stream/, 'without pitr, no line');
});

t.test('backup list and schedule on a repository: the window opens at the end of the oldest base backup whose chain is complete', async (t) => {
  const dir = t.testdir();
  const { env } = await setup(dir);
  const list = cli(['backup', 'list'], env);
  t.equal(list.code, 0, list.stderr);
  // Every base backup's chain is complete up to the last segment: the oldest one (day 22, ended 03:00:05) opens it.
  t.match(list.stdout, /^postgres PITR window \(local\): 2026-11-22 03:00:05Z → \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ, timeline 1$/m);
  const json = JSON.parse(cli(['backup', 'list', '--json'], env).stdout) as { pitr: RepositoryWindows[] };
  t.same(json.pitr.map((r) => [r.repository, r.windows.map((w) => [w.timeline, w.from, w.untilSegment])]), [['local', [[1, '2026-11-22T03:00:05.000Z', seg(12)]]]]);

  const schedule = cli(['schedule'], env);
  t.equal(schedule.code, 0, schedule.stderr);
  t.match(schedule.stdout, /^wal stream \(postgres, slot jarvis_db, continuous\): last archived \d+s ago\n {2}postgres PITR window \(local\): 2026-11-22 03:00:05Z → /m);
  const sj = JSON.parse(cli(['schedule', '--json'], env).stdout) as { wal: { slot: string; repositories: RepositoryWindows[] } };
  t.equal(sj.wal.slot, 'jarvis_db');
  t.equal(sj.wal.repositories[0]!.windows[0]!.baseBackup.slice(0, 8), '20261122');
});
