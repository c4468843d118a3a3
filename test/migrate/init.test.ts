/**
 * `jarvis-db init` end to end on the sandbox (compiled CLI: build first with npx tsc), and the
 * seed generator: a realistic dataset for every retention policy and benchmark, with the exact
 * schema the migrations define (indexes rebuilt, no stray objects), valid references and
 * reproducible content.
 */
import t from 'tap';
import { join } from 'node:path';
import { acquireApplyLock } from '../../src/engine/lock.js';
import { runsOfAction } from '../helpers/journal.js';
import { ensureExtensions } from '../../src/migrate/init.js';
import { seedCounts, seedDatabase } from '../../src/dataset/seed.js';
import { migrateTo } from '../../src/migrate/run.js';
import { cli, configFile, freshDatabase, newDatabaseUrl, noLog, pgServer, PROJECT_MIGRATIONS, schemaDump, sql, type PgServer } from './fixture.js';

const server: PgServer = await pgServer(t);
const SCALE = 0.02;

t.test('init creates the missing database and extensions, migrates to the target and seeds a realistic JARVIS dataset', async (t) => {
  const db = newDatabaseUrl(t, server, 'init');
  const config = await configFile(t.testdir(), PROJECT_MIGRATIONS);
  const env = { JARVIS_PG_URL: db.url };
  const r = cli(['init', '--seed', '--scale', String(SCALE)], env, config);
  t.equal(r.code, 0, r.code === 0 ? 'init exits 0' : r.stderr);
  t.match(r.stdout, new RegExp(`^\\+ database ${db.name} created$`, 'm'));
  t.match(r.stdout, /^\+ extension pgcrypto: created$/m);
  t.match(r.stdout, /^  extension vector: not available \(pgvector is not installed on the server: memory\.embedding will be real\[\]\)$|^\+ extension vector: created$/m);
  t.match(r.stdout, /^Schema at 0006_partition_metrics \(was 0\)\.$/m);
  t.match(r.stdout, /^\+ seeded at scale 0\.02 in (\d+ms|[\d.]+s|\d+m \d+s): 700 users, 1,300 sessions, 2,740 conversations, [\d,]+ messages, 520 memories, 13,000 metrics, 860 hourly roll-ups, 860 cache entries; database size [\d.]+ MB$/m);
  t.match(r.stdout, /^  chroma not seeded: services\.chroma is not configured\n  redis not seeded: services\.redis is not configured$/m, 'the stores not configured are skipped, and it says so');
  t.notMatch(r.stdout + r.stderr, new URL(server.url).password, 'the password is never printed');
  const ext = await sql<{ extname: string }>(db.url, `SELECT extname FROM pg_extension ORDER BY 1`);
  t.ok(ext.some((e) => e.extname === 'pgcrypto'), 'pgcrypto is installed');

  const expected = seedCounts(SCALE);
  const [counts] = await sql<Record<string, string>>(db.url, `SELECT (SELECT count(*) FROM users) users, (SELECT count(*) FROM sessions) sessions,
    (SELECT count(*) FROM conversations) conversations, (SELECT count(*) FROM messages) messages, (SELECT count(*) FROM memory) memory,
    (SELECT count(*) FROM metrics) metrics, (SELECT count(*) FROM metrics_hourly) metrics_hourly, (SELECT count(*) FROM cache_entries) cache`);
  t.same([counts!.users, counts!.sessions, counts!.conversations, counts!.memory, counts!.metrics, counts!.metrics_hourly, counts!.cache].map(Number),
    [expected.users, expected.sessions, expected.conversations, expected.memory, expected.metrics, expected.metricsHourly, expected.cacheEntries]);
  const perConversation = Number(counts!.messages) / expected.conversations;
  t.ok(perConversation > 5 && perConversation < 7, `about six messages per conversation (${perConversation.toFixed(2)})`);

  const [orphans] = await sql<Record<string, string>>(db.url, `SELECT
    (SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id)) messages,
    (SELECT count(*) FROM conversations c WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id)) conversations,
    (SELECT count(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)) sessions,
    (SELECT count(*) FROM memory m WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id)
        OR (m.conversation_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id))) memory`);
  t.same(orphans, { messages: '0', conversations: '0', sessions: '0', memory: '0' }, 'every reference points at a row (the load skips the per-row checks)');

  // What each default retention policy and the benchmarks need to find in it.
  const [shape] = await sql<Record<string, number>>(db.url, `SELECT
    (SELECT extract(epoch FROM now() - min(created_at)) / 86400 FROM messages)::int AS messages_oldest_days,
    (SELECT extract(epoch FROM now() - max(created_at)) / 86400 FROM messages)::int AS messages_newest_days,
    (SELECT avg((updated_at < now() - interval '90 days')::int) FROM conversations)::float8 AS conversations_archivable,
    (SELECT avg((last_active_at < now() - interval '2 years')::int) FROM users)::float8 AS users_inactive_2y,
    (SELECT avg((recorded_at < now() - interval '30 days')::int) FROM metrics)::float8 AS metrics_expired,
    (SELECT avg((created_at < now() - interval '7 days')::int) FROM cache_entries)::float8 AS cache_expired,
    (SELECT avg((expires_at < now() - interval '30 days')::int) FROM sessions)::float8 AS sessions_deletable,
    (SELECT avg((expires_at > now())::int) FROM sessions)::float8 AS sessions_live,
    (SELECT count(DISTINCT role) FROM messages)::int AS roles,
    (SELECT min(array_length(embedding, 1)) FROM memory)::int AS dims,
    (SELECT avg(sqrt((SELECT sum(x * x) FROM unnest(embedding) x))) FROM memory)::float8 AS norm,
    (SELECT count(*) FROM memory WHERE conversation_id IS NULL)::float8 / (SELECT count(*) FROM memory) AS memory_without_conversation`);
  const s = shape!;
  t.ok(s.messages_oldest_days! >= 720 && s.messages_oldest_days! <= 731, `messages go back two years (${s.messages_oldest_days} days)`);
  t.ok(s.messages_newest_days! <= 2, 'and reach today');
  t.ok(s.conversations_archivable! > 0.8 && s.conversations_archivable! < 0.95, `most conversations are older than 90 days (${s.conversations_archivable})`);
  t.ok(s.users_inactive_2y! > 0.02 && s.users_inactive_2y! < 0.15, `some users have been inactive for two years (${s.users_inactive_2y})`);
  t.ok(s.metrics_expired! > 0.25 && s.metrics_expired! < 0.45, `about a third of the metrics are older than 30 days (${s.metrics_expired})`);
  t.ok(s.cache_expired! > 0.35 && s.cache_expired! < 0.65, `about half of the cache is older than 7 days (${s.cache_expired})`);
  t.ok(s.sessions_deletable! > 0.2 && s.sessions_live! > 0.1, `sessions both long expired (${s.sessions_deletable}) and live (${s.sessions_live})`);
  t.equal(s.roles, 4, 'system, user, assistant and tool messages');
  t.equal(s.dims, 384);
  t.ok(Math.abs(s.norm! - 1) < 0.05, `embeddings of about unit length (${s.norm})`);
  t.ok(s.memory_without_conversation! > 0.2 && s.memory_without_conversation! < 0.4, 'some memories come from no conversation');

  const [next] = await sql<{ id: string }>(db.url, `INSERT INTO users (email) VALUES ('new@example.com') RETURNING id`);
  t.equal(Number(next!.id), expected.users + 1, 'the identity sequences continue after the generated ids');

  const plain = await freshDatabase(t, server);
  await ensureExtensions(plain.url);
  await migrateTo(plain.url, PROJECT_MIGRATIONS, { target: 'latest', allowDown: false }, noLog);
  // The seed adds the daily partitions of metrics for its 45 days (0006 made today and 7 ahead): the same ones here.
  const partitionsOf = (url: string) => sql<{ name: string; bound: string }>(url, `SELECT c.relname::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'metrics'::regclass ORDER BY 1`);
  const migrated = new Set((await partitionsOf(plain.url)).map((p) => p.name));
  const seededDays = (await partitionsOf(db.url)).filter((p) => !migrated.has(p.name));
  t.ok(seededDays.length >= 30, `the seed made ${seededDays.length} partitions for its days`);
  for (const p of seededDays) await sql(plain.url, `CREATE TABLE ${p.name} PARTITION OF metrics ${p.bound}`);
  t.equal(await schemaDump(server, db.url), await schemaDump(server, plain.url), 'the seeded schema is exactly the migrated one (and its days\' partitions): every index rebuilt, nothing left behind');

  const again = cli(['init'], env, config);
  t.equal(again.code, 0, 'init again exits 0');
  t.match(again.stdout, new RegExp(`^  database ${db.name} exists$`, 'm'));
  t.match(again.stdout, /^No changes: the schema is at 0006_partition_metrics\.$/m);
  const reseed = cli(['init', '--seed', '--scale', '0.01'], env, config);
  t.equal(reseed.code, 1, 'seeding a database with data is refused');
  t.match(reseed.stderr, /^error: cannot seed: table users already has rows; --seed fills an empty database$/m);
  const [still] = await sql<{ n: string }>(db.url, `SELECT count(*) AS n FROM users`);
  t.equal(Number(still!.n), expected.users + 1, 'and changes nothing');
});

t.test('init --to stops at a migration, and init never rolls back', async (t) => {
  const db = newDatabaseUrl(t, server, 'init');
  const config = await configFile(t.testdir(), PROJECT_MIGRATIONS);
  const env = { JARVIS_PG_URL: db.url };
  const partial = cli(['init', '--to', '0002_conversations_and_messages'], env, config);
  t.equal(partial.code, 0, 'init --to exits 0');
  t.match(partial.stdout, /Schema at 0002_conversations_and_messages \(was 0\)\./);
  await t.rejects(seedDatabase(db.url, { scale: 0.01 }), { code: 'USAGE', message: /cannot seed: the schema lacks memory, metrics, metrics_hourly, cache_entries/ });
  t.equal(cli(['init'], env, config).code, 0);
  const down = cli(['init', '--to', '0001_users_and_sessions'], env, config);
  t.equal(down.code, 1, 'a target below the schema is refused');
  t.match(down.stderr, /--to 0001_users_and_sessions is below the applied version 0006_partition_metrics: that is a down, not an up/);
  const bad = cli(['init', '--seed', '--scale', 'lots'], env, config);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /--scale must be a positive number \(got "lots"\)/);
});

t.test('the same scale and clock generate the same data', async (t) => {
  const now = new Date('2026-11-25T12:00:00Z');
  const digests = [];
  for (let i = 0; i < 2; i++) {
    const db = await freshDatabase(t, server, 'seed');
    await migrateTo(db.url, PROJECT_MIGRATIONS, { target: 'latest', allowDown: false }, noLog);
    const r = await seedDatabase(db.url, { scale: 0.005, now, connections: i + 1 });
    t.equal(r.foreignKeyChecks, 'skipped', 'the sandbox superuser loads without per-row foreign-key checks');
    const [d] = await sql<Record<string, string>>(db.url, `SELECT
      (SELECT md5(string_agg(u::text, '|' ORDER BY id)) FROM users u) users,
      (SELECT md5(string_agg(m::text, '|' ORDER BY id)) FROM messages m) messages,
      (SELECT md5(string_agg(m::text, '|' ORDER BY id)) FROM memory m) memory,
      (SELECT md5(string_agg(s::text, '|' ORDER BY id)) FROM sessions s) sessions,
      (SELECT md5(string_agg(c::text, '|' ORDER BY key)) FROM cache_entries c) cache`);
    digests.push(d);
  }
  t.same(digests[0], digests[1], 'identical content with one connection and with two');
});

t.test('init is an apply: it waits for the apply lock, fails clearly after --lock-timeout, and journals its migrations and its seed', async (t) => {
  const db = newDatabaseUrl(t, server, 'init');
  const dir = t.testdir();
  const config = await configFile(dir, PROJECT_MIGRATIONS);
  const storage = join(dir, 'backups');
  const env = { JARVIS_PG_URL: db.url };
  const lock = await acquireApplyLock(storage, { timeoutMs: 0, runId: 'test-holder' });
  try {
    const r = cli(['init', '--lock-timeout', '1s'], env, config);
    t.equal(r.code, 1, 'it fails while another holds the lock');
    t.match(r.stderr, /waiting up to 1\.0s for the apply lock/);
    t.match(r.stderr, new RegExp(`^error: another apply holds the lock on .*pid ${process.pid}.*run test-holder.*; gave up after 1s$`, 'm'), 'naming the holder');
    t.same(await sql(server.url, `SELECT datname FROM pg_database WHERE datname = '${db.name}'`), [], 'not even the database was created');
  } finally {
    await lock.release();
  }
  const r = cli(['init', '--seed', '--scale', '0.01'], env, config);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^\+ seeded at scale 0\.01 /m);
  const [run] = await runsOfAction(storage, 'migrate.seed.jarvis');
  const done = (run ?? []).filter(([e]) => e === 'action_done').map(([, a]) => a);
  t.same(done, ['migrate.up.0001_users_and_sessions', 'migrate.up.0002_conversations_and_messages', 'migrate.up.0003_memory', 'migrate.up.0004_metrics', 'migrate.up.0005_cache_entries', 'migrate.up.0006_partition_metrics', 'migrate.seed.jarvis'],
    'each migration, then the seed, journaled in one run');
  t.same(run?.at(-1), ['run_finished', null]);
});
