/**
 * Partition-aware retention decisions on fixtures, without a server: bounds as the server writes
 * them, which way a policy's rows go (whole partitions, batches and why), the actions and their
 * words, declared partitions, and the SQL of hostile names (always quoted).
 */
import t from 'tap';
import { boundTime, parseMarker, parseRangeBound, MARKER_PREFIX, type PartitionInfo, type Partitioning } from '../../src/retention/partition-catalog.js';
import { batchNote, dropPartitionsAction, partitionWords, routeOf, whollyOlder } from '../../src/retention/partition-plan.js';
import { coverage, intervalStart, partitionName, planDeclared } from '../../src/retention/partition-declare.js';
import { copyRowsSql, createPartitionSql, detachSql, dropSql, keyBoundSql, markSql } from '../../src/retention/partition-sql.js';
import { paramsProblem } from '../../src/engine/action-params.js';
import { col, METRICS, policy } from './fixture.js';

const day = (d: string) => `${d} 00:00:00+00`;
function part(name: string, from: string, to: string, rows = 100): PartitionInfo {
  const bound = `FOR VALUES FROM ('${day(from)}') TO ('${day(to)}')`;
  return { schema: 'public', name, bound, isDefault: false, range: parseRangeBound(bound), estimatedRows: rows, detachPending: false };
}
const DEFAULT: PartitionInfo = { schema: 'public', name: 'metrics_default', bound: 'DEFAULT', isDefault: true, range: null, estimatedRows: 0, detachPending: false };
function byDay(partitions: PartitionInfo[], o: Partial<Partitioning> = {}): Partitioning {
  return { strategy: 'range', columns: ['recorded_at'], partitions, defaultPartition: partitions.find((p) => p.isDefault)?.name ?? null, partman: null, ...o };
}
const PARTS = [part('metrics_p20261001', '2026-10-01', '2026-10-02'), part('metrics_p20261002', '2026-10-02', '2026-10-03'), part('metrics_p20261003', '2026-10-03', '2026-10-04')];
const CUTOFF = Date.parse('2026-10-02T12:00:00Z');
const metricsArchive = policy({ name: 'metrics-archive', table: 'metrics', action: 'archive', age: { column: 'recorded_at', olderThan: '30d' } });

t.test('bounds are read as the server writes them: quoted literals with offsets, open ends, dates', async (t) => {
  t.same(parseRangeBound(`FOR VALUES FROM ('2026-10-01 00:00:00+00') TO ('2026-10-02 00:00:00+00')`), { from: '2026-10-01 00:00:00+00', to: '2026-10-02 00:00:00+00' });
  t.same(parseRangeBound(`FOR VALUES FROM (MINVALUE) TO ('it''s')`), { from: 'MINVALUE', to: "it's" });
  t.equal(parseRangeBound(`FOR VALUES FROM ('a', 1) TO ('b', 2)`), null, 'a two-column range is not one of ours');
  t.equal(parseRangeBound('DEFAULT'), null);
  t.equal(parseRangeBound(`FOR VALUES IN ('x')`), null);
  t.equal(boundTime('2026-10-01 00:00:00+00'), Date.parse('2026-10-01T00:00:00Z'));
  t.equal(boundTime('2026-10-01 05:30:00+05:30'), Date.parse('2026-10-01T00:00:00Z'));
  t.equal(boundTime('2026-10-01 00:00:00.250'), Date.parse('2026-10-01T00:00:00.250Z'), 'a timestamp without zone reads as UTC, as the cut-off is cast');
  t.equal(boundTime('2026-10-01'), Date.parse('2026-10-01T00:00:00Z'));
  t.equal(boundTime('MINVALUE'), -Infinity);
  t.equal(boundTime('MAXVALUE'), Infinity);
  t.equal(boundTime('device-7'), null);
});

t.test('partitions wholly older than the cut-off are dropped whole; the straddling one and the default go through batches', async (t) => {
  const route = routeOf(metricsArchive, METRICS, byDay([...PARTS, DEFAULT]), CUTOFF, 150000);
  if (route.mode !== 'partitions') throw new Error(route.mode);
  t.same(route.drop.map((p) => p.name), ['metrics_p20261001']);
  t.same(route.rest.map((p) => p.name), ['metrics_p20261002', 'metrics_default'], 'the partition starting after the cut-off holds no old row');
  t.equal(route.concurrently, false, 'a default partition rules out DETACH CONCURRENTLY');
  t.match(route.why, /default partition \(metrics_default\)/);
  t.equal(batchNote(route), 'in metrics_p20261002 (straddles the cut-off), metrics_default (the default partition)');
  const plain = routeOf(metricsArchive, METRICS, byDay(PARTS), CUTOFF, 150000);
  t.equal(plain.mode === 'partitions' && plain.concurrently, true, 'PostgreSQL 14+ without a default partition detaches concurrently');
  const old = routeOf(metricsArchive, METRICS, byDay(PARTS), CUTOFF, 130000);
  t.equal(old.mode === 'partitions' && old.concurrently, false, 'not before PostgreSQL 14');
  t.ok(whollyOlder(part('p', '2026-10-01', '2026-10-02'), Date.parse('2026-10-02T00:00:00Z')), 'an upper bound at the cut-off is wholly older (bounds are exclusive)');
});

t.test('a table partitioned another way, or referenced, or with children, goes through batches and says why; anonymize keeps its rows', async (t) => {
  const list = routeOf(metricsArchive, METRICS, byDay(PARTS, { strategy: 'list', columns: ['name'] }), CUTOFF, 150000);
  t.same(list, { mode: 'batches', why: 'public.metrics is list-partitioned on (name), not by range on recorded_at: its rows go through batches' });
  const other = routeOf(metricsArchive, METRICS, byDay(PARTS, { columns: ['id'] }), CUTOFF, 150000);
  t.match(other.mode === 'batches' && other.why, /range-partitioned on \(id\), not by range on recorded_at/);
  const referenced = { ...METRICS, references: [{ constraint: 'x', schema: 'public', table: 'alerts', columns: ['metric_id'], refColumns: ['id'], onDelete: 'no action' as const }] };
  t.match(routeOf(metricsArchive, referenced, byDay(PARTS), CUTOFF, 150000), { mode: 'batches', why: /public\.alerts references its rows/ });
  t.match(routeOf({ ...metricsArchive, children: [{ table: 'x', column: 'y' }] }, METRICS, byDay(PARTS), CUTOFF, 150000), { mode: 'batches', why: /child rows/ });
  t.same(routeOf({ ...metricsArchive, action: 'anonymize' }, METRICS, byDay(PARTS), CUTOFF, 150000), { mode: 'plain' });
  t.same(routeOf(metricsArchive, METRICS, null, CUTOFF, 150000), { mode: 'plain' });
});

t.test('one drop action per policy names its partitions, says what preview shows per partition, carries valid params, and is destructive', async (t) => {
  const input = { policy: metricsArchive, table: 'public.metrics', cutoff: '2026-10-02T12:00:00.000Z', concurrently: true };
  const a = dropPartitionsAction(input, [PARTS[0]!, PARTS[1]!], { 'public.metrics_p20261001': { n: 86_400, exact: true }, 'public.metrics_p20261002': { n: 100, exact: false } }, [])!;
  t.equal(a.id, 'retention.drop_partitions.metrics-archive');
  t.equal(a.target, 'public.metrics');
  t.match(a.reason, /^drop 2 partitions wholly older than 30d \(recorded_at < 2026-10-02T12:00:00\.000Z\): metrics_p20261001 … metrics_p20261002, ~86,500 rows, archived first$/);
  t.equal(a.risk, 'destructive');
  t.same(a.estimate, { rows: 86_500 });
  t.same(a.params.partitions.map((p) => partitionWords(p, a.params.table)), ['drop partition metrics_p20261001: 86,400 rows, archived first', 'drop partition metrics_p20261002: ~100 rows, archived first']);
  t.equal(paramsProblem(a.type, a.params as unknown as Record<string, unknown>), null, 'the params pass the saved-plan rules');
  const edited = { ...a.params, partitions: [{ ...a.params.partitions[0]!, archiveFirst: 'yes' }] };
  t.equal(paramsProblem(a.type, edited as unknown as Record<string, unknown>), 'params.partitions [0].archiveFirst must be true or false', 'an edited partition is refused, naming it');
  t.equal(paramsProblem(a.type, { ...a.params, partitions: [] } as unknown as Record<string, unknown>), 'params.partitions must be a non-empty list');
  const d = dropPartitionsAction({ ...input, policy: { ...metricsArchive, action: 'delete' } }, [PARTS[0]!], {}, [])!;
  t.match(d.reason, /^drop 1 partition wholly older than 30d .*: metrics_p20261001, rows not counted, not archived \(policy delete\)$/);
  t.equal(d.params.partitions[0]!.archiveFirst, false);
  t.equal(dropPartitionsAction(input, [], {}, []), null, 'nothing to drop: no action');
});

t.test('a table an interrupted run detached is planned to be finished in the policy\'s action, and the plan says so', async (t) => {
  const marker = parseMarker(MARKER_PREFIX + JSON.stringify({ policy: 'metrics-archive', parentSchema: 'public', parentName: 'metrics', column: 'recorded_at', range: { from: 'a', to: 'b' }, archiveFirst: true }));
  t.equal(marker?.parent, 'public.metrics');
  t.equal(parseMarker('a comment of someone else'), null);
  t.equal(parseMarker(MARKER_PREFIX + '{broken'), null);
  const input = { policy: metricsArchive, table: 'public.metrics', cutoff: '2026-10-02T12:00:00.000Z', concurrently: false };
  const leftover = { schema: 'public', name: 'metrics_p20261001', marker: marker!, estimatedRows: 10 };
  const a = dropPartitionsAction(input, [PARTS[1]!], {}, [leftover])!;
  t.match(a.reason, /; partition metrics_p20261001 of public\.metrics was detached by an interrupted run and not dropped: ~10 rows, archived \(unless its archive committed\), then dropped$/);
  t.same(a.params.partitions.map((p) => [p.name, p.detached]), [['metrics_p20261001', true], ['metrics_p20261002', false]], 'the leftover first, then the fresh partitions');
  t.equal(paramsProblem(a.type, a.params as unknown as Record<string, unknown>), null);
  const still = dropPartitionsAction(input, [PARTS[0]!], {}, [leftover])!;
  t.equal(still.params.partitions.length, 1, 'a detached table still listed among the partitions is planned once');
  t.equal(dropPartitionsAction({ ...input, policy: { ...metricsArchive, name: 'another-policy' } }, [], {}, [leftover]), null, 'only the policy that detached it finishes it');
});

t.test('declared partitions: the ones still to come are planned, named after their first day; partman tables are left alone', async (t) => {
  const now = new Date('2026-12-09T15:00:00Z');
  t.equal(intervalStart('1w', now).toISOString(), '2026-12-07T00:00:00.000Z', 'a week starts on Monday');
  t.equal(intervalStart('1mo', now).toISOString(), '2026-12-01T00:00:00.000Z');
  t.equal(partitionName('metrics', new Date('2026-12-09T00:00:00Z')), 'metrics_p20261209');
  t.ok(Buffer.byteLength(partitionName('é'.repeat(40), new Date('2026-12-09T00:00:00Z'))) <= 63, 'a long name is cut to fit 63 bytes');
  const decl = [{ table: 'metrics', column: 'recorded_at', interval: '1d' as const, premake: 2, source: { file: 'jarvis-db.yaml', path: 'partitions[0]' } }];
  const observed = [{ table: 'metrics', resolved: { schema: 'public', name: 'metrics' }, partitioning: byDay([part('metrics_p20261209', '2026-12-09', '2026-12-10'), DEFAULT]), defaultHasRows: true }];
  const plan = planDeclared(decl, observed, now);
  t.same(plan.actions.map((a) => a.target), ['public.metrics_p20261210', 'public.metrics_p20261211']);
  t.match(plan.actions[0]!.reason, /^create partition metrics_p20261210: recorded_at from 2026-12-10T00:00:00.000Z to 2026-12-11T00:00:00.000Z, 1 of premake 2 ahead/);
  t.equal(paramsProblem('create_partition', plan.actions[0]!.params as unknown as Record<string, unknown>), null);
  t.match(plan.findings, [{ status: 'WARNING', message: /default partition metrics_default holds rows/ }]);
  const partman = planDeclared(decl, [{ ...observed[0]!, partitioning: byDay([], { partman: 'partman' }) }], now);
  t.same(partman.actions, []);
  t.match(partman.findings, [{ message: /pg_partman manages its partitions \(partman\.part_config\); jarvis-db leaves them to it/ }]);
  const list = planDeclared(decl, [{ ...observed[0]!, partitioning: byDay([], { strategy: 'list', columns: ['name'] }) }], now);
  t.match(list.errors, [{ message: /list-partitioned on \(name\), not by range on recorded_at/, path: 'jarvis-db.yaml partitions[0]' }]);
  t.match(planDeclared(decl, [{ ...observed[0]!, resolved: null }], now).errors, [{ message: /does not exist/ }]);
});

t.test('declared partitions of a table the pending migrations create or convert wait for them: a finding, no error', async (t) => {
  const now = new Date('2026-12-09T15:00:00Z');
  const decl = [{ table: 'metrics', column: 'recorded_at', interval: '1d' as const, premake: 2, source: { file: 'jarvis-db.yaml', path: 'partitions[0]' } }];
  const plain = [{ table: 'metrics', resolved: { schema: 'public', name: 'metrics' }, partitioning: null, defaultHasRows: null }];
  const waiting = planDeclared(decl, plain, now, { migrationsPending: true });
  t.same([waiting.actions, waiting.errors], [[], []]);
  t.match(waiting.findings, [{ status: 'UNKNOWN', message: /^partitions: public\.metrics is not partitioned yet; waits for the pending migrations/ }]);
  const missing = planDeclared(decl, [{ ...plain[0]!, resolved: null }], now, { migrationsPending: true });
  t.match(missing.findings, [{ message: /table metrics does not exist yet; waits for the pending migrations/ }]);
  t.match(planDeclared(decl, plain, now).errors, [{ message: /public\.metrics is not partitioned, not by range on recorded_at; convert it/ }], 'without pending migrations it is an error');
});

t.test('coverage: a range is taken when existing partitions cover all of it', async (t) => {
  const r = { from: Date.parse('2026-10-01T00:00:00Z'), to: Date.parse('2026-10-03T00:00:00Z') };
  t.same(coverage(r, PARTS.slice(0, 2)), { covered: true, by: ['metrics_p20261001', 'metrics_p20261002'] });
  t.equal(coverage(r, [PARTS[1]!]).covered, false);
  t.equal(coverage(r, [DEFAULT]).covered, false, 'the default partition is no coverage');
});

t.test('hostile partition and table names reach SQL quoted only', async (t) => {
  const parent = { schema: 'we"ird schema', name: 'metrics; DROP TABLE users; --' };
  const p = { schema: 'we"ird schema', name: "p.2026'10 é" };
  t.equal(detachSql(parent, p, 'concurrently').text, `ALTER TABLE "we""ird schema"."metrics; DROP TABLE users; --" DETACH PARTITION "we""ird schema"."p.2026'10 é" CONCURRENTLY`);
  t.equal(dropSql(p).text, `DROP TABLE "we""ird schema"."p.2026'10 é"`);
  t.equal(createPartitionSql(parent, 'x"y', "2026-10-01'); DROP TABLE users; --", 'MAXVALUE').text,
    `CREATE TABLE "we""ird schema"."x""y" PARTITION OF "we""ird schema"."metrics; DROP TABLE users; --" FOR VALUES FROM ('2026-10-01''); DROP TABLE users; --') TO (MAXVALUE)`);
  t.match(markSql(p, { policy: "o'k", parentSchema: parent.schema, parentName: parent.name, column: 'c', range: null, archiveFirst: true }).text, /^COMMENT ON TABLE "we""ird schema"\."p\.2026'10 é" IS +E?'jarvis-db retention: \{"policy":"o''k"/);
  t.equal(copyRowsSql(p, [col('a"b', 'text')]).text, `COPY (SELECT array_to_json(ARRAY[t."a""b"::text])::text FROM "we""ird schema"."p.2026'10 é" AS t) TO STDOUT`);
  t.equal(keyBoundSql(p, ['a"b', 'id'], 'max').text, `SELECT t."a""b"::text, t."id"::text FROM "we""ird schema"."p.2026'10 é" AS t ORDER BY t."a""b" DESC, t."id" DESC LIMIT 1`);
});

t.test('plan --base words a change of declared partitions under the subject of their actions', async (t) => {
  const { describePolicyChanges } = await import('../../src/retention/describe.js');
  const { desiredWith } = await import('./fixture.js');
  const decl = { table: 'metrics', column: 'recorded_at', interval: '1d' as const, premake: 2, source: { file: 'jarvis-db.yaml', path: 'partitions[0]' } };
  const base = { ...desiredWith([]), partitions: [decl] };
  t.match(describePolicyChanges(base, { ...base, partitions: [{ ...decl, premake: 7, source: { file: 'x.yaml', path: 'partitions[3]' } }] }), [{ subject: 'partitions', text: /^metrics: premake.*2.*7/ }]);
  t.same(describePolicyChanges(desiredWith([]), base), [{ subject: 'partitions', text: 'metrics: partitions of 1d declared, 2 ahead' }]);
  t.match(describePolicyChanges(base, desiredWith([])), [{ subject: 'partitions', text: /no longer declared/ }]);
});

t.test('retention run --policy leaves the declared partitions out', async (t) => {
  const { onlyPolicy } = await import('../../src/retention/operations.js');
  const { desiredWith } = await import('./fixture.js');
  const d = { ...desiredWith([metricsArchive]), partitions: [{ table: 'metrics', column: 'recorded_at', interval: '1d' as const, premake: 2, source: { file: 'jarvis-db.yaml', path: 'partitions[0]' } }] };
  t.equal(onlyPolicy(d, 'metrics-archive').partitions, undefined);
  t.equal(onlyPolicy(d, undefined).partitions?.length, 1);
});
