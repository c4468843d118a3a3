/**
 * `plan --base` impact in words (pure): two desired states and the plans each makes against
 * the same observed state in, sentences out.
 */
import t from 'tap';
import { backupModule, type BackupObserved } from '../../src/backup/module.js';
import type { BackupSchedule, RetentionPolicy } from '../../src/config/types.js';
import { describeImpact, impactSentence } from '../../src/engine/impact.js';
import { buildPlan } from '../../src/engine/planner.js';
import type { DomainModule, Plan } from '../../src/engine/types.js';
import { action, desiredFixture, fakeModule } from './fixtures/plan-fixtures.js';

const AT = '2026-11-24T10:00:00.000Z';

function daily(n: number): BackupObserved {
  // One backup a day at 03:00 UTC, the newest today.
  const backups = Array.from({ length: n }, (_, i) => {
    const d = new Date(Date.UTC(2026, 10, 24 - i, 3, 0, 0));
    const id = `${d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-000${i % 10}`;
    return { id, service: 'postgres', schedule: 'postgres-nightly', startedAt: d.toISOString(), finishedAt: d.toISOString(), totalBytes: 1000, verified: true, verifiedBy: 'checksum' as const };
  });
  return { backups, debris: [], invalid: [] };
}

function plan(desired: ReturnType<typeof desiredFixture>, modules: DomainModule<unknown>[], observed: Record<string, unknown>): Plan {
  return buildPlan(desired, modules, { at: AT, modules: Object.fromEntries(modules.map((m) => [m.name, { ok: true as const, observed: observed[m.name] ?? {} }])) });
}

t.test('shorter keep rules: the change and the backups it prunes, destructive', async (t) => {
  const modules = [backupModule as DomainModule<unknown>];
  const base = desiredFixture({ configHash: 'a' }, [{ name: 'postgres-nightly', keep: { daily: 14 } }]);
  const head = desiredFixture({ configHash: 'b' }, [{ name: 'postgres-nightly', keep: { daily: 7 } }]);
  const observed = { backup: daily(14) };
  const lines = describeImpact(base, head, plan(base, modules, observed), plan(head, modules, observed));
  t.same(lines.map(impactSentence), ['postgres-nightly: keep daily 14 → 7, 7 backups will be pruned (destructive)']);
});

t.test('a shorter retention: the change and the rows that become eligible, from the plans\' estimates', async (t) => {
  const policy = (olderThan: string): RetentionPolicy => ({
    name: 'messages', table: 'messages', age: { column: 'created_at', olderThan }, action: 'delete', batchSize: 5000, enabled: true, source: { file: '/p.yaml', path: 'policies[0]' },
  });
  const base = desiredFixture({ retention: [policy('2y')] });
  const head = desiredFixture({ retention: [policy('1y')] });
  // A stand-in retention module: rows older than the cut-off, as its observation would count them.
  const rowsOlderThan: Record<string, number> = { '2y': 1000, '1y': 1_241_112 };
  const retention = (d: typeof base) => fakeModule('retention', {
    actions: [action('retention.delete.messages', 'retention_delete', { risk: 'destructive', params: { policy: 'messages' }, estimate: { rows: rowsOlderThan[d.retention[0]!.age.olderThan]! } })],
  });
  const lines = describeImpact(base, head, plan(base, [retention(base)], {}), plan(head, [retention(head)], {}));
  t.same(lines.map(impactSentence), ['messages: retention shortened 2y → 1y, 1,240,112 rows become eligible for deletion (destructive)'], 'more rows to delete is destructive');
});

t.test('a schema target that moves down is destructive', async (t) => {
  const schema = { migrations: '/m', allowDown: true, backupBefore: false };
  const base = desiredFixture({ schema: { ...schema, target: 'latest' } });
  const head = desiredFixture({ schema: { ...schema, target: '002_sessions' } });
  const migrate = fakeModule('migrate', { actions: [action('migrate.down.003_memory', 'migrate_down', { risk: 'destructive' })] });
  const lines = describeImpact(base, head, plan(base, [], {}), plan(head, [migrate], {}));
  t.same(lines.map(impactSentence), ['schema: target latest → 002_sessions moves down, 1 migration to revert (destructive)']);
});

t.test('new and removed schedules, switches that allow destruction, thresholds, and no change at all', async (t) => {
  const base = desiredFixture({ health: { thresholds: { 'redis.memory_used_ratio': { warning: 0.8, critical: 0.9, lowerIsWorse: false } }, intervalSeconds: 60, historySeconds: 3600 } }, [{ name: 'old' }, { name: 'keepme' }]);
  const head = desiredFixture({ health: { thresholds: { 'redis.memory_used_ratio': { warning: 0.7, critical: 0.9, lowerIsWorse: false } }, intervalSeconds: 60, historySeconds: 3600 } }, [{ name: 'keepme', allowPruneLast: true }, { name: 'fresh', service: 'redis', cron: '0 * * * *' }]);
  const lines = describeImpact(base, head, plan(base, [], {}), plan(head, [], {})).map(impactSentence);
  t.same(lines, [
    'keepme: allowPruneLast turned on (the last valid backup may be pruned) (destructive)',
    'fresh: new backup schedule (redis, `0 * * * *` UTC)',
    'health: redis.memory_used_ratio warning 0.8, critical 0.9 → warning 0.7, critical 0.9',
    'old: backup schedule removed (its backups stay, and are no longer pruned)',
  ]);
  t.same(describeImpact(base, base, plan(base, [], {}), plan(base, [], {})), []);
});

t.test('a field of a schedule or a policy that no code names shows in the review, a nested one with its path', async (t) => {
  // Fields the config does not have today: a new one must show without a change of the impact code.
  const policy = (vacuum: boolean) => ({
    name: 'messages', table: 'messages', age: { column: 'created_at', olderThan: '1y' }, action: 'delete', batchSize: 5000, enabled: true, source: { file: '/p.yaml', path: 'policies[0]' }, vacuum,
  }) as RetentionPolicy;
  const base = desiredFixture({ retention: [policy(false)] }, [{ name: 'pg', bandwidth: '10MB', keep: { last: 3 } } as Partial<BackupSchedule>]);
  const head = desiredFixture({ retention: [policy(true)] }, [{ name: 'pg', bandwidth: '20MB', keep: { last: 3, fortnightly: 2 } } as Partial<BackupSchedule>]);
  t.same(describeImpact(base, head, plan(base, [], {}), plan(head, [], {})).map(impactSentence), ['messages: vacuum false → true', 'pg: bandwidth 10MB → 20MB, keep fortnightly unset → 2']);
});

t.test('each module describes its own config entries: plan --base uses the describeChange of the modules it planned with', async (t) => {
  const base = desiredFixture({ configHash: 'a' }, [{ name: 'pg' }]);
  const head = desiredFixture({ configHash: 'b' }, [{ name: 'pg', cron: '0 4 * * *' }]);
  const marker: DomainModule<unknown> = { ...fakeModule('marker'), describeChange: (a, b) => (a.configHash === b.configHash ? [] : [{ subject: 'marker', text: 'config hash moved', destructive: true }]) };
  t.same(describeImpact(base, head, plan(base, [], {}), plan(head, [], {}), [marker]).map(impactSentence), ['marker: config hash moved (destructive)'], 'only the given modules speak');
  t.same(describeImpact(base, head, plan(base, [], {}), plan(head, [], {}), [backupModule as DomainModule<unknown>, marker]).map(impactSentence), [
    'marker: config hash moved (destructive)',
    'pg: cron 0 3 * * * → 0 4 * * *',
  ]);
});
