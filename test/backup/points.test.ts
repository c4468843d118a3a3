/**
 * Recovery points, pure (src/backup/points.ts, point-plan.ts): the keep rule (a point is kept
 * while its PostgreSQL member is, and then keeps its other members), the prune of a point before
 * its PostgreSQL backup, a due `service: all` schedule, broken points, and the config checks.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackupSchedule, Desired } from '../../src/config/types.js';
import { loadConfig } from '../../src/config/load.js';
import { planBackups, type BackupObserved, type ObservedScheduleBackup } from '../../src/backup/module.js';
import { orderActions } from '../../src/engine/planner.js';
import { pointProblems, protectPointMembers, type ObservedPoint } from '../../src/backup/points.js';
import { keepDecisions } from '../../src/backup/operations.js';

const schedule = (name: string, service: BackupSchedule['service'], keep: BackupSchedule['keep']): BackupSchedule =>
  ({ name, service, cron: '0 3 * * *', timezone: 'UTC', keep, verify: 'checksum', path: 'backups[0]' });

function desired(points = false): Desired {
  return {
    version: 1, project: 'jarvis', configFile: '/x/jarvis-db.yaml', configHash: 'h', services: {}, storage: { path: '/x/backups' },
    backups: [schedule('pg', 'postgres', { last: 2 }), schedule('rd', 'redis', { last: 1 }), schedule('ch', 'chroma', { last: 1 })],
    ...(points ? { points: [{ name: 'together', cron: '0 4 * * *', timezone: 'UTC', members: [{ service: 'postgres' as const, schedule: 'pg' }, { service: 'redis' as const, schedule: 'rd' }, { service: 'chroma' as const, schedule: 'ch' }], path: 'backups[3]' }] } : {}),
    retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}
const b = (id: string, schedule: string, service: string, day: number): ObservedScheduleBackup =>
  ({ id, service, schedule, startedAt: `2026-11-${String(day).padStart(2, '0')}T04:00:00.000Z`, finishedAt: `2026-11-${String(day).padStart(2, '0')}T04:01:00.000Z`, totalBytes: 10, verified: true, verifiedBy: 'checksum' });
const point = (id: string, day: number): ObservedPoint => ({
  id, schedule: 'together', startedAt: `2026-11-${String(day).padStart(2, '0')}T04:00:00.000Z`,
  members: [{ service: 'postgres', schedule: 'pg', id: `pg${day}` }, { service: 'redis', schedule: 'rd', id: `rd${day}` }, { service: 'chroma', schedule: 'ch', id: `ch${day}` }],
});
// Three days of backups of each service, a point on days 20 and 21, the day-22 backups without one.
const backups = [20, 21, 22].flatMap((d) => [b(`pg${d}`, 'pg', 'postgres', d), b(`rd${d}`, 'rd', 'redis', d), b(`ch${d}`, 'ch', 'chroma', d)]);
const observed = (points: ObservedPoint[]): BackupObserved => ({ backups, debris: [], invalid: [], points });
const NOW = new Date('2026-11-22T05:00:00Z');

t.test('a point is kept while its PostgreSQL member is kept, and then keeps its Redis and Chroma members', async (t) => {
  const decisions = keepDecisions(desired(), backups);
  const { pruned } = protectPointMembers(decisions, [point('p20', 20), point('p21', 21)]);
  const kept = (s: string) => decisions.get(s)!.decisions.filter((d) => d.keep).map((d) => d.id);
  t.same(kept('pg'), ['pg22', 'pg21'], 'last=2 keeps the two newest PostgreSQL backups');
  t.same(kept('rd'), ['rd22', 'rd21'], 'rd21 is kept beyond last=1: its point p21 is kept');
  t.same(kept('ch'), ['ch22', 'ch21']);
  t.same(decisions.get('rd')!.decisions.find((d) => d.id === 'rd21')!.reasons, ['point p21']);
  t.same(pruned, ['p20'], 'p20 goes: its PostgreSQL backup pg20 is outside the keep rules');
});

t.test('the plan prunes a point before its PostgreSQL backup, and never a member of a kept point', async (t) => {
  const plan = planBackups(desired(), observed([point('p20', 20), point('p21', 21)]), NOW);
  const prunes = plan.actions.filter((a) => a.type === 'prune_backup' || a.type === 'prune_point');
  t.same(prunes.map((a) => a.id).sort(), ['backup.prune.ch20', 'backup.prune.pg20', 'backup.prune.point.p20', 'backup.prune.rd20']);
  const ordered = orderActions(plan.actions).map((a) => a.id);
  t.ok(ordered.indexOf('backup.prune.point.p20') < ordered.indexOf('backup.prune.pg20'), 'the point goes first: a listed point never names a deleted backup');
  t.same(plan.actions.find((a) => a.id === 'backup.prune.pg20')!.requires, ['backup.prune.point.p20']);
  t.notOk(plan.actions.some((a) => a.target === 'rd21' || a.target === 'ch21'), 'the members of p21 stay');
});

t.test('a due service: all schedule plans each member and then the point, which requires them all', async (t) => {
  const plan = planBackups(desired(true), observed([point('p21', 21)]), NOW);
  const create = plan.actions.find((a) => a.type === 'create_point')!;
  t.ok(create, 'the point is due: its newest is from yesterday');
  t.equal(create.reason, 'due since 04:00 UTC per `0 4 * * *`');
  t.same(create.params, { schedule: 'together', members: ['backup.create.pg', 'backup.create.rd', 'backup.create.ch'] });
  t.same(create.requires, ['backup.create.pg', 'backup.create.rd', 'backup.create.ch']);
  const pg = plan.actions.find((a) => a.id === 'backup.create.pg')!;
  t.same(pg.params, { schedule: 'pg', service: 'postgres', point: true }, 'the PostgreSQL member reads the WAL position as it starts');
  const fresh = planBackups(desired(true), observed([{ ...point('p22', 22), startedAt: '2026-11-22T04:00:01.000Z' }]), NOW);
  t.notOk(fresh.actions.some((a) => a.type === 'create_point'), 'a point after the last fire time covers it');
});

t.test('a point whose member is gone or damaged is broken, naming it', async (t) => {
  const p = point('p21', 21);
  t.same(pointProblems(p, backups, []), []);
  t.same(pointProblems(p, backups.filter((x) => x.id !== 'rd21'), []), ['its redis backup rd21 (rd) is gone']);
  t.same(pointProblems(p, backups, [{ id: 'ch21', problem: 'manifest.json fails its own checksum' }]), ['its chroma backup ch21 is damaged (manifest.json fails its own checksum)']);
});

async function load(dir: string, lines: string[]): Promise<Desired> {
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, ['version: 1', 'services:', '  postgres: { url: "postgres://u@127.0.0.1:5/db" }', '  redis: { url: "redis://127.0.0.1:6/0" }', 'backups:',
    '  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", keep: { last: 2 } }',
    '  - { name: dump, service: postgres, cron: "0 3 * * *", keep: { last: 2 } }',
    '  - { name: rdb, service: redis, cron: "0 3 * * *", keep: { last: 2 } }', ...lines, ''].join('\n'));
  return loadConfig(file);
}

t.test('service: all takes the first schedule of each service (for PostgreSQL the first logical one) unless members says', async (t) => {
  const d = await load(t.testdir(), ['  - { name: together, service: all, cron: "0 4 * * *" }']);
  t.same(d.backups.map((s) => s.name), ['base', 'dump', 'rdb'], 'a point schedule is no backup schedule of its own');
  t.same(d.points, [{ name: 'together', cron: '0 4 * * *', timezone: 'UTC', members: [{ service: 'postgres', schedule: 'dump' }, { service: 'redis', schedule: 'rdb' }], path: 'backups[3]' }]);
  const named = await load(t.testdir(), ['  - { name: together, service: all, cron: "0 4 * * *", members: { postgres: base } }']);
  t.same(named.points![0]!.members, [{ service: 'postgres', schedule: 'base' }]);
});

t.test('a service: all entry with keep rules or members naming a missing or foreign schedule is an error naming file:line', async (t) => {
  await t.rejects(load(t.testdir(), ['  - name: together', '    service: all', '    cron: "0 4 * * *"', '    keep: { last: 1 }', '    members: { redis: nope, chroma: rdb }']), {
    code: 'CONFIG_INVALID',
    details: [/jarvis-db\.yaml:12:11: backups\[3\]\.keep: keep does not apply to service: all/, /jarvis-db\.yaml:13:23: backups\[3\]\.members\.redis: no backup schedule named "nope" \(redis schedules: rdb\)/,
      /backups\[3\]\.members\.chroma: schedule "rdb" backs up redis, not chroma/],
  });
  await t.rejects(load(t.testdir(), ['  - { name: x, service: redis, cron: "0 4 * * *" }']), { code: 'CONFIG_INVALID', details: [/backups\[3\]: missing required key "keep"/] });
});
