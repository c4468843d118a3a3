/**
 * PITR findings of a plan and the wal.* health samples, on fixtures (no server): readiness, the
 * archive lag against the rpo, a broken chain after the oldest base backup, no base backup, a
 * server that is down; the lag's bound and the stream's switch decision.
 */
import t from 'tap';
import type { PitrConfig } from '../../src/config/types.js';
import { walFindings, walSamples, type WalPlanInput } from '../../src/wal/findings.js';
import { archiveLag, switchDecision, type SwitchInput } from '../../src/wal/lag.js';
import type { LastSegment, ObservedWal, WalServerFacts } from '../../src/wal/observe.js';
import { segmentName } from '../../src/wal/segments.js';
import { evaluate } from '../../src/health/evaluate.js';

const MB16 = 16 * 1024 * 1024;
const seg = (n: number) => segmentName(1, BigInt(n), MB16);
const pitr: PitrConfig = { enabled: true, slot: 'jarvis_db', rpoSeconds: 60 };
const now = new Date('2026-12-04T12:00:00Z');
const ago = (s: number) => new Date(now.getTime() - s * 1000).toISOString();

function facts(over: Partial<WalServerFacts> = {}): WalServerFacts {
  return {
    user: 'jarvis', walLevel: 'replica', replication: true, superuser: false, canSwitch: true,
    slot: { name: 'jarvis_db', exists: true, active: true, physical: true },
    // In segment 6, 0x100 bytes in: beyond the end of segment 5.
    currentLsn: '0/6000100', timeline: 1, segmentBytes: MB16, nextXid: '900', inProgress: false, ...over,
  };
}

function archive(names: number[], last: Partial<LastSegment> = {}, repository = 'local'): ObservedWal {
  const top = Math.max(...names);
  return { repository, timelines: [{ timeline: 1, names: names.map(seg) }], segmentBytes: MB16, last: { name: seg(top), timeline: 1, archivedAt: ago(10), completedAt: ago(12), ...last } };
}

const base = { id: '20261201T030000Z', timeline: 1, startLsn: '0/2000028' };

function input(over: Partial<WalPlanInput> = {}): WalPlanInput {
  return { pitr, server: { ok: true, facts: facts() }, wal: [archive([2, 3, 4, 5])], basesOf: () => [base], now, ...over };
}

const checks = (i: WalPlanInput) => walFindings(i).map((f) => `${f.check} ${f.status}`);

t.test('a ready server, caught up within the rpo, with a base backup and a whole chain: no finding', async (t) => {
  t.same(walFindings(input()), []);
});

t.test('wal_level minimal: CRITICAL naming the setting to change and the restart', async (t) => {
  const [f] = walFindings(input({ server: { ok: true, facts: facts({ walLevel: 'minimal' }) } }));
  t.equal(f!.check, 'wal.ready.wal_level');
  t.equal(f!.status, 'CRITICAL');
  t.equal(f!.service, 'postgres');
  t.match(f!.message, /wal_level = replica.*restart/);
});

t.test('a user without REPLICATION (not superuser): CRITICAL with the ALTER ROLE; a superuser is enough', async (t) => {
  const [f] = walFindings(input({ server: { ok: true, facts: facts({ replication: false }) } }));
  t.equal(f!.check, 'wal.ready.replication');
  t.match(f!.message, /ALTER ROLE "jarvis" REPLICATION/);
  t.match(f!.message, /pg_hba\.conf/);
});

t.test('a missing slot: CRITICAL for the slot (wal stream creates it) and for the receiver', async (t) => {
  const findings = walFindings(input({ server: { ok: true, facts: facts({ slot: { name: 'jarvis_db', exists: false, active: false, physical: false } }) } }));
  t.same(findings.map((f) => f.check), ['wal.ready.slot', 'wal.ready.receiver']);
  t.match(findings[0]!.message, /slot jarvis_db does not exist.*jarvis-db wal stream.*pg_create_physical_replication_slot\('jarvis_db'\)/);
  t.match(findings[1]!.message, /no WAL receiver is running on slot jarvis_db.*wal stream.*daemon/);
});

t.test('a slot nobody holds: the receiver finding alone', async (t) => {
  t.same(checks(input({ server: { ok: true, facts: facts({ slot: { name: 'jarvis_db', exists: true, active: false, physical: true } }) } })), ['wal.ready.receiver CRITICAL']);
});

t.test('a user who may not run pg_switch_wal: WARNING with the GRANT', async (t) => {
  const [f] = walFindings(input({ server: { ok: true, facts: facts({ canSwitch: false }) } }));
  t.equal(`${f!.check} ${f!.status}`, 'wal.ready.switch WARNING');
  t.match(f!.message, /GRANT EXECUTE ON FUNCTION pg_switch_wal\(\) TO "jarvis"/);
});

t.test('the archive lag: HEALTHY under the rpo, WARNING past it, CRITICAL past twice it', async (t) => {
  t.same(checks(input({ wal: [archive([2, 3, 4, 5], { completedAt: ago(59) })] })), []);
  t.same(checks(input({ wal: [archive([2, 3, 4, 5], { completedAt: ago(60) })] })), ['wal.archive_lag WARNING']);
  t.same(checks(input({ wal: [archive([2, 3, 4, 5], { completedAt: ago(119) })] })), ['wal.archive_lag WARNING']);
  const [f] = walFindings(input({ wal: [archive([2, 3, 4, 5], { completedAt: ago(120) })] }));
  t.equal(f!.status, 'CRITICAL');
  t.equal(f!.value, 120);
  t.match(f!.threshold, /warning >= 1m.*critical >= 2m/);
  t.match(f!.message, /up to 2m.*000000010000000000000005/);
});

t.test('the lag is 0 when nothing was written after the last archived segment, however old it is', async (t) => {
  t.same(checks(input({ server: { ok: true, facts: facts({ currentLsn: '0/6000000' }) }, wal: [archive([2, 3, 4, 5], { completedAt: ago(86_400) })] })), []);
  t.same(archiveLag({ name: seg(5), timeline: 1, archivedAt: ago(5), completedAt: ago(86_400) }, MB16, { currentLsn: '0/6000000', nextXid: '1' }, now), { seconds: 0, basis: 'caught-up', segment: seg(5) });
});

t.test('WAL after a quiet switch with the next xid unchanged holds no transaction: lag 0; a new xid makes it count', async (t) => {
  const quiet = archive([2, 3, 4, 5], { completedAt: ago(3600), quietNextXid: '900' });
  t.same(checks(input({ wal: [quiet] })), [], 'a standby snapshot after the switch is not late WAL');
  t.same(checks(input({ wal: [quiet], server: { ok: true, facts: facts({ nextXid: '901' }) } })), ['wal.archive_lag CRITICAL']);
});

t.test('the lag is measured from completedAt, and only in the first repository', async (t) => {
  const lag = archiveLag({ name: seg(5), timeline: 1, archivedAt: ago(10), completedAt: ago(70) }, MB16, facts(), now);
  t.same(lag, { seconds: 70, basis: 'upper-bound', segment: seg(5) });
  t.same(checks(input({ wal: [archive([2, 3, 4, 5]), archive([2, 3, 4, 5], { completedAt: ago(9999) }, 'offsite')] })), []);
});

t.test('nothing archived in the first repository: WARNING', async (t) => {
  const empty: ObservedWal = { repository: 'local', timelines: [], segmentBytes: MB16, last: null };
  t.same(checks(input({ wal: [empty], basesOf: () => [] })), ['wal.archive_lag WARNING', 'wal.base_backup WARNING']);
});

t.test('a gap after the oldest base backup: CRITICAL naming the repository and where the window breaks', async (t) => {
  const [f] = walFindings(input({ wal: [archive([2, 3, 6, 7], { name: seg(7) })], server: { ok: true, facts: facts({ currentLsn: '0/8000000' }) } }));
  t.equal(`${f!.check} ${f!.status}`, 'wal.gap.local CRITICAL');
  t.match(f!.message, /window in local is broken from 000000010000000000000004 to 000000010000000000000005 \(2 segments missing after base backup 20261201T030000Z\)/);
});

t.test('a gap before the oldest base backup is not a break (that WAL is prunable); a missing first segment of it is', async (t) => {
  t.same(checks(input({ wal: [archive([1, 3, 4, 5])], basesOf: () => [{ ...base, startLsn: '0/3000028' }] })), []);
  const [f] = walFindings(input({ wal: [archive([3, 4, 5])] }));
  t.match(f!.message, /broken from 000000010000000000000002 to 000000010000000000000002/);
});

t.test('each repository is checked for gaps against its own base backups', async (t) => {
  const findings = walFindings(input({ wal: [archive([2, 3, 4, 5]), archive([2, 4, 5], {}, 'offsite')] }));
  t.same(findings.map((f) => f.check), ['wal.gap.offsite']);
});

t.test('no physical base backup while pitr is enabled: WARNING', async (t) => {
  const [f] = walFindings(input({ basesOf: () => [] }));
  t.equal(`${f!.check} ${f!.status}`, 'wal.base_backup WARNING');
  t.match(f!.message, /no physical base backup/);
});

t.test('a server that is down: one finding, the archive is still checked', async (t) => {
  t.same(checks(input({ server: { ok: false, error: 'connect ECONNREFUSED 127.0.0.1:1' } })), ['wal.server UNKNOWN']);
  t.same(checks(input({ server: { ok: false, error: 'down' }, wal: [archive([2, 4, 5])] })), ['wal.server UNKNOWN', 'wal.gap.local CRITICAL']);
});

t.test('the health samples: receiver, window start, lag and its ratio to the rpo judged WARNING / CRITICAL, segment age', async (t) => {
  const samples = walSamples({ pitr, server: { ok: true, facts: facts() }, first: archive([2, 3, 4, 5], { completedAt: ago(90), archivedAt: ago(80) }), windows: [{ repository: 'local', from: '2026-12-01T03:00:05.000Z' }], now });
  const value = (check: string) => samples.find((s) => s.check === check)?.value;
  t.equal(value('wal.receiver_running'), 1);
  t.equal(value('wal.window_start_timestamp_seconds'), Date.parse('2026-12-01T03:00:05Z') / 1000);
  t.equal(value('wal.archive_lag_seconds'), 90);
  t.equal(value('wal.archive_lag_rpo_ratio'), 1.5);
  t.equal(value('wal.last_archived_segment_age_seconds'), 80);
  const status = (check: string) => evaluate(samples, {}).find((f) => f.check === check)?.status;
  t.equal(status('wal.archive_lag_rpo_ratio'), 'WARNING');
  t.equal(status('wal.receiver_running'), 'HEALTHY');
  const critical = walSamples({ pitr, server: { ok: true, facts: facts({ slot: { name: 'jarvis_db', exists: true, active: false, physical: true } }) }, first: archive([5], { completedAt: ago(130) }), windows: [], now });
  t.equal(evaluate(critical, {}).find((f) => f.check === 'wal.archive_lag_rpo_ratio')?.status, 'CRITICAL');
  t.equal(evaluate(critical, {}).find((f) => f.check === 'wal.receiver_running')?.status, 'CRITICAL');
});

t.test('the switch: once WAL with a transaction has waited half the rpo, only while pg_receivewal streams', async (t) => {
  const i: SwitchInput = { offsetInSegment: 0x100, segment: seg(6), nextXid: '901', streaming: true, quietNextXid: null, waitingSince: null, now: 100_000, rpoSeconds: 10 };
  const first = switchDecision(i);
  t.same(first, { switchNow: false, waitingSince: { segment: seg(6), at: 100_000 } }, 'starts waiting');
  t.equal(switchDecision({ ...i, waitingSince: first.waitingSince, now: 104_999 }).switchNow, false);
  t.equal(switchDecision({ ...i, waitingSince: first.waitingSince, now: 105_000 }).switchNow, true, 'half the rpo');
  t.equal(switchDecision({ ...i, waitingSince: first.waitingSince, now: 105_000, streaming: false }).switchNow, false, 'not before pg_receivewal streams');
  t.same(switchDecision({ ...i, offsetInSegment: 0 }), { switchNow: false, waitingSince: null }, 'nothing written in the segment');
  t.same(switchDecision({ ...i, quietNextXid: '901', waitingSince: first.waitingSince, now: 200_000 }), { switchNow: false, waitingSince: null }, 'no transaction since a quiet switch: never again');
  t.same(switchDecision({ ...i, segment: seg(7), waitingSince: first.waitingSince, now: 105_000 }).waitingSince, { segment: seg(7), at: 105_000 }, 'a new segment waits anew');
});
