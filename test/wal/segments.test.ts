/**
 * The pure WAL arithmetic: file names, LSNs to segments, gaps in a chain, and the recoverable
 * window a timeline's archive and its physical base backups give.
 */
import t from 'tap';
import { chainComplete, formatLsn, gapsIn, parseLsn, parseWalFileName, segmentName, segmentNumber, segmentOfLsn, walKey } from '../../src/wal/segments.js';
import { windowOf, type BasePoint } from '../../src/wal/status.js';

const MB16 = 16 * 1024 * 1024;

t.test('WAL file names: segments, history and backup files are archived, partial segments and others are not', async (t) => {
  t.same(parseWalFileName('000000020000000A000000FF'), { name: '000000020000000A000000FF', kind: 'segment', timeline: 2 });
  t.equal(parseWalFileName('00000003.history')?.kind, 'history');
  t.equal(parseWalFileName('000000010000000000000002.00000028.backup')?.kind, 'backup');
  t.equal(parseWalFileName('000000010000000000000002.partial'), null);
  t.equal(parseWalFileName('000000010000000000000002 '), null);
  t.equal(parseWalFileName('../etc/passwd'), null);
  t.equal(walKey(parseWalFileName('000000020000000A000000FF')!), '00000002/000000020000000A000000FF');
});

t.test('an LSN maps to the segment pg_walfile_name names, across a log boundary', async (t) => {
  t.equal(formatLsn(parseLsn('16/B374D848')), '16/B374D848');
  t.equal(segmentOfLsn(1, parseLsn('0/3000028'), MB16), '000000010000000000000003');
  t.equal(segmentOfLsn(1, parseLsn('16/B374D848'), MB16), '0000000100000016000000B3');
  const last = segmentNumber('0000000100000000000000FF', MB16);
  t.equal(segmentName(1, last + 1n, MB16), '000000010000000100000000', 'after segment FF of log 0 comes segment 0 of log 1');
  t.throws(() => parseLsn('nope'), /not an LSN/);
});

t.test('gaps are the runs of segments missing between the first and the last archived', async (t) => {
  const names = ['0000000100000000000000FE', '000000010000000100000001', '0000000100000000000000FD', '000000010000000100000004'];
  t.same(gapsIn(names, MB16), [
    { from: '0000000100000000000000FF', to: '000000010000000100000000', missing: 2 },
    { from: '000000010000000100000002', to: '000000010000000100000003', missing: 2 },
  ]);
  t.same(gapsIn(['000000010000000000000003', '000000010000000000000004'], MB16), []);
  t.ok(chainComplete(new Set(['000000010000000000000003', '000000010000000000000004']), '000000010000000000000003', '000000010000000000000004', MB16));
  t.notOk(chainComplete(new Set(['000000010000000000000003', '000000010000000000000005']), '000000010000000000000003', '000000010000000000000005', MB16));
});

t.test('the window opens at the end of the oldest base backup whose chain to the last segment is complete', async (t) => {
  const base = (id: string, stopLsn: string, finishedAt: string): BasePoint => ({ id, timeline: 1, startLsn: '0/1000028', stopLsn, startedAt: finishedAt, finishedAt, serverVersionNum: 150000 });
  const seg = (n: number) => segmentName(1, BigInt(n), MB16);
  const archived = [2, 3, 4, 6, 7, 8].map(seg);
  const bases = [base('old', '0/2000100', '2026-12-01T03:00:00.000Z'), base('new', '0/6000100', '2026-12-02T03:00:00.000Z')];
  const w = windowOf(1, archived, '2026-12-02T14:05:12.000Z', bases, MB16);
  t.same(w, { from: '2026-12-02T03:00:00.000Z', to: '2026-12-02T14:05:12.000Z', baseBackup: 'new', untilSegment: seg(8) }, 'the gap at segment 5 breaks the chain after "old"');
  t.equal(windowOf(1, [2, 3, 4, 5, 6, 7, 8].map(seg), '2026-12-02T14:05:12.000Z', bases, MB16)?.baseBackup, 'old', 'a complete chain: from the oldest');
  t.equal(windowOf(1, [2, 3].map(seg), '2026-12-02T14:05:12.000Z', [bases[1]!], MB16), null, 'no WAL archived after the backup: no window');
  t.equal(windowOf(2, archived, '2026-12-02T14:05:12.000Z', bases, MB16), null, 'base backups of another timeline do not count');
});
