/**
 * The apply loop through the engine API, in process, with injected modules and handlers and
 * a real storage directory (lock, journal): order, first failure stops, not-executed actions,
 * journal contents and redaction, refusals (plan errors, confirmation, stale saved plans),
 * interruption, and the housekeeping that runs first under the lock.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { backupModule } from '../../src/backup/module.js';
import { apply, makePlan, type EngineParts } from '../../src/engine/index.js';
import { readJournal } from '../../src/engine/journal.js';
import { HANDLERS } from '../../src/engine/registry.js';
import type { Action, DomainModule, Handler } from '../../src/engine/types.js';
import { action, desiredFixture, fakeModule } from './fixtures/plan-fixtures.js';

function setup(t: { testdir(): string }, modules: DomainModule<unknown>[], handlers: Partial<Record<string, Handler>> = {}) {
  const storage = join(t.testdir(), 'backups');
  const desired = desiredFixture({ storage: { path: storage } });
  const parts = { modules, handlers: { ...HANDLERS, ...handlers } } as EngineParts;
  return { desired, parts, storage };
}

/** A handler that records the actions it ran, and fails on those named in `failOn`. */
function recorder(ran: string[], failOn: string[] = []): Handler {
  return async (a) => {
    ran.push(a.id);
    if (failOn.includes(a.id)) throw new Error(`${a.id} broke`);
    return { summary: `${a.id} ok`, details: { id: `made-by-${a.id}` } };
  };
}

const three = (): Action[] => [
  action('backup.prune.old', 'prune_backup', { risk: 'destructive' }),
  action('backup.create.pg', 'create_backup'),
  action('backup.verify.pg', 'verify_backup', { requires: ['backup.create.pg'] }),
];

t.test('actions run in plan order, outcomes reach later actions, and the journal records each step', async (t) => {
  const ran: string[] = [];
  const seen: unknown[] = [];
  const verify: Handler = async (a, ctx) => { ran.push(a.id); seen.push(ctx.outcomes.get('backup.create.pg')?.details?.id); return { summary: 'verified' }; };
  const { desired, parts, storage } = setup(t, [fakeModule('backup', { actions: three() })], { create_backup: recorder(ran), prune_backup: recorder(ran), verify_backup: verify });
  const result = await apply({ desired, parts });
  t.equal(result.status, 'succeeded');
  t.same(ran, ['backup.create.pg', 'backup.prune.old', 'backup.verify.pg']);
  t.same(seen, ['made-by-backup.create.pg']);
  t.same(result.results.map((r) => [r.id, r.status, r.summary]), [['backup.create.pg', 'done', 'backup.create.pg ok'], ['backup.prune.old', 'done', 'backup.prune.old ok'], ['backup.verify.pg', 'done', 'verified']]);
  t.ok(result.results.every((r) => typeof r.durationMs === 'number'));
  t.same(await readdir(join(storage, 'journal')), [`${result.runId}.jsonl`]);
  const events = await readJournal(result.journalFile);
  t.same(events.map((e) => [e.event, e.action ?? null]), [
    ['run_started', null], ['plan', null],
    ['action_started', 'backup.create.pg'], ['action_done', 'backup.create.pg'],
    ['action_started', 'backup.prune.old'], ['action_done', 'backup.prune.old'],
    ['action_started', 'backup.verify.pg'], ['action_done', 'backup.verify.pg'],
    ['run_finished', null],
  ]);
  t.ok(events.every((e) => e.runId === result.runId && typeof e.at === 'string'));
  t.match(events.at(-1), { status: 'succeeded', done: 3, failed: 0, not_executed: 0 });
});

t.test('the first failure stops the apply; the rest is reported and journaled as not executed', async (t) => {
  const ran: string[] = [];
  const { desired, parts } = setup(t, [fakeModule('backup', { actions: three() })], { create_backup: recorder(ran), prune_backup: recorder(ran, ['backup.prune.old']), verify_backup: recorder(ran) });
  const result = await apply({ desired, parts });
  t.equal(result.status, 'failed');
  t.same(ran, ['backup.create.pg', 'backup.prune.old'], 'nothing ran after the failure');
  t.same(result.results.map((r) => [r.id, r.status]), [['backup.create.pg', 'done'], ['backup.prune.old', 'failed'], ['backup.verify.pg', 'not_executed']]);
  t.same(result.results[1]!.error, { code: 'INTERNAL', message: 'backup.prune.old broke' });
  const events = await readJournal(result.journalFile);
  t.match(events.find((e) => e.event === 'action_failed'), { action: 'backup.prune.old', error: { message: 'backup.prune.old broke' } });
  t.match(events.find((e) => e.event === 'action_not_executed'), { action: 'backup.verify.pg', reason: 'an earlier action failed' });
  t.match(events.at(-1), { event: 'run_finished', status: 'failed', done: 1, failed: 1, not_executed: 1 });
});

t.test('the journal never holds a password, from a URL or from the environment', async (t) => {
  const leaky: Handler = async () => { throw new Error('cannot reach postgres://jarvis:s3cretpass@db/jarvis with key Very-Secret-Key'); };
  const { desired, parts } = setup(t, [fakeModule('backup', { actions: [action('backup.create.pg', 'create_backup')] })], { create_backup: leaky });
  const result = await apply({ desired, parts, env: { ...process.env, JARVIS_BACKUP_KEY: 'Very-Secret-Key' } });
  const text = JSON.stringify(await readJournal(result.journalFile));
  t.notMatch(text, 's3cretpass');
  t.notMatch(text, 'Very-Secret-Key');
  t.match(result.results[0]!.error!.message, 'postgres://jarvis:***@db/jarvis with key ***');
});

t.test('a plan error holds back only the actions of its module; the others run and the run fails', async (t) => {
  const ran: string[] = [];
  const broken = fakeModule('migrate', { observeError: 'connect ECONNREFUSED 127.0.0.1:5432' });
  const backups = fakeModule('backup', { actions: [action('backup.create.redis', 'create_backup')] });
  const retention = fakeModule('retention', { actions: [action('retention.delete.metrics', 'retention_delete')], errors: [{ module: 'retention', message: 'bad policy', path: 'policies[0]' }] });
  const { desired, parts, storage } = setup(t, [broken, backups, retention], { create_backup: recorder(ran), retention_delete: recorder(ran) });
  const result = await apply({ desired, parts });
  t.same(ran, ['backup.create.redis']);
  t.equal(result.status, 'failed', 'an error makes the run fail even when everything that could run did');
  t.same(result.errors.map((e) => e.module), ['migrate', 'retention']);
  t.same(result.results.map((r) => [r.id, r.status, r.reason]), [
    ['backup.create.redis', 'done', undefined],
    ['retention.delete.metrics', 'not_executed', 'retention: bad policy'],
  ]);
  const [file] = await readdir(join(storage, 'journal'));
  const events = await readJournal(join(storage, 'journal', file!));
  t.match(events.find((e) => e.event === 'plan_errors'), { errors: [{ module: 'migrate', message: 'cannot observe: connect ECONNREFUSED 127.0.0.1:5432' }, { module: 'retention' }] });
  t.match(events.find((e) => e.event === 'action_not_executed'), { action: 'retention.delete.metrics', reason: 'retention: bad policy' });
});

t.test('a service found down holds back the actions that reach it, and those that require them', async (t) => {
  const ran: string[] = [];
  const m = fakeModule('backup', {
    actions: [
      action('backup.create.pg', 'create_backup', { services: ['postgres'] }),
      action('backup.create.redis', 'create_backup', { services: ['redis'] }),
      action('backup.prune.old', 'prune_backup'),
      action('backup.verify.pg', 'verify_backup', { requires: ['backup.create.pg'] }),
    ],
  });
  const { desired, parts } = setup(t, [m], { create_backup: recorder(ran), prune_backup: recorder(ran), verify_backup: recorder(ran) });
  // Port 1 refuses at once: a real PostgreSQL that is down, probed by the engine's observation.
  const down = { ...desired, services: { postgres: { url: 'postgres://jarvis:pg-pass-1234@127.0.0.1:1/jarvis' } } };
  const result = await apply({ desired: down, parts });
  t.same(ran, ['backup.create.redis', 'backup.prune.old']);
  t.equal(result.status, 'failed');
  t.equal(result.errors.length, 1);
  t.match(result.errors[0], { module: 'services', service: 'postgres', message: /^cannot connect to PostgreSQL at postgres:\/\/jarvis:\*\*\*@127\.0\.0\.1:1\/jarvis: .*ECONNREFUSED.*; the action that needs it waits for it, the others go on$/ });
  const held = Object.fromEntries(result.results.map((r) => [r.id, r.reason]));
  t.match(held['backup.create.pg'], /^services: cannot connect to PostgreSQL/);
  t.match(held['backup.verify.pg'], /^it requires backup\.create\.pg, which does not run \(services: cannot connect/);
  t.notMatch(JSON.stringify(result), 'pg-pass-1234');
});

t.test('a saved plan still runs what does not depend on a module that cannot be observed now', async (t) => {
  const ran: string[] = [];
  let down = false;
  const migrate: DomainModule<unknown> = { ...fakeModule('migrate', { actions: [action('migrate.up.002', 'migrate_up')] }), observe: async () => { if (down) throw new Error('connect ECONNREFUSED'); return { applied: ['001'] }; } };
  const backups = fakeModule('backup', { actions: [action('backup.create.redis', 'create_backup')], observed: { backups: ['a'] } });
  const { desired, parts } = setup(t, [migrate, backups], { create_backup: recorder(ran), migrate_up: recorder(ran) });
  const saved = (await makePlan({ desired, parts })).plan;
  down = true;
  const result = await apply({ desired, parts, savedPlan: saved });
  t.same(ran, ['backup.create.redis'], 'not refused as stale: the module that changed is the one that cannot be seen');
  t.same(result.results.map((r) => [r.id, r.status]), [['migrate.up.002', 'not_executed'], ['backup.create.redis', 'done']]);
  t.match(result.results[0]!.reason, /^migrate: cannot observe: connect ECONNREFUSED/);
  t.equal(result.status, 'failed');
});

t.test('with --target, only the errors that concern the targeted actions count', async (t) => {
  const ran: string[] = [];
  const broken = fakeModule('migrate', { observeError: 'connect ECONNREFUSED' });
  const backups = fakeModule('backup', { actions: [action('backup.create.redis', 'create_backup')] });
  const { desired, parts } = setup(t, [broken, backups], { create_backup: recorder(ran) });
  const result = await apply({ desired, parts, target: 'backup' });
  t.same([result.status, ran, result.errors], ['succeeded', ['backup.create.redis'], []]);
  const narrowed = await apply({ desired, parts, target: 'migrate' });
  t.same([narrowed.status, narrowed.errors.map((e) => e.module)], ['failed', ['migrate']]);
  const byId = await apply({ desired, parts, target: 'migrate.up.002' });
  t.same([byId.status, byId.errors.map((e) => e.module)], ['failed', ['migrate']], 'an action of a module that cannot be observed is not a usage error: the error says why');
});

t.test('a refused confirmation runs nothing; nothing to do asks nothing', async (t) => {
  const ran: string[] = [];
  const { desired, parts } = setup(t, [fakeModule('backup', { actions: [action('backup.create.pg', 'create_backup')] })], { create_backup: recorder(ran) });
  await t.rejects(apply({ desired, parts, confirm: async () => false }), { code: 'CONFIRMATION_REQUIRED' });
  t.same(ran, []);
  const idle = setup(t, [fakeModule('backup')]);
  let asked = false;
  const result = await apply({ desired: idle.desired, parts: idle.parts, confirm: async () => (asked = true) });
  t.same([result.status, asked], ['nothing_to_do', false]);
});

t.test('an interruption stops the run between actions', async (t) => {
  const controller = new AbortController();
  const ran: string[] = [];
  const stopAfterFirst: Handler = async (a) => { ran.push(a.id); controller.abort(); return { summary: 'ok' }; };
  const { desired, parts } = setup(t, [fakeModule('backup', { actions: three() })], { create_backup: stopAfterFirst, prune_backup: recorder(ran), verify_backup: recorder(ran) });
  const result = await apply({ desired, parts, signal: controller.signal });
  t.equal(result.status, 'cancelled');
  t.same(ran, ['backup.create.pg']);
  t.same(result.results.map((r) => r.status), ['done', 'not_executed', 'not_executed']);
});

t.test('a saved plan runs as saved while its basis holds, and is refused naming what changed once it does not', async (t) => {
  const ran: string[] = [];
  let observed = { backups: ['20261123T030000Z-aaaa'] };
  const m: DomainModule<unknown> = { ...fakeModule('backup', { actions: [action('backup.create.pg', 'create_backup')] }), observe: async () => observed };
  const { desired, parts } = setup(t, [m], { create_backup: recorder(ran) });
  const saved = (await makePlan({ desired, parts })).plan;
  const result = await apply({ desired, parts, savedPlan: saved });
  t.same([result.status, ran, result.plan.fingerprint], ['succeeded', ['backup.create.pg'], saved.fingerprint]);

  observed = { backups: ['20261123T030000Z-aaaa', '20261124T030000Z-bbbb'] };
  await t.rejects(apply({ desired, parts, savedPlan: saved }), { code: 'STALE_PLAN', details: ['  changed: backup: backups (new: 20261124T030000Z-bbbb)'] });
  await t.rejects(apply({ desired: { ...desired, configHash: 'edited' }, parts, savedPlan: saved }), { code: 'STALE_PLAN', details: [/the config file or one of its policy files changed/, /backups/] });
  t.same(ran, ['backup.create.pg'], 'a stale plan runs nothing');
});

t.test('a saved plan whose actions were edited is refused naming the action, and runs nothing', async (t) => {
  const ran: string[] = [];
  const planned = [
    action('backup.create.pg', 'create_backup', { params: { schedule: 'pg', service: 'postgres' } }),
    action('backup.prune.20261120T030000Z-aaaa', 'prune_backup', { risk: 'destructive', params: { id: '20261120T030000Z-aaaa', schedule: 'pg', service: 'postgres' } }),
  ];
  const { desired, parts } = setup(t, [fakeModule('backup', { actions: planned, observed: { backups: ['20261120T030000Z-aaaa'] } })], { create_backup: recorder(ran), prune_backup: recorder(ran) });
  const saved = (await makePlan({ desired, parts })).plan;
  const edit = (change: (actions: Action[]) => Action[]) => ({ ...saved, actions: change(structuredClone(saved.actions)) });
  const cases: [string, ReturnType<typeof edit>, RegExp][] = [
    ['params changed', edit((a) => { (a[1]!.params as { id: string }).id = '20261121T030000Z-bbbb'; return a; }), /actions\[1\] \(backup\.prune\.20261120T030000Z-aaaa\) is not what was planned/],
    ['type changed', edit((a) => { a[0]!.type = 'verify_backup'; return a; }), /actions\[0\] \(backup\.create\.pg\) is not what was planned/],
    ['action added', edit((a) => [...a, { ...a[1]!, id: 'backup.prune.20261119T030000Z-cccc' }]), /actions\[2\] \(backup\.prune\.20261119T030000Z-cccc\) is not what was planned/],
    ['action removed', edit((a) => a.slice(1)), /the plan file was edited: its actions, basis or target are not what was planned/],
    ['target added', { ...saved, target: 'backup' }, /the plan file was edited/],
  ];
  for (const [what, plan, message] of cases) {
    await t.rejects(apply({ desired, parts, savedPlan: plan }), { code: 'PLAN_INVALID', message }, what);
  }
  t.same(ran, [], 'no handler ran');
  const result = await apply({ desired, parts, savedPlan: saved });
  t.same([result.status, ran], ['succeeded', ['backup.create.pg', 'backup.prune.20261120T030000Z-aaaa']], 'the plan as saved still runs');
});

t.test('a plan narrowed with --target has the fingerprint of its own actions, and applies as saved', async (t) => {
  const ran: string[] = [];
  const { desired, parts } = setup(t, [fakeModule('backup', { actions: three() })], { create_backup: recorder(ran), prune_backup: recorder(ran), verify_backup: recorder(ran) });
  const whole = (await makePlan({ desired, parts })).plan;
  const narrowed = (await makePlan({ desired, parts, target: 'backup.verify' })).plan;
  t.same(narrowed.actions.map((a) => a.id), ['backup.create.pg', 'backup.verify.pg']);
  t.not(narrowed.fingerprint, whole.fingerprint);
  t.equal((await makePlan({ desired, parts, target: 'backup.verify' })).plan.fingerprint, narrowed.fingerprint, 'the same narrowing gives the same fingerprint');
  const result = await apply({ desired, parts, savedPlan: JSON.parse(JSON.stringify(narrowed)) });
  t.same([result.status, ran], ['succeeded', ['backup.create.pg', 'backup.verify.pg']]);
});

t.test('an action type without a handler fails clearly', async (t) => {
  const stray = action('marker.ensure.x', 'create_backup', { type: 'marker_ensure' as Action['type'] });
  const { desired, parts } = setup(t, [fakeModule('marker', { actions: [stray] })]);
  const result = await apply({ desired, parts });
  t.match(result.results[0]!.error, { code: 'PLAN_INVALID', message: 'no handler for action type marker_ensure' });
});

t.test('the debris of a killed backup is removed at the start of an apply, before observation', async (t) => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const storage = join(t.testdir(), 'backups');
  const debris = join(storage, 'postgres', 's0', `.tmp-20261124T030000Z-dead-${dead}`);
  await mkdir(debris, { recursive: true });
  await writeFile(join(debris, 'toc.dat'), 'half a dump');
  const desired = desiredFixture({ storage: { path: storage } }, [{ name: 's0' }]);
  let debrisSeenByHandler: string[] | undefined;
  const create: Handler = async () => { debrisSeenByHandler = await readdir(join(storage, 'postgres', 's0')); return { summary: 'ok' }; };
  const parts = { modules: [backupModule as DomainModule<unknown>], handlers: { ...HANDLERS, create_backup: create } };
  const result = await apply({ desired, parts });
  t.same(result.prepared, [`removed ${debris}, left by a killed backup`]);
  t.same(debrisSeenByHandler, []);
  t.match((await readJournal(result.journalFile)).find((e) => e.event === 'prepared'), { lines: [/left by a killed backup/] });
});

t.test('journal.keep: an apply deletes the journals of runs older than it, keeps newer ones and files that are not journals', async (t) => {
  const { desired, parts, storage } = setup(t, [fakeModule('backup', { actions: [] })]);
  const dir = join(storage, 'journal');
  await mkdir(dir, { recursive: true });
  const day = 86_400_000;
  const idAt = (ms: number) => `${new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-abcd.jsonl`;
  const old = [idAt(Date.now() - 91 * day), idAt(Date.now() - 400 * day)];
  const recent = idAt(Date.now() - 89 * day);
  for (const name of [...old, recent, 'notes.txt', 'README.jsonl']) await writeFile(join(dir, name), '{}\n');
  const result = await apply({ desired: { ...desired, journal: { keepSeconds: 90 * 86_400 } }, parts });
  const left = await readdir(dir);
  t.same(left.filter((n) => old.includes(n)), [], 'the journals older than 90 days are gone');
  t.ok(left.includes(recent) && left.includes('notes.txt') && left.includes('README.jsonl'), 'a newer journal and foreign files stay');
  t.ok(left.includes(`${result.runId}.jsonl`), 'the run\'s own journal stays');
  const finished = (await readJournal(result.journalFile)).find((e) => e.event === 'run_finished');
  t.equal(finished?.journalsPruned, 2, 'the run says how many it pruned');
});
