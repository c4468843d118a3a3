/**
 * Planning across repositories (src/backup/module.ts), pure: a due backup is written to the first
 * repository and copied to the others; an existing backup a repository lacks is copied there only
 * when that repository's keep rules would keep it; each repository prunes by its own rules; the
 * newest valid backup is never pruned in any of them; an unreachable repository holds back only
 * the actions that reach it.
 */
import t from 'tap';
import type { BackupSchedule, Desired, KeepRules, RepositoryConfig } from '../../src/config/types.js';
import { backupModule, planBackups, type BackupObserved, type ObservedScheduleBackup } from '../../src/backup/module.js';
import type { MigrateObserved } from '../../src/migrate/observe.js';
import { blockedActions, orderActions } from '../../src/engine/planner.js';
import { paramsProblem } from '../../src/engine/action-params.js';
import type { Action, CopyBackup, PruneBackup } from '../../src/engine/types.js';

const NOW = new Date('2026-11-24T10:00:00Z');

function desired(keep: KeepRules, repositories: { name: string; keep?: KeepRules }[]): Desired {
  return {
    version: 1, project: 'jarvis', configFile: '/x/jarvis-db.yaml', configHash: 'h', services: {}, storage: { path: '/x/state' },
    repositories: repositories.map((r, i): RepositoryConfig => ({ name: r.name, path: `repositories[${i}]`, kind: 'local', dir: `/x/${r.name}`, ...(r.keep ? { keep: r.keep } : {}) })),
    backups: [{ name: 'nightly', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC', keep, verify: 'checksum', path: 'backups[0]' }] as BackupSchedule[],
    retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}

/** A backup of day `day` of November 2026 at 03:00:01, in `repository`. */
const b = (day: number, repository: string, verified: boolean | null = true): ObservedScheduleBackup => {
  const d = String(day).padStart(2, '0');
  return { id: `202611${d}T030001Z-aaaa`, repository, service: 'postgres', schedule: 'nightly', startedAt: `2026-11-${d}T03:00:01Z`, finishedAt: `2026-11-${d}T03:00:01Z`, totalBytes: 100, verified, verifiedBy: verified === null ? null : 'checksum' };
};
const id = (day: number) => `202611${String(day).padStart(2, '0')}T030001Z-aaaa`;

function observed(backups: ObservedScheduleBackup[], repositories: string[], down: Record<string, string> = {}): BackupObserved {
  return {
    backups, debris: [], invalid: [],
    repositories: repositories.map((name) => (down[name] ? { name, reachable: false, location: `/x/${name}`, message: down[name] } : { name, reachable: true, location: `/x/${name}` })),
  };
}

const copies = (actions: Action[]) => actions.filter((a): a is CopyBackup => a.type === 'copy_backup');
const prunes = (actions: Action[]) => actions.filter((a): a is PruneBackup => a.type === 'prune_backup');

t.test('a due backup: create_backup in the first repository, then a copy_backup per other repository that requires it', async (t) => {
  const d = desired({ last: 3 }, [{ name: 'local' }, { name: 'offsite' }, { name: 'usb' }]);
  const plan = planBackups(d, observed([], ['local', 'offsite', 'usb']), NOW);
  t.same(plan.errors, []);
  const ordered = orderActions(plan.actions);
  t.same(ordered.map((a) => a.id), ['backup.create.nightly', 'backup.copy.nightly.offsite', 'backup.copy.nightly.usb']);
  const copy = copies(plan.actions)[0]!;
  t.same(copy.params, { schedule: 'nightly', service: 'postgres', fromAction: 'backup.create.nightly', from: 'local', to: 'offsite' });
  t.same(copy.requires, ['backup.create.nightly']);
  t.same(copy.repositories, ['local', 'offsite']);
  t.equal(copy.target, 'nightly/<new backup> to offsite');
  t.match(copy.reason, /^missing there/);
  t.equal(paramsProblem('copy_backup', copy.params as unknown as Record<string, unknown>), null, 'the params pass saved-plan validation');
});

t.test('an existing valid backup that a repository lacks is copied there: `copy nightly/<id> to offsite: missing there`', async (t) => {
  const d = desired({ last: 3 }, [{ name: 'local' }, { name: 'offsite' }]);
  const plan = planBackups(d, observed([b(24, 'local'), b(23, 'local'), b(23, 'offsite')], ['local', 'offsite']), NOW);
  t.same(plan.actions.map((a) => a.id), [`backup.copy.${id(24)}.offsite`], 'not due (24th 03:00 backed up), one copy');
  const copy = copies(plan.actions)[0]!;
  t.same(copy.params, { schedule: 'nightly', service: 'postgres', id: id(24), from: 'local', to: 'offsite' });
  t.equal(copy.target, `nightly/${id(24)} to offsite`);
  t.match(copy.reason, /^missing there \(from local; kept by nightly's keep rules last=3\)$/);
  t.same(copy.repositories, ['local', 'offsite']);
});

t.test("no copy of what the target's keep rules would prune; a backup that failed verification is not copied", async (t) => {
  const d = desired({ last: 5 }, [{ name: 'local' }, { name: 'offsite', keep: { last: 2 } }]);
  const local = [24, 23, 22, 21, 20].map((day) => b(day, 'local'));
  const plan = planBackups(d, observed([...local, b(23, 'offsite')], ['local', 'offsite']), NOW);
  // offsite holds the 23rd and keeps 2: of the 24th, 22nd, 21st, 20th only the 24th is kept with the 23rd.
  t.same(copies(plan.actions).map((c) => c.params.id), [id(24)]);
  const failed = planBackups(d, observed([b(24, 'local', false), b(23, 'local'), b(23, 'offsite')], ['local', 'offsite']), NOW);
  t.same(copies(failed.actions).filter((c) => c.params.id !== undefined).map((c) => c.params.id), [], 'the failed 24th is not copied');
});

t.test('each repository prunes by its own keep rules; prunes name the repository; ids stay unique', async (t) => {
  const d = desired({ last: 2 }, [{ name: 'local' }, { name: 'offsite', keep: { last: 4 } }]);
  const days = [24, 23, 22, 21, 20];
  const plan = planBackups(d, observed([...days.map((day) => b(day, 'local')), ...days.map((day) => b(day, 'offsite'))], ['local', 'offsite']), NOW);
  const p = prunes(plan.actions);
  t.same(p.map((a) => [a.id, a.params.repository, a.params.id]), [
    [`backup.prune.${id(22)}`, 'local', id(22)], [`backup.prune.${id(21)}`, 'local', id(21)], [`backup.prune.${id(20)}`, 'local', id(20)],
    [`backup.prune.${id(20)}.offsite`, 'offsite', id(20)],
  ]);
  t.same(p[3]!.repositories, ['offsite']);
  t.match(p[3]!.reason, /outside keep rules last=4 of nightly in offsite/);
  t.equal(new Set(plan.actions.map((a) => a.id)).size, plan.actions.length);
  t.same(copies(plan.actions), [], 'nothing missing anywhere');
});

t.test('the newest valid backup of a schedule is never pruned in any repository (the newest valid there)', async (t) => {
  const d = desired({ last: 1 }, [{ name: 'local' }, { name: 'offsite' }]);
  // In offsite the newer 24th failed verification: its newest valid is the 22nd, which stays.
  const plan = planBackups(d, observed([b(24, 'local'), b(23, 'local'), b(24, 'offsite', false), b(22, 'offsite')], ['local', 'offsite']), NOW);
  const p = prunes(plan.actions);
  t.same(p.map((a) => [a.params.repository, a.params.id]), [['local', id(23)]]);
  t.ok(plan.findings.some((f) => f.check === 'backup.keep.nightly.offsite' && f.value === id(22)), 'a finding says why it is kept');
  // Every valid backup of every repository: the newest of each is not pruned.
  for (const repo of ['local', 'offsite']) t.notOk(p.some((a) => a.params.repository === repo && a.params.id === (repo === 'local' ? id(24) : id(22))));
});

t.test('an unreachable repository: one plan error naming it; it holds back only the copies to it, the rest runs', async (t) => {
  const d = desired({ last: 3 }, [{ name: 'local' }, { name: 'offsite' }, { name: 'usb' }]);
  const plan = planBackups(d, observed([b(20, 'local'), b(19, 'local'), b(18, 'local'), b(17, 'local')], ['local', 'offsite', 'usb'], { offsite: 'connect ECONNREFUSED 127.0.0.1:9' }), NOW);
  t.equal(plan.errors.length, 1);
  t.match(plan.errors[0], { module: 'backup', repository: 'offsite', path: 'repositories[1]', message: /^repository offsite \(\/x\/offsite\) cannot be read: connect ECONNREFUSED 127\.0\.0\.1:9; copies to it and prunes in it are held back/ });
  const blocked = blockedActions(plan.actions, plan.errors);
  t.same([...blocked.keys()].sort(), ['backup.copy.nightly.offsite'], 'only the copy of the new backup to offsite');
  t.ok(plan.actions.some((a) => a.id === 'backup.create.nightly'), 'the backup itself goes on');
  t.ok(plan.actions.some((a) => a.id === 'backup.copy.nightly.usb'), 'and its copy to usb');
  t.ok(copies(plan.actions).some((c) => c.params.to === 'usb' && c.params.id === id(20)), 'existing backups are copied to usb');
  t.notOk(plan.actions.some((a) => a.type === 'prune_backup' && a.params.repository === 'offsite'), 'nothing pruned in offsite');
  t.ok(prunes(plan.actions).some((a) => a.params.repository === 'local' && a.params.id === id(17)), 'local still prunes');
});

t.test('the first repository unreachable: the backup is written to the next one, and copied back once it answers', async (t) => {
  const d = desired({ last: 3 }, [{ name: 'local' }, { name: 'offsite' }]);
  const plan = planBackups(d, observed([], ['local', 'offsite'], { local: 'EACCES' }), NOW);
  const create = plan.actions.find((a) => a.type === 'create_backup')!;
  t.same(create.params, { schedule: 'nightly', service: 'postgres', repository: 'offsite' });
  t.match(create.reason, /written to offsite \(local cannot be read\)/);
  const copy = copies(plan.actions)[0]!;
  t.same([copy.params.from, copy.params.to], ['offsite', 'local']);
  t.same([...blockedActions(plan.actions, plan.errors).keys()], [copy.id]);
});

t.test('a backup in two repositories counts once: not due twice, verified once', async (t) => {
  const d = desired({ last: 3 }, [{ name: 'local' }, { name: 'offsite' }]);
  const plan = planBackups({ ...d, backups: [{ ...d.backups[0]!, verify: 'restore' }] }, observed([b(24, 'local', true), b(24, 'offsite', true)], ['local', 'offsite']), NOW);
  t.same(plan.actions.map((a) => a.type), ['verify_backup']);
});

t.test('a pre-change backup (schema.backupBefore) that was not due is copied to the other repositories too', async (t) => {
  const d: Desired = {
    ...desired({ last: 3 }, [{ name: 'local' }, { name: 'offsite' }]),
    services: { postgres: { url: 'postgres://jarvis@127.0.0.1/jarvis' } },
    schema: { migrations: '/m', target: 'latest', allowDown: false, backupBefore: true },
  };
  const migrate: MigrateObserved = {
    database: 'jarvis', databaseExists: true, directory: '/m', problems: [], embeddingType: null,
    files: [{ name: '001', file: '001.sql', sha256: '0'.repeat(64), hasDown: true }], applied: [],
  };
  const seen = observed([b(24, 'local'), b(24, 'offsite')], ['local', 'offsite']);
  const part = backupModule.plan(d, seen, NOW, { backup: seen, migrate });
  t.same(part.actions.map((a) => a.id), ['backup.create.nightly', 'backup.copy.nightly.offsite']);
  t.same(part.actions[1]!.requires, ['backup.create.nightly']);
});
