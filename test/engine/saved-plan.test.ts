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
