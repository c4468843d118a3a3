/**
 * The pure planner: observations of fake modules (plain data) and of the real backup module
 * in, a Plan out. No server, no clock, no filesystem.
 */
import t from 'tap';
import { backupModule, type BackupObserved } from '../../src/backup/module.js';
import { addPreChangeBackup, blockedActions, buildPlan, narrowPlan, orderActions, type Observation } from '../../src/engine/planner.js';
import type { DomainModule, PlanError } from '../../src/engine/types.js';
import { action, desiredFixture, fakeModule } from './fixtures/plan-fixtures.js';

const AT = '2026-11-24T10:00:00.000Z';
const observationOf = (modules: DomainModule<unknown>[], data: Record<string, unknown> = {}): Observation =>
  ({ at: AT, modules: Object.fromEntries(modules.map((m) => [m.name, { ok: true as const, observed: data[m.name] ?? {} }])) });

t.test('actions of every module are merged in the order of docs/architecture.md §2, whatever order the modules give them', async (t) => {
  const scrambled = [
    action('backup.verify.a', 'verify_backup'),
    action('retention.delete.messages', 'retention_delete'),
    action('backup.prune.old', 'prune_backup', { risk: 'destructive' }),
    action('retention.archive.messages', 'retention_archive'),
    action('backup.create.redis', 'create_backup'),
    action('migrate.up.002', 'migrate_up'),
    action('retention.prune-archive.x', 'prune_archive', { risk: 'destructive' }),
    action('migrate.up.003', 'migrate_up'),
    action('retention.compress.metrics', 'retention_compress'),
    action('retention.anonymize.users', 'retention_anonymize'),
  ];
  const ordered = orderActions(scrambled).map((a) => a.id);
  t.same(ordered, [
    'migrate.up.002', 'migrate.up.003',
    'backup.create.redis',
    'retention.archive.messages', 'retention.anonymize.users', 'retention.compress.metrics', 'retention.delete.messages',
    'backup.prune.old', 'retention.prune-archive.x',
    'backup.verify.a',
  ]);
});

t.test('with schema.backupBefore, the due postgres backup moves before the migrations, which require it', async (t) => {
  const desired = desiredFixture({ schema: { migrations: '/m', target: 'latest', allowDown: false, backupBefore: true } }, [{ name: 'pg' }, { name: 'rd', service: 'redis' }]);
  const errors: PlanError[] = [];
  const out = orderActions(addPreChangeBackup(desired, [
    action('backup.create.rd', 'create_backup', { params: { schedule: 'rd', service: 'redis' } }),
    action('backup.create.pg', 'create_backup', { params: { schedule: 'pg', service: 'postgres' }, reason: 'no backup yet' }),
    action('migrate.up.001', 'migrate_up'),
  ], errors));
  t.same(out.map((a) => a.id), ['backup.create.pg', 'migrate.up.001', 'backup.create.rd']);
  t.equal(out[0]!.reason, 'no backup yet; and before migrations (schema.backupBefore)');
  t.same(out[1]!.requires, ['backup.create.pg']);
  t.same(errors, []);
});

t.test('with schema.backupBefore and no due postgres backup, one is added before the migrations', async (t) => {
  const desired = desiredFixture({ schema: { migrations: '/m', target: 'latest', allowDown: false, backupBefore: true } }, [{ name: 'pg' }]);
  const out = orderActions(addPreChangeBackup(desired, [action('migrate.up.001', 'migrate_up')], []));
  t.same(out.map((a) => [a.id, a.type, a.type === 'create_backup' ? a.params.preChange : undefined, a.reason]), [
    ['backup.create.pg', 'create_backup', true, 'before migrations (schema.backupBefore)'],
    ['migrate.up.001', 'migrate_up', undefined, 'because migrate.up.001'],
  ]);
});

t.test('schema.backupBefore without a postgres schedule is a plan error; without migrations nothing is added', async (t) => {
  const schema = { migrations: '/m', target: 'latest', allowDown: false, backupBefore: true };
  const errors: PlanError[] = [];
  addPreChangeBackup(desiredFixture({ schema }, [{ name: 'rd', service: 'redis' }]), [action('migrate.up.001', 'migrate_up')], errors);
  t.match(errors, [{ path: 'schema.backupBefore', message: /no backup schedule backs up postgres/ }]);
  t.same(addPreChangeBackup(desiredFixture({ schema }, [{ name: 'pg' }]), [action('backup.prune.x', 'prune_backup')], []).map((a) => a.id), ['backup.prune.x']);
  t.same(addPreChangeBackup(desiredFixture({ schema: { ...schema, backupBefore: false } }, [{ name: 'pg' }]), [action('migrate.up.001', 'migrate_up')], []).map((a) => a.id), ['migrate.up.001']);
});

t.test('the same observation gives the same plan: ids and fingerprint stable across re-plans', async (t) => {
  const desired = desiredFixture({}, [{ name: 'pg', keep: { last: 1 } }]);
  const observed: BackupObserved = {
    backups: [
      { id: '20261123T030000Z-0002', service: 'postgres', schedule: 'pg', startedAt: '2026-11-23T03:00:00Z', finishedAt: '2026-11-23T03:01:00Z', totalBytes: 5, verified: null, verifiedBy: null },
      { id: '20261122T030000Z-0001', service: 'postgres', schedule: 'pg', startedAt: '2026-11-22T03:00:00Z', finishedAt: '2026-11-22T03:01:00Z', totalBytes: 5, verified: null, verifiedBy: null },
    ],
    debris: [], invalid: [],
  };
  const modules = [backupModule as DomainModule<unknown>];
  const one = buildPlan(desired, modules, observationOf(modules, { backup: observed }));
  const two = buildPlan(desired, modules, observationOf(modules, { backup: structuredClone(observed) }));
  t.same(one, two);
  t.same(one.actions.map((a) => a.id), ['backup.create.pg', 'backup.prune.20261122T030000Z-0001']);
  // An hour later the same decisions stand: same ids, same fingerprint.
  const later = buildPlan(desired, modules, { ...observationOf(modules, { backup: observed }), at: '2026-11-24T11:00:00.000Z' });
  t.same(later.actions.map((a) => a.id), one.actions.map((a) => a.id));
  t.equal(later.fingerprint, one.fingerprint);
});

t.test('the fingerprint covers the config hash and each module fingerprint, not what merely ages', async (t) => {
  const counting = fakeModule('retention', { fingerprint: (o) => (o as { cutoff: string }).cutoff });
  const modules = [counting];
  const base = buildPlan(desiredFixture(), modules, observationOf(modules, { retention: { cutoff: 'c1', rows: 10 } }));
  t.equal(buildPlan(desiredFixture(), modules, observationOf(modules, { retention: { cutoff: 'c1', rows: 99 } })).fingerprint, base.fingerprint, 'row counts are not in it');
  t.not(buildPlan(desiredFixture(), modules, observationOf(modules, { retention: { cutoff: 'c2', rows: 10 } })).fingerprint, base.fingerprint);
  t.not(buildPlan(desiredFixture({ configHash: 'other' }), modules, observationOf(modules, { retention: { cutoff: 'c1', rows: 10 } })).fingerprint, base.fingerprint);
  t.same(base.basis, { configHash: 'config-hash-1', modules: { retention: 'c1' } });
});

t.test('a module that cannot be observed or planned gives a plan error; the others are still planned', async (t) => {
  const ok = fakeModule('backup', { actions: [action('backup.create.a', 'create_backup')] });
  const broken = fakeModule('health', { observeError: 'connection refused' });
  const buggy = fakeModule('retention', { planError: 'boom' });
  const withOwnError = fakeModule('migrate', { errors: [{ module: 'migrate', message: '001_init.sql changed after it was applied', path: 'schema' }] });
  const modules = [ok, broken, buggy, withOwnError];
  const observation: Observation = { at: AT, modules: { backup: { ok: true, observed: {} }, health: { ok: false, error: 'connection refused' }, retention: { ok: true, observed: {} }, migrate: { ok: true, observed: {} } } };
  const plan = buildPlan(desiredFixture(), modules, observation);
  t.same(plan.actions.map((a) => a.id), ['backup.create.a']);
  t.same(plan.errors.map((e) => [e.module, e.message]), [
    ['health', 'cannot observe: connection refused'],
    ['retention', 'planning failed: boom'],
    ['migrate', '001_init.sql changed after it was applied'],
  ]);
});

t.test('modules that do not apply to the config are neither planned nor part of the fingerprint', async (t) => {
  const idle = fakeModule('retention', { applies: false, actions: [action('retention.delete.x', 'retention_delete')] });
  const plan = buildPlan(desiredFixture(), [idle], { at: AT, modules: {} });
  t.same([plan.actions, plan.errors, plan.basis.modules], [[], [], {}]);
});

t.test('duplicate ids and requirements on missing actions are plan errors', async (t) => {
  const m = fakeModule('backup', { actions: [action('backup.x', 'create_backup'), action('backup.x', 'create_backup'), action('backup.v', 'verify_backup', { requires: ['backup.nope'] })] });
  const plan = buildPlan(desiredFixture(), [m], observationOf([m]));
  t.match(plan.errors.map((e) => e.message), [/two actions have the id backup.x/, /backup.v requires backup.nope/]);
});

t.test('--target narrows to a module, an action id or an id prefix, keeping the actions they require', async (t) => {
  const m = fakeModule('backup', { actions: [
    action('backup.create.pg', 'create_backup'), action('backup.create.rd', 'create_backup'),
    action('backup.verify.pg', 'verify_backup', { requires: ['backup.create.pg'] }), action('backup.prune.1', 'prune_backup'),
  ] });
  const other = fakeModule('marker', { actions: [action('marker.ensure.x', 'create_backup', { module: 'marker' })] });
  const plan = buildPlan(desiredFixture(), [m, other], observationOf([m, other]));
  const names = ['backup', 'marker', 'retention'];
  t.same(narrowPlan(plan, 'marker', names).actions.map((a) => a.id), ['marker.ensure.x']);
  t.same(narrowPlan(plan, 'backup.verify.pg', names).actions.map((a) => a.id), ['backup.create.pg', 'backup.verify.pg']);
  t.same(narrowPlan(plan, 'backup.create', names).actions.map((a) => a.id), ['backup.create.pg', 'backup.create.rd']);
  t.equal(narrowPlan(plan, 'backup.prune.1', names).target, 'backup.prune.1');
  t.same(narrowPlan(plan, 'retention', names).actions, [], 'a module with nothing to do is a valid target');
  t.throws(() => narrowPlan(plan, 'bakup', names), { code: 'USAGE', message: /--target bakup names no module and no planned action/, hint: /modules: backup, marker, retention; planned actions: backup.create.pg/ });
});

t.test('a service found down is an error only when a planned action reaches it, and holds back only those actions', async (t) => {
  const backups = fakeModule('backup', {
    actions: [
      action('backup.create.pg', 'create_backup', { services: ['postgres'] }),
      action('backup.create.chroma', 'create_backup', { services: ['chroma'] }),
      action('backup.verify.pg', 'verify_backup', { requires: ['backup.create.pg'] }),
    ],
  });
  const retention = fakeModule('retention', { actions: [action('retention.delete.metrics', 'retention_delete', { services: ['postgres'] })] });
  const observation: Observation = {
    ...observationOf([backups, retention]),
    services: { postgres: { ok: false, error: 'cannot connect to PostgreSQL at postgres://127.0.0.1:5432/jarvis: ECONNREFUSED' }, redis: { ok: false, error: 'cannot connect to Redis' }, chroma: { ok: true } },
  };
  const plan = buildPlan(desiredFixture(), [backups, retention], observation);
  t.same(plan.errors.map((e) => [e.module, e.service]), [['services', 'postgres']], 'redis is down too, but nothing planned needs it');
  t.match(plan.errors[0]!.message, /ECONNREFUSED; the 2 actions that need it wait for it, the others go on$/);
  const held = blockedActions(plan.actions, plan.errors);
  t.same([...held.keys()].sort(), ['backup.create.pg', 'backup.verify.pg', 'retention.delete.metrics']);
  t.notOk(held.has('backup.create.chroma'));
});

t.test('an error of one module holds back that module only; the backupBefore error holds back the migrations', async (t) => {
  const actions = [action('migrate.up.002', 'migrate_up'), action('backup.create.redis', 'create_backup'), action('retention.delete.m', 'retention_delete')];
  const errors: PlanError[] = [];
  const desired = desiredFixture({ schema: { migrations: '/m', target: 'latest', allowDown: false, backupBefore: true } }, [{ name: 'r', service: 'redis' }]);
  const out = addPreChangeBackup(desired, actions, errors);
  t.same(errors.map((e) => e.module), ['migrate']);
  t.same([...blockedActions(out, errors).keys()], ['migrate.up.002']);
});

t.test('--target keeps the errors that concern what it keeps', async (t) => {
  const plan = buildPlan(desiredFixture(), [
    fakeModule('migrate', { errors: [{ module: 'migrate', message: 'drift' }] }),
    fakeModule('backup', { actions: [action('backup.create.pg', 'create_backup', { services: ['postgres'] }), action('backup.create.redis', 'create_backup', { services: ['redis'] })] }),
  ], { ...observationOf([fakeModule('migrate'), fakeModule('backup')]), services: { postgres: { ok: false, error: 'down' } } });
  const names = ['migrate', 'backup'];
  t.same(narrowPlan(plan, 'backup.create.redis', names).errors, []);
  t.same(narrowPlan(plan, 'backup.create.pg', names).errors.map((e) => e.service), ['postgres']);
  t.same(narrowPlan(plan, 'migrate', names).errors.map((e) => e.message), ['drift']);
  t.same(narrowPlan(plan, 'migrate.up.003', names).actions, [], 'an action of a module with an error is not a usage error');
  t.throws(() => narrowPlan(plan, 'retention.delete.x', names), { code: 'USAGE' });
});
