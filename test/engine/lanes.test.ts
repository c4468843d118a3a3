/**
 * The apply loop's options for commands that run many independent actions (`backup create
 * --service all`): `lanes` runs the actions of different lanes at the same time, each lane in
 * plan order; `keepGoing` lets a failure hold back only what requires the failed action.
 */
import t from 'tap';
import { join } from 'node:path';
import { apply, type EngineParts } from '../../src/engine/index.js';
import { readJournal } from '../../src/engine/journal.js';
import { HANDLERS } from '../../src/engine/registry.js';
import type { Action, Handler } from '../../src/engine/types.js';
import { action, desiredFixture, fakeModule } from './fixtures/plan-fixtures.js';

function setup(t: { testdir(): string }, actions: Action[], handler: Handler) {
  const desired = desiredFixture({ storage: { path: join(t.testdir(), 'backups') } });
  const parts = { modules: [fakeModule('backup', { actions })], handlers: { ...HANDLERS, create_backup: handler, verify_backup: handler } } as EngineParts;
  return { desired, parts };
}

const laneOf = (a: Action) => a.target.split('-')[0]!;

/** A handler that holds each action until `release(id)` is called, logging starts and ends. */
function gated(log: string[], failOn: string[] = []) {
  const gates = new Map<string, () => void>();
  const started = new Map<string, () => void>();
  const startedP = new Map<string, Promise<void>>();
  const handler: Handler = async (a) => {
    log.push(`start ${a.id}`);
    started.get(a.id)?.();
    await new Promise<void>((resolve) => gates.set(a.id, resolve));
    log.push(`end ${a.id}`);
    if (failOn.includes(a.id)) throw new Error(`${a.id} broke`);
    return { summary: `${a.id} ok` };
  };
  const whenStarted = (id: string) => {
    if (!startedP.has(id)) startedP.set(id, new Promise<void>((resolve) => started.set(id, resolve)));
    return startedP.get(id)!;
  };
  const release = (id: string) => gates.get(id)!();
  return { handler, whenStarted, release };
}

t.test('actions of different lanes run at the same time, each lane in plan order', async (t) => {
  const log: string[] = [];
  const actions = [action('backup.create.pg-a', 'create_backup'), action('backup.create.pg-b', 'create_backup'), action('backup.create.redis-a', 'create_backup')];
  const g = gated(log);
  const { desired, parts } = setup(t, actions, g.handler);
  const running = apply({ desired, parts, lanes: laneOf });
  await Promise.all([g.whenStarted('backup.create.pg-a'), g.whenStarted('backup.create.redis-a')]);
  t.notOk(log.includes('start backup.create.pg-b'), 'the second of a lane waits for the first');
  g.release('backup.create.redis-a');
  g.release('backup.create.pg-a');
  await g.whenStarted('backup.create.pg-b');
  g.release('backup.create.pg-b');
  const result = await running;
  t.equal(result.status, 'succeeded');
  t.same(result.results.map((r) => r.id), actions.map((a) => a.id), 'results in plan order');
  const events = await readJournal(result.journalFile);
  t.same(events.filter((e) => e.event === 'action_done').length, 3, 'every action journaled');
  t.ok(events.every((e, i) => i === 0 || e.at >= events[i - 1]!.at), 'journal lines in the order written');
});

t.test('without keepGoing, a failure stops what has not started in every lane', async (t) => {
  const log: string[] = [];
  const actions = [action('backup.create.pg-a', 'create_backup'), action('backup.create.redis-a', 'create_backup'), action('backup.create.redis-b', 'create_backup')];
  const g = gated(log, ['backup.create.pg-a']);
  const { desired, parts } = setup(t, actions, g.handler);
  const running = apply({ desired, parts, lanes: laneOf });
  await Promise.all([g.whenStarted('backup.create.pg-a'), g.whenStarted('backup.create.redis-a')]);
  g.release('backup.create.pg-a');
  await new Promise((r) => setTimeout(r, 50));
  g.release('backup.create.redis-a');
  const result = await running;
  t.same(result.results.map((r) => [r.id, r.status]), [['backup.create.pg-a', 'failed'], ['backup.create.redis-a', 'done'], ['backup.create.redis-b', 'not_executed']],
    'what had started finishes; what had not does not start');
  t.match(result.results[2]!.reason, /an earlier action failed \(backup\.create\.pg-a\)/);
});

t.test('with keepGoing, a failure holds back only the actions that require it', async (t) => {
  const ran: string[] = [];
  const handler: Handler = async (a) => {
    ran.push(a.id);
    if (a.id === 'backup.create.pg-a') throw new Error('pg down');
    return { summary: 'ok' };
  };
  const actions = [
    action('backup.create.pg-a', 'create_backup'),
    action('backup.create.pg-b', 'create_backup'),
    action('backup.verify.redis-a', 'verify_backup', { requires: ['backup.create.pg-a'] }),
    action('backup.create.redis-c', 'create_backup'),
  ];
  const { desired, parts } = setup(t, actions, handler);
  const result = await apply({ desired, parts, lanes: laneOf, keepGoing: true });
  t.equal(result.status, 'failed');
  // The planner puts verifications last (docs/architecture.md §2).
  t.same(result.results.map((r) => [r.id, r.status]), [
    ['backup.create.pg-a', 'failed'], ['backup.create.pg-b', 'done'], ['backup.create.redis-c', 'done'], ['backup.verify.redis-a', 'not_executed'],
  ]);
  t.equal(result.results[3]!.reason, 'it requires backup.create.pg-a, which failed');
  t.notOk(ran.includes('backup.verify.redis-a'));
});
