import t from 'tap';
import { evaluate, overallStatus, statusOf, STATUS_EXIT_CODE, worstStatus, describeThreshold } from '../../src/health/evaluate.js';
import { planHealth } from '../../src/health/module.js';
import type { HealthObservation, Sample } from '../../src/health/samples.js';
import { desiredFor } from './fixture.js';

const one = (samples: Sample[], thresholds = {}, previous?: HealthObservation['previous']) => evaluate(samples, thresholds, previous);

t.test('a number is "at or above": the level itself already counts', async (t) => {
  const th = { warning: 0.8, critical: 0.95, lowerIsWorse: false };
  t.equal(statusOf(0.79, th), 'HEALTHY');
  t.equal(statusOf(0.8, th), 'WARNING');
  t.equal(statusOf(0.94, th), 'WARNING');
  t.equal(statusOf(0.95, th), 'CRITICAL');
});

t.test('"< x" means lower is worse, strictly below', async (t) => {
  const th = { warning: 0.98, critical: 0.9, lowerIsWorse: true };
  t.equal(statusOf(0.99, th), 'HEALTHY');
  t.equal(statusOf(0.98, th), 'HEALTHY');
  t.equal(statusOf(0.97, th), 'WARNING');
  t.equal(statusOf(0.89, th), 'CRITICAL');
});

t.test('defaults apply without YAML, and a YAML threshold replaces the default whole', async (t) => {
  const sample: Sample = { check: 'postgres.connections_used_ratio', value: 0.85, detail: '85 of 100' };
  const [byDefault] = one([sample]);
  t.match(byDefault, { check: 'postgres.connections_used_ratio', service: 'postgres', status: 'WARNING', value: 0.85, threshold: 'warning >= 80%, critical >= 95%' });
  t.match(byDefault!.message, /85% \(85 of 100\), past warning >= 80%/);
  const [configured] = one([sample], { 'postgres.connections_used_ratio': { critical: 0.5, lowerIsWorse: false } });
  t.equal(configured!.status, 'CRITICAL');
  t.equal(configured!.threshold, 'critical >= 50%', 'the default warning is not mixed in');
});

t.test('a check without a default gets a finding only when the YAML gives it a threshold', async (t) => {
  const sample: Sample = { check: 'redis.keyspace_hit_ratio', value: 0.5, context: { lookups: 5000 } };
  t.same(one([sample]), []);
  const [f] = one([sample], { 'redis.keyspace_hit_ratio': { warning: 0.8, lowerIsWorse: true } });
  t.equal(f!.status, 'WARNING');
});

t.test('an unreachable service is CRITICAL, with the reason in the message', async (t) => {
  const [f] = one([{ check: 'redis.up', value: 0, problem: 'cannot connect to Redis at redis://:***@127.0.0.1:1/0: connect ECONNREFUSED' }]);
  t.equal(f!.status, 'CRITICAL');
  t.match(f!.message, /redis\.up no: cannot connect to Redis .*ECONNREFUSED/);
  t.equal(f!.threshold, 'critical when no');
  t.equal(one([{ check: 'redis.up', value: 1 }])[0]!.status, 'HEALTHY');
});

t.test('a sample that could not be measured is UNKNOWN with its reason', async (t) => {
  const [f] = one([{ check: 'system.disk_free_ratio', value: null, problem: 'cannot stat /nope: EACCES' }]);
  t.match(f, { status: 'UNKNOWN', value: null, message: 'system.disk_free_ratio: cannot stat /nope: EACCES' });
});

t.test('a schedule with no backup at all is CRITICAL, not UNKNOWN', async (t) => {
  const [f] = one([{ check: 'backups.age_interval_ratio', labels: { schedule: 'nightly' }, value: null, problem: 'no valid backup of postgres schedule nightly' }]);
  t.match(f, { check: 'backups.age_interval_ratio.nightly', service: 'backups', status: 'CRITICAL' });
  t.match(f!.message, /\(nightly\): no valid backup/);
});

t.test('labelled samples become separate findings keyed by their labels', async (t) => {
  const fs = one([
    { check: 'backups.age_interval_ratio', labels: { schedule: 'a' }, value: 1.6 },
    { check: 'backups.age_interval_ratio', labels: { schedule: 'b' }, value: 3.2 },
    { check: 'backups.age_interval_ratio', labels: { schedule: 'c' }, value: 0.2 },
  ]);
  t.same(fs.map((f) => [f.check, f.status]), [
    ['backups.age_interval_ratio.a', 'WARNING'], ['backups.age_interval_ratio.b', 'CRITICAL'], ['backups.age_interval_ratio.c', 'HEALTHY'],
  ]);
});

t.test('ratios over too few events are shown but not judged', async (t) => {
  const [cold] = one([{ check: 'postgres.cache_hit_ratio', value: 0.5, context: { blocks: 300 } }]);
  t.equal(cold!.status, 'HEALTHY');
  t.match(cold!.message, /not judged, too few block reads/);
  const [warm] = one([{ check: 'postgres.cache_hit_ratio', value: 0.5, context: { blocks: 50_000 } }]);
  t.equal(warm!.status, 'CRITICAL');
  const [small] = one([{ check: 'postgres.dead_tuple_ratio', labels: { table: 'public.t' }, value: 0.5, context: { dead: 50 } }]);
  t.equal(small!.status, 'HEALTHY', 'the exporter rule needs 10000 dead tuples');
  const [big] = one([{ check: 'postgres.dead_tuple_ratio', labels: { table: 'public.t' }, value: 0.5, context: { dead: 20_000 } }]);
  t.equal(big!.status, 'WARNING');
});

t.test('counters are judged on their increase since the previous check', async (t) => {
  const sample: Sample = { check: 'redis.rejected_connections_total', value: 7 };
  const [first] = one([sample]);
  t.match(first, { status: 'WARNING', value: 7 });
  t.match(first!.message, /since the server started/);
  const [same] = one([sample], {}, { at: '2026-01-01T00:00:00Z', counters: { 'redis.rejected_connections_total': 7 } });
  t.match(same, { status: 'HEALTHY', value: 0 });
  const [more] = one([sample], {}, { at: '2026-01-01T00:00:00Z', counters: { 'redis.rejected_connections_total': 5 } });
  t.match(more, { status: 'WARNING', value: 2 });
  const [restarted] = one([{ check: 'redis.rejected_connections_total', value: 1 }], {}, { at: '2026-01-01T00:00:00Z', counters: { 'redis.rejected_connections_total': 9 } });
  t.match(restarted, { value: 1 }, 'a counter that went down (a restart) counts from zero');
});

t.test('the worst status wins: CRITICAL, WARNING, UNKNOWN, HEALTHY; exit codes follow the monitoring-plugin convention', async (t) => {
  t.equal(worstStatus(['HEALTHY', 'UNKNOWN', 'WARNING']), 'WARNING');
  t.equal(worstStatus(['UNKNOWN', 'CRITICAL']), 'CRITICAL');
  t.equal(worstStatus(['HEALTHY', 'UNKNOWN']), 'UNKNOWN');
  t.equal(overallStatus([]), 'HEALTHY');
  t.same(STATUS_EXIT_CODE, { HEALTHY: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 });
});

t.test('thresholds are described the way the YAML writes them', async (t) => {
  t.equal(describeThreshold({ warning: 0.98, critical: 0.9, lowerIsWorse: true }), 'warning < 0.98, critical < 0.9');
  t.equal(describeThreshold({ warning: 120, lowerIsWorse: false }), 'warning >= 120');
});

t.test('plan puts only findings that are not HEALTHY into the plan, and no actions', async (t) => {
  const observed: HealthObservation = {
    takenAt: '2026-11-24T10:00:00.000Z', durationMs: 10, services: ['postgres', 'redis'], probeMs: {},
    samples: [{ check: 'postgres.up', value: 1 }, { check: 'postgres.connections_used_ratio', value: 0.1 }, { check: 'redis.up', value: 0, problem: 'refused' }],
  };
  const plan = planHealth(desiredFor(), observed);
  t.same(plan.actions, []);
  t.same(plan.findings.map((f) => [f.check, f.status]), [['redis.up', 'CRITICAL']]);
});
