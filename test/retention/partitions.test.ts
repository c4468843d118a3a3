/**
 * Partition-aware retention on a sandbox PostgreSQL: whole partitions detached, archived,
 * dropped; the straddling one through batches; a detached-but-not-dropped table finished by the
 * next run; the archives restored through the parent (the partition created again); hostile
 * names; concurrent inserts never held up; declared partitions created ahead of time.
 */
import t from 'tap';
import pg from 'pg';
import { restoreArchiveById } from '../../src/retention/archives.js';
import { previewRetention } from '../../src/retention/operations.js';
import { renderPolicyPreviews } from '../../src/retention/render.js';
import { renderPlanText } from '../../src/render/text.js';
import { scanArchives } from '../../src/retention/store.js';
import type { Desired } from '../../src/config/types.js';
import { dailyTable, desiredWith, freshDatabase, policy, sql } from './fixture.js';
import { accountFor, archivedRows, planAndRun, planNow, rowsAsText } from './helpers.js';

const q = (s: string) => pg.escapeIdentifier(s);


function metricsDesired(url: string, storage: string, action: 'archive' | 'delete', table = 'metrics', extra: Partial<Desired> = {}): Desired {
  return { ...desiredWith([policy({ name: `metrics-${action}`, table, action, age: { column: 'recorded_at', olderThan: '5d' }, batchSize: 300 })], { url, storage }), ...extra };
}

t.test('an archive policy on a daily-partitioned table drops the old partitions whole, batches the straddling one, and the archives restore through the parent', async (t) => {
  const url = await freshDatabase(t, { empty: true });
  await dailyTable(url, 'metrics');
  // A row at the start of the straddling day: older than the cut-off whatever the time of day.
  await sql(url, `INSERT INTO metrics (name, value, recorded_at) VALUES ('first of d5', 1, date_trunc('day', now()) - interval '5 days')`);
  const original = await rowsAsText(url, 'metrics');
  const [{ d0 }] = await sql<{ d0: number }>(url, `SELECT count(*)::int AS d0 FROM metrics_d0`);
  const storage = t.testdir();
  const desired = metricsDesired(url, storage, 'archive');
  const plan = await planNow(desired);
  t.same(plan.errors, []);
  const drops = plan.actions.filter((a) => a.type === 'retention_drop_partitions');
  t.equal(drops.length, 1, 'one action for the policy');
  t.same(drops[0]!.params.partitions.map((p) => p.partition), ['public.metrics_d0', 'public.metrics_d1', 'public.metrics_d2', 'public.metrics_d3', 'public.metrics_d4'], 'the partitions wholly older than 5 days');
  t.match(drops[0]!.reason, /^drop 5 partitions wholly older than 5d \(recorded_at < .*\): metrics_d0 … metrics_d4, \d+ rows, archived first$/);
  t.equal(drops[0]!.params.concurrently, true, 'no default partition: detached concurrently');
  const batch = plan.actions.find((a) => a.type === 'retention_archive');
  t.match(batch?.reason, /in metrics_d5 \(straddles the cut-off\)$/, 'the straddling partition goes through batches');
  const [{ straddling }] = await sql<{ straddling: number }>(url, `SELECT count(*)::int AS straddling FROM metrics_d5 WHERE recorded_at < $1`, [batch!.params.cutoff]);
  t.equal(batch?.estimate?.rows, straddling, 'its count is the straddling partition\'s old rows only');
  t.same(batch?.requires, drops.map((d) => d.id), 'after the drops');

  const preview = await previewRetention(desired, { env: process.env });
  t.same(preview.policies[0]!.partitions?.[0], `drop partition metrics_d0: ${d0} rows, archived first`, 'retention preview shows what happens per partition');
  t.match(renderPolicyPreviews(preview.policies), new RegExp(`Whole partitions .*\\n  metrics-archive: drop partition metrics_d0: ${d0} rows, archived first\\n`));

  const { outcomes } = await planAndRun(desired);
  t.match(outcomes[0]!.summary, /^5 partitions of public\.metrics dropped, \d+ rows archived first \(5 archives, /);
  t.match((outcomes[0]!.details?.lines as string[])[0], new RegExp(`^partition public\\.metrics_d0 detached concurrently, ${d0} rows archived into \\S+ \\(1 chunk`), 'each partition says what became of it');
  const [{ n }] = await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'metrics'::regclass`);
  t.equal(n, 7, 'five partitions are gone');
  const [{ old }] = await sql<{ old: number }>(url, `SELECT count(*)::int AS old FROM metrics WHERE recorded_at < now() - interval '5 days'`);
  t.equal(old, 0, 'no old row is left');
  const archived = await archivedRows(storage);
  t.same(archived.failed, []);
  t.same(accountFor(original, await rowsAsText(url, 'metrics'), archived.rows['public.metrics'] ?? []), [], 'table + archives = the original rows, none twice');

  const archives = (await scanArchives(storage)).archives;
  t.equal(archives.filter((a) => a.header.partition).length, 5, 'one archive per partition, recording it');
  const said: string[] = [];
  for (const a of archives) {
    const r = await restoreArchiveById(desired, a.header.id, { env: process.env });
    if (r.partition) said.push(`${r.partition.how} ${r.partition.partition}`);
  }
  t.same(said, ['created metrics_d0', 'created metrics_d1', 'created metrics_d2', 'created metrics_d3', 'created metrics_d4'], 'each missing partition is created again, and the restore says so');
  t.same(Object.fromEntries(await rowsAsText(url, 'metrics')), Object.fromEntries(original), 'restoring gives back the original table');
});

t.test('with a default partition: a plain detach, the default batched, its archive restored into the default when the partition cannot be created', async (t) => {
  const url = await freshDatabase(t, { empty: true });
  await dailyTable(url, 'metrics', { withDefault: true });
  const storage = t.testdir();
  const desired = metricsDesired(url, storage, 'archive');
  const plan = await planNow(desired);
  const drop = plan.actions.find((a) => a.type === 'retention_drop_partitions');
  t.equal(drop?.params.concurrently, false);
  t.match(drop?.reason, /detached without CONCURRENTLY: public\.metrics has a default partition \(metrics_default\)/);
  const { outcomes } = await planAndRun(desired);
  t.match((outcomes[0]!.details?.lines as string[])[0], /^partition public\.metrics_d0 detached, \d+ rows archived/);
  // A stray row of the first day lands in the default: the partition cannot be created over it.
  await sql(url, `INSERT INTO metrics (name, value, recorded_at) VALUES ('stray', 1, date_trunc('day', now()) - interval '10 days' + interval '1 hour')`);
  const first = (await scanArchives(storage)).archives.find((a) => a.header.partition?.name === 'metrics_d0')!;
  const r = await restoreArchiveById(desired, first.header.id, { env: process.env });
  t.same(r.partition, { partition: 'metrics_default', how: 'default' }, 'the default partition takes the rows, and the restore says so');
  t.ok((r.inserted['public.metrics'] ?? 0) > 0, 'its rows are back');
});

for (const action of ['delete', 'archive'] as const) t.test(`a ${action} policy drops whole partitions while inserts go on, none waiting over 500 ms`, async (t) => {
  const url = await freshDatabase(t, { empty: true });
  await dailyTable(url, 'metrics', { perDay: 2000 });
  const storage = t.testdir();
  const desired = metricsDesired(url, storage, action);
  const writer = new pg.Client({ connectionString: url });
  await writer.connect();
  let stop = false;
  let longest = 0;
  let inserts = 0;
  const loop = (async () => {
    while (!stop) {
      const began = performance.now();
      await writer.query(`INSERT INTO metrics (name, value, recorded_at) VALUES ('live', 1, now())`);
      longest = Math.max(longest, performance.now() - began);
      inserts++;
    }
  })();
  try {
    const { plan, outcomes } = await planAndRun(desired);
    t.equal(plan.actions.find((a) => a.type === 'retention_drop_partitions')?.params.partitions.length, 5);
    const lines = outcomes[0]!.details?.lines as string[];
    t.equal(lines.length, 5, 'each partition says what became of it');
    if (action === 'delete') t.ok(lines.every((l) => /^partition \S+ dropped$/.test(l)), 'nothing archived: dropped while attached');
    else t.ok(lines.every((l) => /rows archived into/.test(l)), 'each partition archived');
  } finally {
    stop = true;
    await loop;
    await writer.end();
  }
  t.ok(inserts > 10, `inserts kept running (${inserts})`);
  t.ok(longest < 500, `the longest insert took ${longest.toFixed(1)} ms`);
  t.equal((await scanArchives(storage)).archives.length > 0, action === 'archive', action === 'delete' ? 'no archive' : 'archives written');
});

t.test('a partition left detached by an interrupted run is found by the next plan, which finishes it; hostile names stay quoted', async (t) => {
  const url = await freshDatabase(t, { empty: true });
  const table = 'mé"trics. x';
  const schema = "sch'ema";
  await dailyTable(url, table, { schema, partition: (k) => `p."${k + 10}' é` });
  const full = `${q(schema)}.${q(table)}`;
  const rows = async () => (await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM ${full}`))[0]!.n;
  const before = await rows();
  const storage = t.testdir();
  const desired = metricsDesired(url, storage, 'archive', `${schema}.${table}`);
  const plan = await planNow(desired);
  t.same(plan.errors, []);
  const first = plan.actions.find((a) => a.type === 'retention_drop_partitions')!.params.partitions[0]!;
  t.equal(first.partition, `${schema}.p."0' é`);
  // What a kill between detach and drop leaves: the marker, then the detach.
  const { markSql, detachSql } = await import('../../src/retention/partition-sql.js');
  const p = { schema, name: `p."0' é` };
  await sql(url, markSql(p, { policy: 'metrics-archive', parentSchema: schema, parentName: table, column: 'recorded_at', range: { from: first.from, to: first.to }, archiveFirst: true }).text);
  await sql(url, detachSql({ schema, name: table }, p, 'concurrently').text);
  const renamed = await planNow({ ...desired, retention: [{ ...desired.retention[0]!, name: 'renamed' }] });
  t.match(renamed.findings, [{ status: 'WARNING', message: /was detached from .* by policy metrics-archive, which is not an enabled policy now, and not dropped/ }], 'a leftover of a policy no longer in the config is a warning');
  const again = await planNow(desired);
  const finishing = again.actions.find((a) => a.type === 'retention_drop_partitions')!;
  t.match(finishing.reason, /was detached by an interrupted run and not dropped: .*archived \(unless its archive committed\), then dropped/, 'plan says so');
  t.equal(finishing.params.partitions.find((p) => p.partition === first.partition)?.detached, true);
  const { outcomes } = await planAndRun(desired);
  t.match((outcomes[0]!.details?.lines as string[]).find((l) => l.includes(`p."0' é`)), /detached by an earlier run, \d+ rows archived/);
  const [{ left }] = await sql<{ left: number }>(url, `SELECT count(*)::int AS left FROM pg_class WHERE relname = $1`, [`p."0' é`]);
  t.equal(left, 0, 'the detached table is dropped');
  const archived = await archivedRows(storage);
  t.equal((await rows()) + (archived.rows[`${schema}.${table}`]?.length ?? 0), before, 'table + archives = the original rows');
});

t.test('declared partitions: plan shows the ones to come, apply creates them, a default holding rows is a warning, and a partman table is left alone', async (t) => {
  const url = await freshDatabase(t, { empty: true });
  await sql(url, `CREATE TABLE events (id bigint, at timestamptz NOT NULL) PARTITION BY RANGE (at); CREATE TABLE events_default PARTITION OF events DEFAULT;
    INSERT INTO events VALUES (1, now() - interval '400 days')`);
  const storage = t.testdir();
  const now = new Date();
  const desired: Desired = { ...desiredWith([], { url, storage }), partitions: [{ table: 'events', column: 'at', interval: '1d', premake: 2, source: { file: 'jarvis-db.yaml', path: 'partitions[0]' } }] };
  const plan = await planNow(desired, now);
  const day = (k: number) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + k)).toISOString().slice(0, 10).replaceAll('-', '');
  t.same(plan.actions.map((a) => a.target), [0, 1, 2].map((k) => `public.events_p${day(k)}`));
  t.match(plan.actions[0]!.reason, new RegExp(`^create partition events_p${day(0)}: at from `));
  t.match(plan.findings, [{ status: 'WARNING', message: /the default partition events_default holds rows/ }]);
  t.match(renderPlanText(plan), new RegExp(`\\+ create_partition public\\.events_p${day(1)} .*\\n {6}create partition events_p${day(1)}: at from `), 'plan shows the partition to come');
  await planAndRun(desired, now);
  const [{ n }] = await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'events'::regclass`);
  t.equal(n, 4, 'three partitions created beside the default');
  t.same((await planNow(desired, now)).actions, [], 'nothing left to create');
  await sql(url, `CREATE SCHEMA partman; CREATE TABLE partman.part_config (parent_table text PRIMARY KEY); INSERT INTO partman.part_config VALUES ('public.events')`);
  const later = await planNow(desired, new Date(now.getTime() + 10 * 86_400_000));
  t.same(later.actions, [], 'pg_partman manages it: nothing planned');
  t.match(later.findings, [{ message: /pg_partman manages its partitions \(partman\.part_config\); jarvis-db leaves them to it/ }]);
});

t.test('a table partitioned on another column falls back to batches, and the plan says why', async (t) => {
  const url = await freshDatabase(t, { empty: true });
  await sql(url, `CREATE TABLE metrics (id bigint GENERATED ALWAYS AS IDENTITY, name text NOT NULL, value float8 NOT NULL, recorded_at timestamptz NOT NULL, PRIMARY KEY (id, name)) PARTITION BY LIST (name);
    CREATE TABLE metrics_a PARTITION OF metrics FOR VALUES IN ('a'); CREATE TABLE metrics_b PARTITION OF metrics FOR VALUES IN ('b');
    CREATE INDEX ON metrics (recorded_at);
    INSERT INTO metrics (name, value, recorded_at) SELECT (ARRAY['a','b'])[1 + i % 2], i, now() - i * interval '1 hour' FROM generate_series(1, 300) i; ANALYZE metrics`);
  const storage = t.testdir();
  const desired = metricsDesired(url, storage, 'delete');
  const plan = await planNow(desired);
  t.same(plan.actions.filter((a) => a.type === 'retention_drop_partitions'), []);
  const batch = plan.actions.find((a) => a.type === 'retention_delete');
  t.match(batch?.reason, /public\.metrics is list-partitioned on \(name\), not by range on recorded_at: its rows go through batches$/);
  await planAndRun(desired);
  const [{ old, all }] = await sql<{ old: number; all: number }>(url, `SELECT count(*) FILTER (WHERE recorded_at < now() - interval '5 days')::int AS old, count(*)::int AS "all" FROM metrics`);
  t.equal(old, 0, 'the batches deleted the old rows');
  t.equal(all, 119, 'and only them (the rows of the last 119 hours stay)');
});
