/**
 * The backup domain module's planner (issue 4 item 5), pure: fixtures of desired and observed
 * state in, actions and findings out, no server.
 */
import t from 'tap';
import type { Desired, BackupSchedule } from '../../src/config/types.js';
import { backupModule, planBackups, verifyBackupHandler, type BackupObserved, type ObservedScheduleBackup } from '../../src/backup/module.js';
import type { ExecuteContext } from '../../src/engine/types.js';
import { planHealth } from '../../src/health/module.js';
import { backupSamples } from '../../src/health/probes/backups.js';
import { variant } from '../engine/fixtures/plan-fixtures.js';

function desired(schedules: Partial<BackupSchedule>[]): Desired {
  return {
    version: 1, project: 'jarvis', configFile: '/x/jarvis-db.yaml', configHash: 'h', services: {}, storage: { path: '/x/backups' },
    backups: schedules.map((s, i) => ({ name: `s${i}`, service: 'postgres', cron: '0 3 * * *', timezone: 'UTC', keep: { last: 2 }, verify: 'checksum', path: `backups[${i}]`, ...s })) as BackupSchedule[],
    retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}
const b = (id: string, startedAt: string, schedule = 's0', verified: boolean | null = true, verifiedBy: ObservedScheduleBackup['verifiedBy'] = verified === null ? null : 'checksum', service = 'postgres'): ObservedScheduleBackup =>
  ({ id, service, schedule, startedAt, finishedAt: startedAt, totalBytes: 100, verified, verifiedBy });
const observed = (backups: ObservedScheduleBackup[], invalid: BackupObserved['invalid'] = []): BackupObserved => ({ backups, debris: [], invalid });
const NOW = new Date('2026-11-24T10:00:00Z');

t.test('a schedule with no backup is due; one backed up after the last fire time is not; an older one is due since that fire time', async (t) => {
  const d = desired([{}]);
  t.same(planBackups(d, observed([]), NOW).actions.map((a) => [a.id, a.type, a.target, a.reason, a.risk]),
    [['backup.create.s0', 'create_backup', 's0', 'no backup yet', 'safe']]);
  t.same(planBackups(d, observed([b('20261124T030001Z-aaaa', '2026-11-24T03:00:01Z')]), NOW).actions, []);
  const stale = planBackups(d, observed([b('20261123T030001Z-aaaa', '2026-11-23T03:00:01Z')]), NOW);
  t.equal(stale.actions[0]!.reason, 'due since 03:00 UTC per `0 3 * * *`');
});

t.test('a backup started exactly at the fire time covers it', async (t) => {
  t.same(planBackups(desired([{}]), observed([b('20261124T030000Z-aaaa', '2026-11-24T03:00:00Z')]), NOW).actions, []);
});

t.test('runs missed over several days are dated and counted in the reason', async (t) => {
  const p = planBackups(desired([{}]), observed([b('20261121T030001Z-aaaa', '2026-11-21T03:00:01Z')]), NOW);
  t.equal(p.actions[0]!.reason, 'due since 2026-11-22 03:00 UTC per `0 3 * * *` (3 runs missed)');
});

t.test('due-ness follows the schedule timezone', async (t) => {
  // 03:00 in Tokyo is 18:00 UTC the day before: a backup at 17:00 UTC on the 23rd is older than it.
  const d = desired([{ timezone: 'Asia/Tokyo' }]);
  const p = planBackups(d, observed([b('20261123T170000Z-aaaa', '2026-11-23T17:00:00Z')]), NOW);
  t.equal(p.actions[0]!.reason, 'due since 03:00 Asia/Tokyo per `0 3 * * *`');
  t.same(planBackups(d, observed([b('20261123T180500Z-aaaa', '2026-11-23T18:05:00Z')]), NOW).actions, []);
});

t.test('a newer backup that failed verification does not count: the schedule is due', async (t) => {
  const p = planBackups(desired([{}]), observed([b('20261124T030001Z-bbbb', '2026-11-24T03:00:01Z', 's0', false), b('20261123T030001Z-aaaa', '2026-11-23T03:00:01Z')]), NOW);
  const create = p.actions.find((a) => a.type === 'create_backup')!;
  t.match(create.reason, /^due since 03:00 UTC per `0 3 \* \* \*`; the newer 20261124T030001Z-bbbb failed verification$/);
  const onlyBad = planBackups(desired([{}]), observed([b('20261124T030001Z-bbbb', '2026-11-24T03:00:01Z', 's0', false)]), NOW);
  t.equal(onlyBad.actions[0]!.reason, 'no valid backup: the newest, 20261124T030001Z-bbbb, failed verification');
});

t.test('backups outside the keep rules become destructive prune actions with the rules as reason', async (t) => {
  const d = desired([{ keep: { last: 2 } }]);
  const obs = observed([b('20261124T030000Z-0003', '2026-11-24T03:00:00Z'), b('20261123T030000Z-0002', '2026-11-23T03:00:00Z'), b('20261122T030000Z-0001', '2026-11-22T03:00:00Z')]);
  const p = planBackups(d, obs, NOW);
  t.same(p.actions.map((a) => [a.id, a.type, a.target, a.risk]), [['backup.prune.20261122T030000Z-0001', 'prune_backup', '20261122T030000Z-0001', 'destructive']]);
  t.equal(p.actions[0]!.reason, 'outside keep rules last=2 of s0');
  t.same(p.actions[0]!.estimate, { bytes: 100, backups: 1 });
});

t.test('the newest backup is never planned for pruning, whatever the rules', async (t) => {
  const d = desired([{ keep: { within: '1h' } }]);
  const obs = observed([b('20261124T030000Z-0003', '2026-11-24T03:00:00Z'), b('20261120T030000Z-0001', '2026-11-20T03:00:00Z')]);
  const targets = planBackups(d, obs, NOW).actions.filter((a) => a.type === 'prune_backup').map((a) => a.target);
  t.same(targets, ['20261120T030000Z-0001']);
});

t.test('the last valid backup is kept when the newer ones failed verification, unless allowPruneLast', async (t) => {
  // keep last=1 keeps the newest (which failed verification) and would drop the only good one.
  const backups = [b('20261124T030000Z-0002', '2026-11-24T03:00:00Z', 's0', false), b('20261123T030000Z-0001', '2026-11-23T03:00:00Z')];
  const guarded = planBackups(desired([{ keep: { last: 1 } }]), observed(backups), NOW);
  t.same(guarded.actions.filter((a) => a.type === 'prune_backup'), [], 'nothing is pruned');
  t.match(guarded.findings, [{ check: 'backup.keep.s0', status: 'WARNING', value: '20261123T030000Z-0001' }]);
  t.match(guarded.findings[0]!.message, /allowPruneLast/);

  const allowed = planBackups(desired([{ keep: { last: 1 }, allowPruneLast: true }]), observed(backups), NOW);
  const prune = allowed.actions.filter((a) => a.type === 'prune_backup');
  t.same(prune.map((a) => [a.target, a.risk, a.params.lastValid]), [['20261123T030000Z-0001', 'destructive', true]]);
  t.match(prune[0]!.reason, /the last valid backup of the schedule \(allowPruneLast\)/);
});

t.test('backups of schedules no longer in the config are never pruned', async (t) => {
  const obs = observed([b('20261101T030000Z-0001', '2026-11-01T03:00:00Z', 'gone'), b('20261102T030000Z-0001', '2026-11-02T03:00:00Z', 'gone')]);
  t.same(planBackups(desired([{}]), obs, NOW).actions.filter((a) => a.type === 'prune_backup'), []);
});

t.test('verify: restore schedules get a restore test of their newest backup, or of the one this apply creates', async (t) => {
  const d = desired([{ verify: 'restore' }, { verify: 'checksum' }]);
  // not due: the newest backup has only a checksum verification
  const fresh = observed([b('20261124T030000Z-0003', '2026-11-24T03:00:00Z', 's0', true, 'checksum'), b('20261124T030000Z-0004', '2026-11-24T03:00:00Z', 's1', null)]);
  const v = planBackups(d, fresh, NOW).actions.filter((a) => a.type === 'verify_backup');
  t.same(v.map((a) => [a.id, a.target, a.params.restoreTest, a.params.id]), [['backup.verify.20261124T030000Z-0003', '20261124T030000Z-0003', true, '20261124T030000Z-0003']]);
  fresh.backups[0]!.verifiedBy = 'restore';
  t.same(planBackups(d, fresh, NOW).actions.filter((a) => a.type === 'verify_backup'), [], 'a restore-tested backup is not tested again');
  // due: the verification follows the create of the same apply
  const due = planBackups(d, observed([]), NOW).actions;
  const verify = due.find((a) => a.type === 'verify_backup')!;
  t.same([verify.id, verify.params.fromAction, verify.requires], ['backup.verify.s0', 'backup.create.s0', ['backup.create.s0']]);
});

t.test('a backup later than the clock is a finding, and the schedule is not due', async (t) => {
  const p = planBackups(desired([{}]), observed([b('20261124T090000Z-aaaa', '2026-11-24T09:00:00Z')]), new Date('2026-11-24T02:00:00Z'));
  t.same(p.actions, []);
  t.match(p.findings, [{ check: 'backup.clock.s0', status: 'WARNING' }]);
});

t.test('a damaged backup is one finding in the plan, the health probe\'s backups.damaged, not a second one of the backup module', async (t) => {
  const d = desired([{}]);
  const damaged = { id: '20261123T030001Z-bbbb', service: 'postgres', schedule: 's0', problem: 'manifest.json fails its own checksum' };
  const backups = planBackups(d, observed([b('20261124T030001Z-aaaa', '2026-11-24T03:00:01Z')], [damaged]), NOW);
  const health = planHealth(d, { takenAt: NOW.toISOString(), durationMs: 0, services: ['backups'], probeMs: {}, samples: backupSamples(d.backups, [{ id: '20261124T030001Z-aaaa', service: 'postgres', schedule: 's0', startedAt: '2026-11-24T03:00:01Z', verification: null }], [damaged], NOW) });
  const mentions = [...backups.findings, ...health.findings].filter((f) => f.message.includes(damaged.id));
  t.same(mentions.map((f) => [f.check, f.status]), [['backups.damaged.s0', 'WARNING']]);
});

t.test('a schedule whose only backup is damaged has no valid backup, and says why', async (t) => {
  const damaged = (id: string) => ({ id, service: 'postgres', schedule: 's0', problem: 'manifest.json fails its own checksum' });
  const one = planBackups(desired([{}]), observed([], [damaged('20261123T030001Z-bbbb')]), NOW);
  t.equal(one.actions[0]!.reason, 'no valid backup: the only one, 20261123T030001Z-bbbb, is damaged (manifest.json fails its own checksum)');
  const two = planBackups(desired([{}]), observed([], [damaged('20261122T030001Z-aaaa'), damaged('20261123T030001Z-bbbb')]), NOW);
  t.equal(two.actions[0]!.reason, 'no valid backup: all 2 are damaged, the newest 20261123T030001Z-bbbb (manifest.json fails its own checksum)');
});

t.test('a schedule of a service whose driver is not built yet is planned like the others', async (t) => {
  const p = planBackups(desired([{}, { service: 'redis', cron: '0 * * * *' }, { service: 'chroma' }]), observed([]), NOW);
  t.same(p.actions.map((a) => [a.id, variant(a, 'create_backup').params.service]), [['backup.create.s0', 'postgres'], ['backup.create.s1', 'redis'], ['backup.create.s2', 'chroma']]);
  t.same(p.errors, []);
});

t.test('an invalid cron is a plan error naming the config path, and the other schedules are still planned', async (t) => {
  const p = planBackups(desired([{ cron: 'every day' }, {}]), observed([]), NOW);
  t.equal(p.errors[0]!.path, 'backups[0].cron');
  t.same(p.actions.map((a) => a.id), ['backup.create.s1']);
});

t.test('the fingerprint is the set of backup ids, whatever their order or verification', async (t) => {
  const one = observed([b('20261124T030000Z-0002', '2026-11-24T03:00:00Z'), b('20261123T030000Z-0001', '2026-11-23T03:00:00Z', 's0', null)]);
  const two = observed([b('20261123T030000Z-0001', '2026-11-23T03:00:00Z', 's0', true), b('20261124T030000Z-0002', '2026-11-24T03:00:00Z')]);
  t.same(backupModule.fingerprint(one), backupModule.fingerprint(two));
  t.same(backupModule.fingerprint(one), { backups: ['20261123T030000Z-0001', '20261124T030000Z-0002'] });
});

t.test('a verification of the backup an earlier action creates fails clearly when that action did not run', async (t) => {
  const action = { id: 'backup.verify.s0', type: 'verify_backup' as const, module: 'backup', target: 's0 (new backup)', reason: '', risk: 'safe' as const, estimate: null, params: { schedule: 's0', fromAction: 'backup.create.s0', restoreTest: true } };
  const ctx = { desired: desired([{}]), outcomes: new Map() } as unknown as ExecuteContext;
  await t.rejects(verifyBackupHandler(action, ctx, { note: () => undefined, update: () => undefined }), { code: 'PLAN_INVALID', message: /backup.create.s0, which did not run/ });
});
