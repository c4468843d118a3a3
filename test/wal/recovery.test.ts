/**
 * The pure parts of point-in-time recovery: one target among the flags, the base backup `latest`
 * picks and the window check, and the recovery settings a stock pg_ctl start follows.
 */
import t from 'tap';
import { choosePitrBase, recoverySettings, recoveryTargetOf, walToPrefetch, type TimelineWindow } from '../../src/wal/recovery.js';
import { parseLsn } from '../../src/wal/segments.js';
import type { BasePoint } from '../../src/wal/status.js';

const base = (id: string, stopLsn: string, finishedAt: string, timeline = 1): BasePoint => ({ id, timeline, startLsn: '0/1000028', stopLsn, startedAt: finishedAt, finishedAt, serverVersionNum: 150000 });
const BASES = [
  base('20261201T030000Z-aaaa', '0/2000100', '2026-12-01T03:00:30.000Z'),
  base('20261202T030000Z-bbbb', '0/6000100', '2026-12-02T03:00:30.000Z'),
];
const WINDOW: TimelineWindow = { timeline: 1, repository: 'local', window: { from: '2026-12-01T03:00:30.000Z', to: '2026-12-02T14:05:12.000Z', baseBackup: '20261201T030000Z-aaaa', untilSegment: '000000010000000000000009' } };

t.test('exactly one target among --to-time, --to-lsn and --to-name', async (t) => {
  t.equal(recoveryTargetOf({}), null);
  t.match(recoveryTargetOf({ toTime: '2026-12-02T13:59:00Z' }), { kind: 'time', at: Date.parse('2026-12-02T13:59:00Z') });
  t.match(recoveryTargetOf({ toLsn: '0/7000000' }), { kind: 'lsn', lsn: parseLsn('0/7000000') });
  t.throws(() => recoveryTargetOf({ toTime: 'yesterday-ish' }), /not a timestamp/);
  t.throws(() => recoveryTargetOf({ toTime: '2026-12-02T13:59:00Z', toName: 'x' }), /give one/);
  t.throws(() => recoveryTargetOf({ toLsn: '7000000' }), /not an LSN/);
});

t.test('latest is the newest base backup that ended before the target; outside the window is refused naming it', async (t) => {
  t.equal(choosePitrBase('latest', recoveryTargetOf({ toTime: '2026-12-02T13:59:00Z' })!, BASES, [WINDOW]).base.id, '20261202T030000Z-bbbb');
  t.equal(choosePitrBase('latest', recoveryTargetOf({ toTime: '2026-12-01T12:00:00Z' })!, BASES, [WINDOW]).base.id, '20261201T030000Z-aaaa', 'a target before the newer backup ended: the older one');
  t.equal(choosePitrBase('latest', recoveryTargetOf({ toLsn: '0/5000000' })!, BASES, [WINDOW]).base.id, '20261201T030000Z-aaaa');
  t.equal(choosePitrBase('20261201', recoveryTargetOf({ toTime: '2026-12-02T13:59:00Z' })!, BASES, [WINDOW]).base.id, '20261201T030000Z-aaaa', 'an id prefix');
  t.throws(() => choosePitrBase('latest', recoveryTargetOf({ toTime: '2026-12-02T15:00:00Z' })!, BASES, [WINDOW]),
    /outside the recoverable window: the recoverable window is 2026-12-01T03:00:30.000Z to 2026-12-02T14:05:12.000Z on timeline 1 \(repository local\)/);
  t.throws(() => choosePitrBase('latest', recoveryTargetOf({ toLsn: '0/A000000' })!, BASES, [WINDOW]), /outside the recoverable window/, 'an LSN past the last archived segment');
  t.throws(() => choosePitrBase('latest', recoveryTargetOf({ toTime: '2026-12-02T13:59:00Z' })!, BASES, []), /there is no recoverable window/);
  t.throws(() => choosePitrBase('20261202', recoveryTargetOf({ toTime: '2026-12-01T12:00:00Z' })!, BASES, [WINDOW]), /cannot reach/, 'a backup that ended after the target');
  t.throws(() => choosePitrBase('nope', recoveryTargetOf({ toTime: '2026-12-01T12:00:00Z' })!, BASES, [WINDOW]), /no physical base backup nope/);
});

t.test('the recovery settings: restore_command waits for a file restore is still fetching, leaves one in pg_wal to the server, else calls wal fetch with absolute paths, the target, promote, no archiving', async (t) => {
  const text = recoverySettings({ target: recoveryTargetOf({ toTime: '2026-12-02T13:59:00.5Z' })!, node: '/usr/bin/node', cli: '/opt/jarvis db/bin/jarvis-db.js', configFile: "/etc/it's/jarvis-db.yaml", backupId: 'X' });
  t.match(text, /^restore_command = 'while ! test -f pg_wal\/%f && grep -qsx %f jarvis-db-prefetching; do sleep 0\.1; done; test ! -f pg_wal\/%f && \/usr\/bin\/node "\/opt\/jarvis db\/bin\/jarvis-db.js" -c "\/etc\/it''s\/jarvis-db.yaml" wal fetch %f %p'$/m);
  t.match(text, /^recovery_target_time = '2026-12-02 13:59:00.500\+00'$/m);
  t.match(text, /^recovery_target_action = 'promote'$/m);
  t.match(text, /^archive_mode = off$/m);
  const root = recoverySettings({ target: recoveryTargetOf({ toLsn: '0/7a' })!, node: 'n', cli: 'c', configFile: 'f', backupId: 'X', onDemand: false });
  t.match(root, /^restore_command = 'while ! test -f pg_wal\/%f && grep -qsx %f jarvis-db-prefetching; do sleep 0\.1; done; false'$/m, 'a server that cannot read the repositories is not made to start node for each file it probes');
  t.match(root, /^# the server cannot read the repositories: jarvis-db fetched the WAL it replays into pg_wal$/m);
  t.match(recoverySettings({ target: recoveryTargetOf({ toName: "before deploy's" })!, node: 'n', cli: 'c', configFile: 'f', backupId: 'X' }), /^recovery_target_name = 'before deploy''s'$/m);
  t.match(recoverySettings({ target: recoveryTargetOf({ toLsn: '0/7a' })!, node: 'n', cli: 'c', configFile: 'f', backupId: 'X' }), /^recovery_target_lsn = '0\/7A'$/m);
});

t.test('restore fetches the WAL from the segment of the base backup\'s end up to the target, or to the window\'s end when the server cannot fetch on demand', async (t) => {
  const archived = ['000000010000000000000005', '000000010000000000000006', '000000010000000000000007', '000000010000000000000008', '000000010000000000000009',
    '000000010000000000000006.00000028.backup', '00000002.history', '000000020000000000000009'];
  const plan = { base: BASES[1]!, window: WINDOW };
  const lsn = walToPrefetch(archived, recoveryTargetOf({ toLsn: '0/7000100' })!, plan, true);
  t.same(lsn.names, ['00000002.history', '000000010000000000000006', '000000010000000000000007', '000000010000000000000008'], 'the target\'s segment and the next; no backup label, no other timeline\'s segment');
  t.equal(lsn.stopAfterArchivedAt, null);
  const time = walToPrefetch(archived, recoveryTargetOf({ toTime: '2026-12-02T13:59:00Z' })!, plan, true);
  t.equal(time.names.at(-1), '000000010000000000000009', 'a time target: every segment, stopped by the archive times');
  t.equal(time.stopAfterArchivedAt, Date.parse('2026-12-02T13:59:00Z'));
  const root = walToPrefetch(archived, recoveryTargetOf({ toLsn: '0/7000100' })!, plan, false);
  t.equal(root.names.at(-1), '000000010000000000000009', 'no restore_command on demand: up to the window\'s end');
  t.equal(walToPrefetch(archived, recoveryTargetOf({ toTime: '2026-12-02T13:59:00Z' })!, plan, false).stopAfterArchivedAt, null);
  t.equal(walToPrefetch(archived, recoveryTargetOf({ toName: 'x' })!, plan, true).names.at(-1), '000000010000000000000009', 'a restore point: its position is unknown');
});
