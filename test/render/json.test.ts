/** The JSON renderer: the plan with formatVersion, readable back as a saved plan. */
import t from 'tap';
import { ACTION_TYPES } from '../../src/engine/types.js';
import { planFileProblem } from '../../src/engine/saved-plan.js';
import { renderPlanJson } from '../../src/render/json.js';
import { fixedPlan } from './fixtures/plans.js';

t.test('the JSON carries formatVersion, every action and a derived summary', async (t) => {
  const json = JSON.parse(renderPlanJson(fixedPlan)) as Record<string, unknown>;
  t.equal(json.formatVersion, 1);
  t.same(json.actions, fixedPlan.actions);
  t.same(json.summary, { create: 1, change: 1, destroy: 2, destructive: 2, findings: 1, errors: 0 });
  t.equal(planFileProblem(json, new Set(ACTION_TYPES)), null, 'it is a valid plan file');
});

t.test('with --base the impact and diff sit beside the plan', async (t) => {
  const json = JSON.parse(renderPlanJson(fixedPlan, { base: { label: 'main', impact: [], diff: '' } })) as Record<string, unknown>;
  t.same(json.base, { label: 'main', impact: [], diff: '' });
});
