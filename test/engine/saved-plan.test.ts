/** Saved plans: written atomically, read back with their shape checked. */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ACTION_TYPES } from '../../src/engine/types.js';
import { planFileProblem, readPlanFile, writePlanFile } from '../../src/engine/saved-plan.js';
import { renderPlanJson } from '../../src/render/json.js';
import { fixedPlan } from '../render/fixtures/plans.js';

const KNOWN = new Set<string>(ACTION_TYPES);

t.test('a plan written with writePlanFile reads back equal', async (t) => {
  const file = join(t.testdir(), 'plan.json');
  await writePlanFile(file, renderPlanJson(fixedPlan));
  const { summary: _summary, ...back } = (await readPlanFile(file, KNOWN)) as typeof fixedPlan & { summary: unknown };
  t.same(back, fixedPlan);
});

t.test('URL passwords never reach a plan file', async (t) => {
  const file = join(t.testdir(), 'plan.json');
  const plan = { ...fixedPlan, actions: [{ ...fixedPlan.actions[0]!, reason: 'from postgres://jarvis:hunter22@db:5432/jarvis' }] };
  await writePlanFile(file, renderPlanJson(plan));
  const text = await readFile(file, 'utf8');
  t.notMatch(text, 'hunter22');
  t.match(text, 'postgres://jarvis:***@db:5432/jarvis');
});

t.test('damaged or foreign plan files are refused, saying why', async (t) => {
  const good = JSON.parse(renderPlanJson(fixedPlan)) as Record<string, unknown>;
  const cases: [unknown, RegExp][] = [
    [[], /not a JSON object/],
    [{ ...good, formatVersion: 2 }, /formatVersion is 2; this jarvis-db reads 1/],
    [{ ...good, fingerprint: undefined }, /"fingerprint" is missing/],
    [{ ...good, basis: undefined }, /"basis" is missing/],
    [{ ...good, actions: {} }, /"actions" is not a list/],
    [{ ...good, actions: [{ ...fixedPlan.actions[0], risk: 'maybe' }] }, /actions\[0\]\.risk must be safe or destructive/],
    [{ ...good, actions: [{ ...fixedPlan.actions[0], type: 'drop_database' }] }, /unknown type "drop_database"/],
    [{ ...good, actions: [fixedPlan.actions[0], fixedPlan.actions[0]] }, /two actions have the id backup.create.postgres-nightly/],
  ];
  for (const [value, problem] of cases) t.match(planFileProblem(value, KNOWN), problem);
  const dir = t.testdir();
  await writeFile(join(dir, 'cut.json'), renderPlanJson(fixedPlan).slice(0, 200));
  await t.rejects(readPlanFile(join(dir, 'cut.json'), KNOWN), { code: 'PLAN_INVALID', message: /is not valid JSON/ });
  await t.rejects(readPlanFile(join(dir, 'none.json'), KNOWN), { code: 'USAGE', message: /does not exist/ });
});

t.test('the params of each action type are checked, naming the action and the field', async (t) => {
  const good = JSON.parse(renderPlanJson(fixedPlan)) as { actions: Record<string, unknown>[] } & Record<string, unknown>;
  const base = { id: 'x.y.z', module: 'x', target: 'z', reason: 'r', risk: 'safe', estimate: null };
  const step = { name: '002_messages', file: '002_messages.sql', sha256: 'a'.repeat(64), from: '001_init', to: '002_messages' };
  const run = { policy: 'messages', table: 'public.messages', column: 'created_at', cutoff: '2026-08-26T10:00:00.000Z', batchSize: 1000 };
  const cases: [string, Record<string, unknown>, RegExp | null][] = [
    ['create_backup', { schedule: 'nightly', service: 'postgres' }, null],
    ['create_backup', { schedule: 'nightly', service: 'postgres', preChange: true }, null],
    ['create_backup', { service: 'postgres' }, /params\.schedule is missing/],
    ['create_backup', { schedule: 7, service: 'postgres' }, /params\.schedule must be a non-empty string/],
    ['create_backup', { schedule: 'nightly', service: 'mysql' }, /params\.service must be "postgres" or "redis" or "chroma"/],
    ['create_backup', { schedule: 'nightly', service: 'postgres', dropEverything: true }, /params\.dropEverything is not a param of create_backup/],
    ['prune_backup', { schedule: 'nightly', service: 'postgres' }, /params\.id is missing/],
    ['verify_backup', { schedule: 'nightly', restoreTest: true, id: 'b1' }, null],
    ['verify_backup', { schedule: 'nightly', restoreTest: true, fromAction: 'backup.create.nightly' }, null],
    ['verify_backup', { schedule: 'nightly', restoreTest: true }, /params must have exactly one of id, fromAction/],
    ['verify_backup', { schedule: 'nightly', restoreTest: 'yes', id: 'b1' }, /params\.restoreTest must be true or false/],
    ['migrate_up', { ...step, direction: 'up' }, null],
    ['migrate_down', { ...step, direction: 'down', sha256: null }, null],
    ['migrate_up', { ...step, direction: 'down' }, /params\.direction must be "up"/],
    ['migrate_up', { ...step, direction: 'up', file: undefined }, /params\.file is missing/],
    ['migrate_down', { ...step, direction: 'down', sha256: 'abc' }, /params\.sha256 must be a SHA-256/],
    ['migrate_up', { ...step, direction: 'up', lockTimeoutMs: 0, rehearse: true }, null],
    ['migrate_up', { ...step, direction: 'up', lockTimeoutMs: -1 }, /params\.lockTimeoutMs must be a whole number, 0 or more/],
    ['retention_delete', run, null],
    ['retention_delete', { ...run, overlapsWith: ['conversations-archive'] }, null],
    ['retention_delete', { ...run, overlapsWith: [3] }, /params\.overlapsWith must be a list of non-empty strings/],
    ['retention_archive', { ...run, cutoff: 'last tuesday' }, /params\.cutoff must be an ISO timestamp/],
    ['retention_compress', { ...run, batchSize: 0 }, /params\.batchSize must be a positive integer/],
    ['retention_anonymize', { ...run, policy: undefined }, /params\.policy is missing/],
    ['prune_archive', { archiveId: 'a1', policy: 'messages' }, null],
    ['prune_archive', { policy: 'messages' }, /params\.archiveId is missing/],
    // The command-only types (restore, archive restore, init --seed) are checked the same way.
    ['restore_backup', { id: '20261124T030000Z-1a2b', service: 'postgres', force: false }, null],
    ['restore_backup', { id: '20261124T030000Z-1a2b', service: 'redis', force: true, flush: true }, null],
    ['restore_backup', { id: '20261124T030000Z-1a2b', service: 'chroma', force: false, collection: 'notes', as: 'notes-copy', targetDir: '/srv/chroma' }, null],
    ['restore_backup', { service: 'postgres', force: false }, /params\.id is missing/],
    ['restore_backup', { id: '20261124T030000Z-1a2b', service: 'postgres' }, /params\.force is missing/],
    ['restore_backup', { id: '20261124T030000Z-1a2b', service: 'postgres', force: 'yes' }, /params\.force must be true or false/],
    ['restore_backup', { id: '20261124T030000Z-1a2b', service: 'mysql', force: false }, /params\.service must be "postgres" or "redis" or "chroma"/],
    ['restore_backup', { id: '20261124T030000Z-1a2b', service: 'postgres', force: false, target: '' }, /params\.target must be a non-empty string/],
    ['restore_backup', { id: '20261124T030000Z-1a2b', service: 'postgres', force: false, dropDatabase: true }, /params\.dropDatabase is not a param of restore_backup/],
    ['restore_archive', { archiveId: 'a1' }, null],
    ['restore_archive', { archiveId: 'a1', table: 'public.messages' }, null],
    ['restore_archive', { table: 'public.messages' }, /params\.archiveId is missing/],
    ['seed_dataset', { scale: 0.1 }, null],
    ['seed_dataset', { scale: 0 }, /params\.scale must be a number above 0/],
    ['seed_dataset', { scale: '1' }, /params\.scale must be a number above 0/],
    ['retention_erase', run, null],
    ['retention_erase', { ...run, cutoff: 'soon' }, /params\.cutoff must be an ISO timestamp/],
    ['erase_user', { user: '42' }, null],
    ['erase_user', { user: '' }, /params\.user must be a non-empty string/],
    ['erase_user', { user: '42', tables: ['users'] }, /params\.tables is not a param of erase_user/],
    ['reapply_tombstones', { since: '2026-12-07T14:00:00.000Z', tombstones: ['20261207T140000000Z-1a2b3c4d'], postgres: 'backup.restore.b1' }, null],
    ['reapply_tombstones', { since: 'yesterday', tombstones: [] }, /params\.since must be an ISO timestamp/],
    ['reapply_tombstones', { since: '2026-12-07T14:00:00.000Z' }, /params\.tombstones is missing/],
  ];
  for (const [type, params, problem] of cases) {
    const value = { ...good, actions: [good.actions[0], { ...base, type, params: JSON.parse(JSON.stringify(params)) }] };
    const found = planFileProblem(value, KNOWN);
    if (problem) t.match(found, new RegExp(`^actions\\[1\\] \\(x\\.y\\.z, ${type}\\): ${problem.source}`), `${type} ${JSON.stringify(params)}`);
    else t.equal(found, null, `${type} ${JSON.stringify(params)}`);
  }
});
