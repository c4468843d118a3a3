/**
 * 0006_partition_metrics on a populated database (compiled CLI: build first): the seeded metrics
 * at 0005 are converted to daily range partitions and back, every row kept (count and an
 * order-independent checksum), constraints and indexes kept, the identity continuing; retention
 * then drops whole days and the seed fills a partitioned table into its days, not the default.
 */
import t from 'tap';
import { cli, configFile, newDatabaseUrl, pgServer, PROJECT_MIGRATIONS, sql, type PgServer } from './fixture.js';

const server: PgServer = await pgServer(t);
const SCALE = '0.1';

/** Count and a sum of per-row hashes: equal whatever the order or the table's physical layout. */
async function fingerprint(url: string): Promise<{ n: string; sum: string; max: string }> {
  const [r] = await sql<{ n: string; sum: string; max: string }>(url, `SELECT count(*)::text AS n, sum(hashtextextended(t::text, 0))::text AS sum, max(id)::text AS max FROM metrics t`);
  return r!;
}

async function layout(url: string) {
  const [r] = await sql<{ kind: string; pkey: string; indexes: string[]; checks: string[]; partitions: number }>(url, `
    SELECT c.relkind::text AS kind,
           (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = c.oid AND contype = 'p') AS pkey,
           array(SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = c.oid ORDER BY 1) AS indexes,
           array(SELECT conname::text FROM pg_constraint WHERE conrelid = c.oid AND contype = 'c' ORDER BY 1) AS checks,
           (SELECT count(*)::int FROM pg_inherits WHERE inhparent = c.oid) AS partitions
      FROM pg_class c WHERE c.oid = 'metrics'::regclass`);
  const [d] = r!.kind === 'p' ? await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM metrics_default`) : [{ n: 0 }];
  return { ...r!, inDefault: d!.n };
}

t.test('0006 converts a seeded metrics table to daily partitions and its down converts it back, every row kept', async (t) => {
  const db = newDatabaseUrl(t, server, 'partmetrics');
  const config = await configFile(t.testdir(), PROJECT_MIGRATIONS, { allowDown: true });
  const env = { JARVIS_PG_URL: db.url };
  const seeded = cli(['init', '--seed', '--scale', SCALE, '--to', '0005_cache_entries'], env, config);
  t.equal(seeded.code, 0, seeded.code === 0 ? 'seeded at 0005' : seeded.stderr);
  const before = await fingerprint(db.url);
  t.ok(Number(before.n) > 10_000, `${before.n} rows to convert`);

  const up = cli(['migrate', 'up'], env, config);
  t.equal(up.code, 0, up.code === 0 ? 'migrated up' : up.stderr);
  t.match(up.stdout, /^Schema at 0006_partition_metrics \(was 0005_cache_entries\)\.$/m);
  t.same(await fingerprint(db.url), before, 'the same rows after the conversion');
  const parted = await layout(db.url);
  t.match(parted, { kind: 'p', pkey: 'PRIMARY KEY (id, recorded_at)', indexes: ['metrics_name_recorded_at_idx', 'metrics_pkey', 'metrics_recorded_at_idx'], checks: ['metrics_labels_is_object'], inDefault: 0 });
  // The seed's 45 days (46 calendar days), today and 7 ahead (today counted once), the default.
  t.ok(parted.partitions >= 54, `${parted.partitions} partitions`);
  const [off] = await sql<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM metrics t WHERE tableoid::regclass::text <> 'metrics_p' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYYMMDD')`);
  t.equal(off!.n, 0, 'every row is in the partition of its UTC day');
  const [ins] = await sql<{ id: string; part: string }>(db.url, `INSERT INTO metrics (name, value) VALUES ('latency_ms', 1) RETURNING id::text, tableoid::regclass::text AS part`);
  t.equal(BigInt(ins!.id), BigInt(before.max) + 1n, 'the identity goes on after the copied ids');
  t.match(ins!.part, /^metrics_p\d{8}$/, 'a sample of now lands in today\'s partition');
  await t.rejects(sql(db.url, `INSERT INTO metrics (name, value, labels) VALUES ('x', 1, '[]')`), /metrics_labels_is_object/, 'the check still holds');
  await sql(db.url, `DELETE FROM metrics WHERE id = $1`, [ins!.id]);

  const down = cli(['migrate', 'down', '--allow-down'], env, config);
  t.equal(down.code, 0, down.code === 0 ? 'migrated down' : down.stderr);
  t.same(await fingerprint(db.url), before, 'the same rows after the down-migration');
  t.match(await layout(db.url), { kind: 'r', pkey: 'PRIMARY KEY (id)', indexes: ['metrics_name_recorded_at_idx', 'metrics_pkey', 'metrics_recorded_at_idx'], partitions: 0 });
  const [left] = await sql<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'metrics\\_p2%' OR relname IN ('metrics_default', 'metrics_partitioned', 'metrics_unpartitioned')`);
  t.equal(left!.n, 0, 'no partition or renamed table left behind');
});

t.test('seeding after 0006 fills the partitions of the seeded days, and the metrics policy then drops whole days', async (t) => {
  const db = newDatabaseUrl(t, server, 'partseed');
  const config = await configFile(t.testdir(), PROJECT_MIGRATIONS, {}, [
    'partitions:', '  - { table: metrics, column: recorded_at, interval: 1d, premake: 7 }',
    'retention:', '  policies:', '    - { name: metrics-delete, table: metrics, age: { column: recorded_at, olderThan: 30d }, action: delete, batchSize: 5000 }',
  ]);
  const env = { JARVIS_PG_URL: db.url };
  const seeded = cli(['init', '--seed', '--scale', '0.02'], env, config);
  t.equal(seeded.code, 0, seeded.code === 0 ? 'seeded at 0006' : seeded.stderr);
  t.match(await layout(db.url), { kind: 'p', inDefault: 0 });
  const preview = cli(['retention', 'preview'], env, config);
  t.equal(preview.code, 0, preview.stderr);
  t.match(preview.stdout, /metrics-delete: drop partition metrics_p\d{8}: [\d,]+ rows, not archived \(policy delete\)/);
  const plan = cli(['plan'], env, config);
  t.notMatch(plan.stdout, /create_partition/, 'the migration made today and 7 days ahead');
  const [old] = await sql<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM metrics WHERE recorded_at < now() - interval '30 days'`);
  t.ok(old!.n > 0);
  const run = cli(['retention', 'run', '--auto-approve'], env, config);
  t.equal(run.code, 0, run.code === 0 ? 'retention ran' : run.stderr + run.stdout);
  const [after] = await sql<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM metrics WHERE recorded_at < now() - interval '30 days'`);
  t.equal(after!.n, 0, 'the old rows are gone');
  const [days] = await sql<{ oldest: string }>(db.url, `SELECT min(c.relname)::text AS oldest FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'metrics'::regclass AND c.relname <> 'metrics_default'`);
  const cutoffDay = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '');
  t.equal(days!.oldest, `metrics_p${cutoffDay}`, 'the partitions wholly older than 30 days were dropped; the one straddling the cut-off stays');
});
