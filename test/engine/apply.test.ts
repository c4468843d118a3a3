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

t.test('a plan with errors is refused before anything runs', async (t) => {
  const ran: string[] = [];
  const m = fakeModule('backup', { actions: [action('backup.create.pg', 'create_backup')], errors: [{ module: 'backup', message: 'bad cron', path: 'backups[0].cron' }] });
  const { desired, parts, storage } = setup(t, [m], { create_backup: recorder(ran) });
  await t.rejects(apply({ desired, parts }), { code: 'PLAN_ERRORS', details: ['  backup: bad cron (backups[0].cron)'] });
  t.same(ran, []);
  const [file] = await readdir(join(storage, 'journal'));
  t.same((await readJournal(join(storage, 'journal', file!))).map((e) => e.event), ['run_started', 'run_refused']);
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
