/**
 * The pure planner: observations of fake modules (plain data) and of the real backup and
 * migrate modules in, a Plan out. No server, no clock, no filesystem.
 */
import t from 'tap';
import { backupModule, type BackupObserved } from '../../src/backup/module.js';
import { blockedActions, buildPlan, narrowPlan, orderActions, type Observation } from '../../src/engine/planner.js';
import type { DomainModule } from '../../src/engine/types.js';
import { migrateModule } from '../../src/migrate/module.js';
import type { MigrateObserved } from '../../src/migrate/observe.js';
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

const SCHEMA = { migrations: '/m', target: 'latest', allowDown: false, backupBefore: true };
const POSTGRES = { postgres: { url: 'postgres://jarvis@127.0.0.1/jarvis' } };
/** The migrate module's observation: migrations `names`, the first `applied` of them applied. */
const migrations = (names: string[], applied = 0): MigrateObserved => ({
  database: 'jarvis', databaseExists: true, directory: '/m', problems: [], embeddingType: null,
  files: names.map((name) => ({ name, file: `${name}.sql`, sha256: name.padEnd(64, '0'), hasDown: true })),
  applied: names.slice(0, applied).map((name) => ({ name, runOn: '2026-11-01T03:00:00.000Z', sha256: name.padEnd(64, '0') })),
});
/** A backup of `schedule` at 03:00 today: a `0 3 * * *` schedule is not due. */
const backedUpToday = (schedule: string): BackupObserved => ({
  backups: [{ id: '20261124T030000Z-0001', service: 'postgres', schedule, startedAt: '2026-11-24T03:00:00Z', finishedAt: '2026-11-24T03:01:00Z', totalBytes: 5, verified: null, verifiedBy: null }],
  debris: [], invalid: [],
});
const noBackups: BackupObserved = { backups: [], debris: [], invalid: [] };
const realModules = [backupModule, migrateModule] as DomainModule<unknown>[];

t.test('an action comes after what it requires, even one of a later phase; otherwise the phase order holds', async (t) => {
  const out = orderActions([
    action('backup.create.rd', 'create_backup'),
    action('backup.create.pg', 'create_backup'),
    action('migrate.up.001', 'migrate_up', { requires: ['backup.create.pg'] }),
    action('migrate.up.002', 'migrate_up', { requires: ['backup.create.pg'] }),
    action('backup.verify.pg', 'verify_backup', { requires: ['backup.create.pg'] }),
  ]);
  t.same(out.map((a) => a.id), ['backup.create.pg', 'migrate.up.001', 'migrate.up.002', 'backup.create.rd', 'backup.verify.pg']);
  const cycle = orderActions([action('a.x.1', 'create_backup', { requires: ['a.x.2'] }), action('a.x.2', 'create_backup', { requires: ['a.x.1'] })]);
  t.same(cycle.map((a) => a.id), ['a.x.2', 'a.x.1'], 'a cycle of requires still gives every action once');
});

t.test('with schema.backupBefore, the due postgres backup moves before the migrations, which require it', async (t) => {
  const desired = desiredFixture({ schema: SCHEMA, services: POSTGRES }, [{ name: 'pg' }, { name: 'rd', service: 'redis' }]);
  const plan = buildPlan(desired, realModules, observationOf(realModules, { backup: noBackups, migrate: migrations(['001']) }));
  t.same(plan.actions.map((a) => a.id), ['backup.create.pg', 'migrate.up.001', 'backup.create.rd']);
  t.equal(plan.actions[0]!.reason, 'no backup yet; and before migrations (schema.backupBefore)');
  t.same(plan.actions[1]!.requires, ['backup.create.pg']);
  t.same(plan.errors, []);
});

t.test('with schema.backupBefore and no due postgres backup, one is added before the migrations', async (t) => {
  const desired = desiredFixture({ schema: SCHEMA, services: POSTGRES }, [{ name: 'pg' }]);
  const plan = buildPlan(desired, realModules, observationOf(realModules, { backup: backedUpToday('pg'), migrate: migrations(['001']) }));
  t.same(plan.actions.map((a) => [a.id, a.type, a.type === 'create_backup' ? a.params.preChange : undefined, a.reason]), [
    ['backup.create.pg', 'create_backup', true, 'before migrations (schema.backupBefore)'],
    ['migrate.up.001', 'migrate_up', undefined, 'not applied; schema.target is latest (001)'],
  ]);
  t.same(plan.errors, []);
  // The first postgres schedule is not due, the second is: its due backup is the one the migrations require.
  const two = desiredFixture({ schema: SCHEMA, services: POSTGRES }, [{ name: 'pg' }, { name: 'pg-hourly', cron: '0 * * * *' }]);
  const both = buildPlan(two, realModules, observationOf(realModules, { backup: backedUpToday('pg'), migrate: migrations(['001']) }));
  t.same(both.actions.map((a) => [a.id, a.requires]), [['backup.create.pg-hourly', undefined], ['migrate.up.001', ['backup.create.pg-hourly']]]);
  t.match(both.actions[0]!.reason, /; and before migrations \(schema\.backupBefore\)$/);
});

t.test('schema.backupBefore without a postgres schedule is a plan error; without migrations nothing is added', async (t) => {
  const redisOnly = desiredFixture({ schema: SCHEMA, services: POSTGRES }, [{ name: 'rd', service: 'redis' }]);
  const refused = buildPlan(redisOnly, realModules, observationOf(realModules, { backup: backedUpToday('rd'), migrate: migrations(['001']) }));
  t.match(refused.errors, [{ module: 'migrate', path: 'schema.backupBefore', message: /no backup schedule backs up postgres/ }]);
  const desired = desiredFixture({ schema: SCHEMA, services: POSTGRES }, [{ name: 'pg', keep: { last: 1 } }]);
  const nothingPending = buildPlan(desired, realModules, observationOf(realModules, { backup: backedUpToday('pg'), migrate: migrations(['001'], 1) }));
  t.same(nothingPending.actions, [], 'no migrations: no backup before them');
  const off = desiredFixture({ schema: { ...SCHEMA, backupBefore: false }, services: POSTGRES }, [{ name: 'pg' }]);
  const plain = buildPlan(off, realModules, observationOf(realModules, { backup: backedUpToday('pg'), migrate: migrations(['001']) }));
  t.same(plain.actions.map((a) => [a.id, a.requires]), [['migrate.up.001', undefined]]);
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
  const desired = desiredFixture({ schema: SCHEMA, services: POSTGRES }, [{ name: 'redis', service: 'redis' }]);
  const modules = [...realModules, fakeModule('retention', { actions: [action('retention.delete.m', 'retention_delete')] })];
  const plan = buildPlan(desired, modules, observationOf(modules, { backup: noBackups, migrate: migrations(['002']) }));
  t.same(plan.actions.map((a) => a.id), ['migrate.up.002', 'backup.create.redis', 'retention.delete.m']);
  t.same(plan.errors.map((e) => e.module), ['migrate']);
  t.same([...blockedActions(plan.actions, plan.errors).keys()], ['migrate.up.002']);
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
