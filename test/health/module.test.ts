/** The health module through the engine: its findings appear in `plan`, with no actions. */
import t from 'tap';
import { makePlan } from '../../src/engine/index.js';
import { HANDLERS } from '../../src/engine/registry.js';
import { healthModule } from '../../src/health/module.js';
import { renderPlanText } from '../../src/render/text.js';
import { desiredFor } from './fixture.js';

t.test('an unreachable service is a CRITICAL finding in the plan, and a healthy one adds nothing', async (t) => {
  const storage = t.testdir();
  const desired = desiredFor({
    // Port 1 on localhost: nothing listens there.
    services: { postgres: { url: 'postgres://jarvis:pw-not-shown@127.0.0.1:1/jarvis' } },
    storage: { path: storage },
    health: { thresholds: { 'system.load_per_cpu': { warning: 1000, lowerIsWorse: false } }, intervalSeconds: 60, historySeconds: 86400 },
  });
  const { plan } = await makePlan({ desired, parts: { modules: [healthModule], handlers: HANDLERS } });
  t.same(plan.actions, []);
  t.match(plan.findings, [{ check: 'postgres.up', service: 'postgres', status: 'CRITICAL', message: /cannot connect to PostgreSQL at postgres:\/\/jarvis:\*\*\*@127\.0\.0\.1:1\/jarvis/ }]);
  t.ok(plan.findings.every((f) => f.status !== 'HEALTHY'), 'only what is not healthy goes into the plan');
  const text = renderPlanText(plan);
  t.match(text, /! .*postgres\.up/);
  t.notMatch(text, /pw-not-shown/);
});
