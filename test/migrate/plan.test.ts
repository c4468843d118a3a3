/**
 * The migrate planner on fixtures (no server): steps to the target, the drift and order errors,
 * the down opt-in, and the backup-before-migrations placement the engine uses.
 */
import t from 'tap';
import type { MigrationFile } from '../../src/migrate/files.js';
import type { MigrateObserved } from '../../src/migrate/observe.js';
import { checkHistory, planMigrations, planMigrationSteps, resolveTarget } from '../../src/migrate/plan.js';
import { formatStatus, migrationStatus } from '../../src/migrate/status.js';

const NAMES = ['0001_users_and_sessions', '0002_conversations_and_messages', '0003_memory', '0004_metrics', '0005_cache_entries'];
const sha = (name: string, v = '') => (name + v).padEnd(64, '0').replace(/[^0-9a-f]/g, 'a').slice(0, 64);
const files = (names = NAMES): MigrationFile[] => names.map((name) => ({ name, file: `${name}.sql`, sha256: sha(name), hasDown: true }));

function observed(appliedCount: number, over: Partial<MigrateObserved> = {}): MigrateObserved {
  const f = over.files ?? files();
  return {
    database: 'jarvis', databaseExists: true, directory: '/srv/jarvis/migrations', files: f, problems: [],
    applied: f.slice(0, appliedCount).map((x, i) => ({ name: x.name, runOn: `2026-11-0${i + 1}T03:00:00.000Z`, sha256: x.sha256 })),
    embeddingType: appliedCount >= 3 ? 'real[]' : null,
    ...over,
  };
}
const schema = (target = 'latest', allowDown = false) => ({ target, allowDown });

t.test('from an empty database, latest plans every migration up, in file order, as safe actions', async (t) => {
  const plan = planMigrations(schema(), observed(0));
  t.same(plan.errors, []);
  t.same(plan.actions.map((a) => a.id), NAMES.map((n) => `migrate.up.${n}`));
  t.ok(plan.actions.every((a) => a.type === 'migrate_up' && a.risk === 'safe' && a.module === 'migrate'));
  t.same(plan.actions[0]!.params, { name: NAMES[0], file: `${NAMES[0]}.sql`, direction: 'up', sha256: sha(NAMES[0]!), from: '0', to: NAMES[0] });
  t.same(plan.actions[2]!.params.from, NAMES[1], 'each step names the version it starts from');
  t.match(plan.actions[0]!.reason, /not applied; schema\.target is latest \(0005_cache_entries\)/);
});

t.test('a target name stops there; with the extension it means the same migration', async (t) => {
  for (const target of ['0003_memory', '0003_memory.sql']) {
    const plan = planMigrations(schema(target), observed(1));
    t.same(plan.actions.map((a) => a.target), ['0002_conversations_and_messages', '0003_memory'], target);
  }
});

t.test('at the target there is nothing to do', async (t) => {
  const plan = planMigrations(schema(), observed(5));
  t.same(plan.actions, []);
  t.same(plan.errors, []);
});

t.test('a target below the applied version without allowDown is an error and plans nothing', async (t) => {
  const plan = planMigrations(schema('0002_conversations_and_messages'), observed(4));
  t.same(plan.actions, []);
  t.equal(plan.errors.length, 1);
  t.match(plan.errors[0]!.message, /rolling back 0004_metrics, 0003_memory is destructive and needs schema\.allowDown: true/);
  t.equal(plan.errors[0]!.path, 'schema.allowDown');
});

t.test('with allowDown, a lower target rolls back newest first, each step destructive', async (t) => {
  const plan = planMigrations(schema('0002_conversations_and_messages', true), observed(4));
  t.same(plan.errors, []);
  t.same(plan.actions.map((a) => a.id), ['migrate.down.0004_metrics', 'migrate.down.0003_memory']);
  t.ok(plan.actions.every((a) => a.type === 'migrate_down' && a.risk === 'destructive'));
  t.same(plan.actions[1]!.params.to, '0002_conversations_and_messages');
  t.same(planMigrations(schema('0', true), observed(2)).actions.map((a) => a.target), ['0002_conversations_and_messages', '0001_users_and_sessions'], 'target 0 rolls back everything');
});

t.test('an applied migration whose file changed is an error naming it, and nothing is planned', async (t) => {
  const changed = files().map((f) => (f.name === '0002_conversations_and_messages' ? { ...f, sha256: sha(f.name, 'edited') } : f));
  const plan = planMigrations(schema(), observed(3, { files: changed, applied: observed(3).applied }));
  t.same(plan.actions, []);
  t.equal(plan.errors.length, 1);
  t.match(plan.errors[0]!.message, /applied migration 0002_conversations_and_messages \(0002_conversations_and_messages\.sql\) changed since it was applied/);
});

t.test('a pending file that changed is not drift: it simply has not run yet', async (t) => {
  const edited = files().map((f) => (f.name === '0005_cache_entries' ? { ...f, sha256: sha(f.name, 'edited') } : f));
  t.same(planMigrations(schema(), observed(3, { files: edited, applied: observed(3).applied })).errors, []);
});

t.test('an applied migration whose file vanished is an error naming it', async (t) => {
  const applied = observed(3).applied;
  const plan = planMigrations(schema(), observed(3, { files: files().filter((f) => f.name !== '0003_memory'), applied }));
  t.same(plan.actions, []);
  t.match(plan.errors.map((e) => e.message).join('\n'), /applied migration 0003_memory has no file in \/srv\/jarvis\/migrations any more \(vanished\)/);
});

t.test('a new file that sorts before an applied one is reported as out of order', async (t) => {
  const withEarly = files([...NAMES.slice(0, 2), '0002a_hotfix', ...NAMES.slice(2)]);
  const applied = observed(4).applied; // 0001..0004 were applied before the hotfix file appeared
  const plan = planMigrations(schema(), observed(4, { files: withEarly, applied }));
  t.same(plan.actions, []);
  t.match(plan.errors[0]!.message, /migration 0002a_hotfix is not applied but sorts before the applied 0003_memory, 0004_metrics \(files out of order\)/);
});

t.test('migrations applied in another order than the files sort are out of order', async (t) => {
  const o = observed(2);
  const applied = [o.applied[1]!, o.applied[0]!];
  t.match(checkHistory({ ...o, applied })[0], /applied in another order/);
});

t.test('a target that is not a migration is an error on schema.target', async (t) => {
  const plan = planMigrations(schema('0009_nope'), observed(1));
  t.same(plan.actions, []);
  t.equal(plan.errors[0]!.path, 'schema.target');
  t.match(plan.errors[0]!.message, /schema\.target "0009_nope" is not a migration .* the latest is 0005_cache_entries/);
  t.equal(resolveTarget('latest', []), 0);
  t.equal(resolveTarget('0', files()), 0);
});

t.test('a database that does not exist yet is an error that says to run init', async (t) => {
  const plan = planMigrations(schema(), observed(0, { databaseExists: false }));
  t.same(plan.actions, []);
  t.match(plan.errors[0]!.message, /database jarvis does not exist: run `jarvis-db init`/);
});

t.test('problems with the folder become plan errors', async (t) => {
  const plan = planMigrations(schema(), observed(0, { problems: ['the migrations directory /x does not exist'] }));
  t.equal(plan.errors[0]!.path, 'schema.migrations');
});

t.test('rolling back a SQL migration without a Down section is an error', async (t) => {
  const f = files().map((x) => (x.name === '0002_conversations_and_messages' ? { ...x, hasDown: false } : x));
  const plan = planMigrations(schema('0', true), observed(2, { files: f, applied: observed(2).applied }));
  t.same(plan.actions, []);
  t.match(plan.errors[0]!.message, /0002_conversations_and_messages cannot be rolled back: .* has no "-- Down Migration" section/);
});

t.test('migrations applied by another tool are a warning finding, not an error', async (t) => {
  const o = observed(2);
  const plan = planMigrations(schema(), { ...o, applied: o.applied.map((a) => ({ ...a, sha256: null })) });
  t.same(plan.errors, []);
  t.equal(plan.actions.length, 3);
  t.equal(plan.findings[0]!.status, 'WARNING');
  t.match(plan.findings[0]!.message, /0001_users_and_sessions, 0002_conversations_and_messages/);
});

t.test('a direction constraint refuses the other direction (migrate up --to below, down --to above)', async (t) => {
  const up = planMigrationSteps(observed(4), { target: '0002_conversations_and_messages', allowDown: true, direction: 'up', targetSource: '--to' });
  t.same(up.actions, []);
  t.match(up.errors[0]!.message, /--to 0002_conversations_and_messages is below the applied version 0004_metrics: that is a down, not an up/);
  const down = planMigrationSteps(observed(1), { target: 'latest', allowDown: true, direction: 'down', targetSource: '--to' });
  t.match(down.errors[0]!.message, /that is an up, not a down/);
  const previous = planMigrationSteps(observed(3), { target: 'previous', allowDown: true, direction: 'down' });
  t.same(previous.actions.map((a) => a.target), ['0003_memory'], '`migrate down` without --to rolls back one');
  const noDown = planMigrationSteps(observed(3), { target: 'previous', allowDown: false, direction: 'down', targetSource: 'the target' });
  t.match(noDown.errors[0]!.message, /needs --allow-down \(or schema\.allowDown: true\)/);
});

t.test('status marks applied, pending, changed, vanished and unverified migrations', async (t) => {
  const o = observed(3);
  const applied = [
    { ...o.applied[0]!, sha256: null },
    { ...o.applied[1]!, sha256: sha('0002_conversations_and_messages', 'old') },
    o.applied[2]!,
    { name: '0004_gone', runOn: '2026-11-04T03:00:00.000Z', sha256: sha('x') },
  ];
  const f = files(NAMES.filter((n) => n !== '0004_metrics'));
  const s = migrationStatus({ ...o, files: f, applied });
  t.same(s.rows.map((r) => [r.name, r.state]), [
    ['0001_users_and_sessions', 'unverified'], ['0002_conversations_and_messages', 'changed'], ['0003_memory', 'applied'],
    ['0005_cache_entries', 'pending'], ['0004_gone', 'vanished'],
  ]);
  t.equal(s.version, '0004_gone');
  const text = formatStatus(s, 'latest', planMigrations(schema(), { ...o, files: f, applied }));
  t.match(text, /CHANGED\s+0002_conversations_and_messages/);
  t.match(text, /error: applied migration 0004_gone has no file/);
  const done = formatStatus(migrationStatus(observed(5)), 'latest', planMigrations(schema(), observed(5)));
  t.match(done, /^database jarvis: at 0005_cache_entries \(5 of 5 migrations applied\); memory\.embedding is real\[\]$/m);
  t.match(done, /^  applied   0003_memory +2026-11-03 03:00:00Z$/m);
  t.match(done, /schema\.target latest: up to date\.$/);
});
