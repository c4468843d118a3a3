/**
 * Retention on a real PostgreSQL (the sandbox): archive and restore give back the exact rows;
 * only rows older than the planned cut-off are touched; delete honours maxRows; anonymize is
 * idempotent; compress merges into existing buckets; the live catalog is checked again at
 * execution (docs/architecture.md §4 rules 3 and 5).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { RetentionPolicy } from '../../src/config/types.js';
import { restoreArchiveById, verifyArchiveById } from '../../src/retention/archives.js';
import { retentionHandlers } from '../../src/retention/module.js';
import { scanArchives } from '../../src/retention/store.js';
import { chunkCompression, SUFFIX } from '../../src/retention/compression.js';
import { desiredWith, freshDatabase, policy, seed, snapshot, sql } from './fixture.js';
import { accountFor, archivedRows, contextFor, planAndRun, planNow, rowsAsText, silent } from './helpers.js';
import { variant } from '../engine/fixtures/plan-fixtures.js';

// Each test has a server, a database and a storage directory of its own (freshDatabase starts one
// per test): three at a time, the file's time being wall time.
t.jobs = 3;

const conversationsArchive = (batchSize = 7): RetentionPolicy => policy({
  name: 'conversations-archive', table: 'conversations', action: 'archive', age: { column: 'updated_at', olderThan: '90d' },
  children: [{ table: 'messages', column: 'conversation_id' }], archive: { deleteAfter: '2y' }, batchSize,
});
const messagesArchive = (batchSize = 100): RetentionPolicy => policy({ name: 'messages-archive', table: 'messages', action: 'archive', age: { column: 'created_at', olderThan: '90d' }, batchSize });

t.test('archiving conversations with their messages, then restoring, gives back the original tables exactly', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 120, messages: 3000, days: 200 });
  const before = { conversations: await snapshot(url, 'conversations'), messages: await snapshot(url, 'messages') };
  const originals = { conversations: await rowsAsText(url, 'conversations'), messages: await rowsAsText(url, 'messages') };
  const storage = t.testdir();
  const desired = desiredWith([conversationsArchive(), messagesArchive()], { url, storage });
  const { plan, outcomes } = await planAndRun(desired);
  t.same(plan.actions.map((a) => a.id), ['retention.archive.conversations-archive', 'retention.archive.messages-archive']);
  t.match(outcomes[0]!.summary, /^archived [\d,]+ rows of public\.conversations and [\d,]+ rows of public\.messages into archive \S+ \(\d+ chunks?, .*\) in \d+ batch(es)? \(longest [\d.]+m?s\)/);

  const cutoff = Date.parse(variant(plan.actions[0], 'retention_archive').params.cutoff);
  const left = { conversations: await rowsAsText(url, 'conversations'), messages: await rowsAsText(url, 'messages') };
  t.ok(left.conversations.size < originals.conversations.size && left.conversations.size > 0, 'some conversations archived, some kept');
  for (const row of left.conversations.values()) t.ok(Date.parse(row[4]!.replace(' ', 'T').replace(/\+00$/, 'Z')) >= cutoff, `conversation ${row[0]} kept: not older than the cut-off`);
  const archived = await archivedRows(storage);
  t.same(archived.failed, []);
  t.same(accountFor(originals.conversations, left.conversations, archived.rows['public.conversations'] ?? []), [], 'conversations: table + archives = original');
  t.same(accountFor(originals.messages, left.messages, archived.rows['public.messages'] ?? []), [], 'messages: table + archives = original');

  const again = await planNow(desired);
  t.same(again.actions, [], 'a second plan has nothing to do');

  for (const a of (await scanArchives(storage)).archives) await restoreArchiveById(desired, a.header.id, { env: process.env });
  t.same(await snapshot(url, 'conversations'), before.conversations, 'conversations restored exactly');
  t.same(await snapshot(url, 'messages'), before.messages, 'messages restored exactly');
  const twice = await restoreArchiveById(desired, (await scanArchives(storage)).archives[0]!.header.id, { env: process.env });
  t.same(Object.values(twice.inserted), [0, 0], 'restoring again inserts nothing');
  t.ok(Object.values(twice.alreadyThere).every((n) => n > 0), 'every row is already there');
  t.same(await snapshot(url, 'messages'), before.messages, 'and duplicates nothing');
});

t.test('a restore of one table of an archive refuses children whose parents are gone, with a hint', async (t) => {
  const url = await freshDatabase(t);
  // More messages in one chunk than one INSERT takes: the refusal must come from the first insert, not a later one.
  await seed(url, { conversations: 30, messages: 3000 });
  const storage = t.testdir();
  const desired = desiredWith([conversationsArchive(50)], { url, storage });
  await planAndRun(desired);
  const id = (await scanArchives(storage)).archives[0]!.header.id;
  await t.rejects(restoreArchiveById(desired, id, { table: 'messages', env: process.env }), {
    code: 'RESTORE_FAILED', message: /violates foreign key constraint/, hint: /restore the parents first/,
  });
  const parents = await restoreArchiveById(desired, id, { table: 'conversations', env: process.env });
  t.same(Object.keys(parents.inserted), ['public.conversations']);
  const kids = await restoreArchiveById(desired, id, { table: 'public.messages', env: process.env });
  t.ok(kids.inserted['public.messages']! > 0, 'then the messages go back in');
  await t.rejects(restoreArchiveById(desired, id, { table: 'users', env: process.env }), { code: 'USAGE', message: /holds public\.conversations, public\.messages, not users/ });
});

t.test('apply touches only rows older than the planned cut-off, even when rows age past it before the run', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 10, messages: 1000, days: 100 });
  const storage = t.testdir();
  const desired = desiredWith([policy({ name: 'messages-delete', table: 'messages', action: 'delete', age: { column: 'created_at', olderThan: '30d' }, batchSize: 64 })], { url, storage });
  const planned = new Date(Date.now() - 20 * 86_400_000); // planned 20 days ago: its cut-off is 50 days back
  const plan = await planNow(desired, planned);
  const cutoff = variant(plan.actions[0], 'retention_delete').params.cutoff;
  const [{ older, newer }] = await sql<{ older: number; newer: number }>(url, `SELECT count(*) FILTER (WHERE created_at < $1)::int AS older, count(*) FILTER (WHERE created_at >= $1)::int AS newer FROM messages`, [cutoff]);
  const nowEligible = await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM messages WHERE created_at < now() - interval '30 days'`);
  t.ok(nowEligible[0]!.n > older, 'more rows are older than 30d today than at the planned cut-off');
  const out = await retentionHandlers.retention_delete(variant(plan.actions[0], 'retention_delete'), contextFor(desired, plan), silent);
  t.match(out.summary, new RegExp(`^deleted ${older.toLocaleString('en-US')} rows of public\\.messages in \\d+ batch(es)?`));
  const after = await sql<{ older: number; newer: number }>(url, `SELECT count(*) FILTER (WHERE created_at < $1)::int AS older, count(*) FILTER (WHERE created_at >= $1)::int AS newer FROM messages`, [cutoff]);
  t.same(after[0], { older: 0, newer }, 'every older row deleted, every newer row kept');
});

t.test('delete with maxRows keeps at most maxRows rows, deleting the oldest first', async (t) => {
  const url = await freshDatabase(t);
  await sql(url, `INSERT INTO cache_entries (key, value, created_at) SELECT 'k' || i, jsonb_build_object('v', i), now() - (i || ' minutes')::interval FROM generate_series(1, 500) i`);
  const desired = desiredWith([policy({ name: 'cache', table: 'cache_entries', action: 'delete', age: { column: 'created_at', olderThan: '7d' }, maxRows: 120, batchSize: 50 })], { url, storage: t.testdir() });
  const { plan, outcomes } = await planAndRun(desired);
  t.match(plan.actions[0]!.reason, /^0 rows older than 7d .*; 380 more beyond maxRows 120$/);
  t.match(outcomes[0]!.summary, /; then VACUUM \(ANALYZE\) of public\.cache_entries in [\d.]+m?s$/, 'it deleted most of the table: vacuumed, and the summary says so');
  const [stats] = await sql<{ dead: number }>(url, `SELECT n_dead_tup::int AS dead FROM pg_stat_user_tables WHERE relname = 'cache_entries'`);
  t.equal(stats!.dead, 0, 'no dead tuples left: the deletes\' pending counts were flushed before the VACUUM reset them');
  const left = await sql<{ key: string }>(url, `SELECT key FROM cache_entries ORDER BY created_at DESC`);
  t.same(left.map((r) => r.key), Array.from({ length: 120 }, (_, i) => `k${i + 1}`), 'the 120 newest entries stay');
  t.same((await planNow(desired)).actions, [], 'converged');
});

t.test('anonymize overwrites personal columns once: placeholders stay unique, hashes are salted, a second run does nothing', async (t) => {
  const url = await freshDatabase(t);
  await sql(url, `ALTER TABLE users ADD COLUMN phone text, ADD COLUMN note text`);
  await sql(url, `INSERT INTO users (email, display_name, phone, note, last_active_at) SELECT 'user' || i || '@example.com', 'User ' || i, '+33 6 ' || i, 'secret ' || i, now() - (i * 100 || ' days')::interval FROM generate_series(1, 20) i`);
  const env = { ...process.env, JARVIS_ANON_SALT: 'pepper' };
  const desired = desiredWith([policy({
    name: 'users-anonymize', table: 'users', action: 'anonymize', age: { column: 'last_active_at', olderThan: '2y' }, batchSize: 4,
    anonymize: { columns: { email: 'email', display_name: 'redact', phone: 'hash', note: 'null' }, saltEnv: 'JARVIS_ANON_SALT', redaction: '[gone]', marker: 'anonymized_at' },
  })], { url, storage: t.testdir() });
  const before = await sql<{ id: string; phone: string }>(url, `SELECT id::text, phone FROM users ORDER BY id`);
  const { plan } = await planAndRun(desired, new Date(), env);
  t.equal(plan.actions[0]!.risk, 'destructive');
  const rows = await sql<{ id: string; email: string; display_name: string; phone: string; note: string | null; anonymized: boolean; old: boolean }>(url,
    `SELECT id::text, email, display_name, phone, note, anonymized_at IS NOT NULL AS anonymized, last_active_at < now() - interval '730 days' AS old FROM users ORDER BY id`);
  const old = rows.filter((r) => r.old);
  t.equal(old.length, 13, 'users inactive for 2 years (100 days apart)');
  for (const r of old) {
    const phone = before.find((b) => b.id === r.id)!.phone;
    t.match(r, { email: /^user-[0-9a-f]{32}@anon\.invalid$/, display_name: '[gone]', note: null, anonymized: true });
    t.equal(r.phone, createHash('sha256').update('pepper' + phone).digest('hex'), `user ${r.id}: the phone is its salted SHA-256`);
  }
  t.equal(new Set(old.map((r) => r.email)).size, old.length, 'the placeholder addresses are unique');
  for (const r of rows.filter((x) => !x.old)) t.match(r, { email: /@example\.com$/, anonymized: false });
  const snapshotAfter = await snapshot(url, 'users');
  t.same((await planNow(desired, new Date(), env)).actions, [], 'an anonymized row is not counted again');
  t.same(await snapshot(url, 'users'), snapshotAfter);
  const noSalt = await planNow(desired, new Date(), { ...process.env, JARVIS_ANON_SALT: '' });
  t.match(noSalt.errors, [{ message: /users-anonymize.*the hash strategy needs a salt, but \$JARVIS_ANON_SALT is not set/ }]);
});

t.test('compress rolls old rows into hourly buckets, merging into buckets that already exist', async (t) => {
  const url = await freshDatabase(t);
  await sql(url, `INSERT INTO metrics (name, value, recorded_at)
    SELECT (ARRAY['latency','tokens'])[1 + i % 2], (i * 7) % 100, date_trunc('hour', now()) - interval '10 days' - (i * 13 || ' minutes')::interval FROM generate_series(1, 2000) i;
    INSERT INTO metrics (name, value, recorded_at) SELECT 'latency', i, now() - (i || ' minutes')::interval FROM generate_series(1, 100) i;`);
  const expected = await sql<{ name: string; b: string; count: string; sum: number; min: number; max: number }>(url, `
    SELECT name, date_trunc('hour', recorded_at) AS b, count(*)::text AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
      FROM metrics WHERE recorded_at < now() - interval '7 days' GROUP BY 1, 2 ORDER BY 1, 2`);
  const [first] = expected;
  await sql(url, `INSERT INTO metrics_hourly VALUES ($1, $2, 3, 1000, -5, 500)`, [first!.name, first!.b]);
  const desired = desiredWith([policy({
    name: 'metrics-compress', table: 'metrics', action: 'compress', age: { column: 'recorded_at', olderThan: '7d' }, batchSize: 300,
    compress: { bucket: '1h', groupBy: ['name'], value: 'value', into: 'metrics_hourly' },
  })], { url, storage: t.testdir() });
  await planAndRun(desired);
  const buckets = await sql<{ name: string; b: string; count: string; sum: number; min: number; max: number }>(url, `SELECT name, bucket_start AS b, count::text, sum, min, max FROM metrics_hourly ORDER BY 1, 2`);
  const want = expected.map((e, i) => (i === 0 ? { ...e, count: String(Number(e.count) + 3), sum: e.sum + 1000, min: -5, max: 500 } : e));
  t.same(buckets.map((b) => ({ ...b, b: new Date(b.b).toISOString() })), want.map((b) => ({ ...b, b: new Date(b.b).toISOString() })), 'counts and sums add up, min and max widen');
  const [{ n }] = await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM metrics`);
  t.equal(n, 100, 'the detail rows older than 7 days are gone, the recent ones stay');
});

t.test('a table altered after the plan to cascade into an unarchived table is refused at execution; no row is touched', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 40, messages: 400 });
  const storage = t.testdir();
  const desired = desiredWith([conversationsArchive(10)], { url, storage });
  const plan = await planNow(desired);
  t.same(plan.errors, []);
  await sql(url, `CREATE TABLE reactions (id bigint PRIMARY KEY, conversation_id bigint NOT NULL REFERENCES conversations ON DELETE CASCADE);
                  INSERT INTO reactions SELECT i, i FROM generate_series(1, 40) i;`);
  const before = await snapshot(url, 'conversations');
  await t.rejects(retentionHandlers.retention_archive(variant(plan.actions[0], 'retention_archive'), contextFor(desired, plan), silent), {
    code: 'RETENTION_FAILED', message: /conversations-archive.*would delete rows of public\.reactions\(conversation_id\) through ON DELETE CASCADE/,
  });
  t.same(await snapshot(url, 'conversations'), before, 'no conversation touched');
  t.equal((await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM reactions`))[0]!.n, 40, 'no reaction lost');
  t.same((await scanArchives(storage)).archives, [], 'no archive written');
});

t.test('plan errors from the live catalog name the policy: missing table, missing column, a column that is not a timestamp; a missing index is a finding', async (t) => {
  const url = await freshDatabase(t);
  const desired = desiredWith([
    policy({ name: 'ghost', table: 'ghosts', action: 'delete' }),
    policy({ name: 'no-column', table: 'messages', action: 'delete', age: { column: 'sent_at', olderThan: '1d' } }),
    policy({ name: 'text-column', table: 'messages', action: 'archive', age: { column: 'content', olderThan: '1d' } }),
    policy({ name: 'sql-name', table: 'users; DROP TABLE users', action: 'delete' }),
    policy({ name: 'unindexed', table: 'events', action: 'delete', age: { column: 'at', olderThan: '1d' } }),
  ], { url, storage: t.testdir() });
  await sql(url, `CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL)`);
  const plan = await planNow(desired);
  t.same(plan.actions, [], 'nothing is eligible in the empty tables');
  t.match(plan.findings, [{ check: 'retention.index.public.events.at', status: 'WARNING', message: /unindexed: no index on public\.events\(at\)/ }], 'a missing index on the age column is a WARNING');
  t.same(plan.errors.map((e) => `${e.message} (${e.path})`), [
    'policy "ghost": table "ghosts" does not exist (policies/test.yaml policies[0])',
    'policy "no-column": column "sent_at" does not exist in table public.messages (policies/test.yaml policies[0])',
    'policy "text-column": column "content" of public.messages is text, not a timestamp (timestamptz, timestamp or date) (policies/test.yaml policies[0])',
    'policy "sql-name": table "users; DROP TABLE users" does not exist (policies/test.yaml policies[0])',
  ]);
  t.equal((await sql(url, `SELECT 1 FROM users LIMIT 0`)).length, 0, 'users is still there');
});

t.test('hostile table and column names are quoted everywhere: delete, archive and restore work on them and nothing else runs', async (t) => {
  const url = await freshDatabase(t);
  const T = 'log"; DROP TABLE users; --';
  const K = "id'); DELETE FROM users; --";
  const A = 'at "when"';
  await sql(url, `CREATE TABLE "log""; DROP TABLE users; --" ("id'); DELETE FROM users; --" bigint PRIMARY KEY, "at ""when""" timestamptz NOT NULL, "body; text" text);
    CREATE INDEX ON "log""; DROP TABLE users; --" ("at ""when""");
    INSERT INTO "log""; DROP TABLE users; --" SELECT i, now() - (i || ' days')::interval + interval '12 hours', 'line ' || i FROM generate_series(1, 100) i;
    CREATE TABLE "tmp ""x""" ("k;" int PRIMARY KEY, "w hen" timestamptz NOT NULL);
    INSERT INTO "tmp ""x""" SELECT i, now() - (i || ' days')::interval + interval '12 hours' FROM generate_series(1, 50) i;
    INSERT INTO users (email) VALUES ('keep@example.com');`);
  const storage = t.testdir();
  const desired = desiredWith([
    policy({ name: 'hostile-archive', table: T, action: 'archive', age: { column: A, olderThan: '60d' }, batchSize: 7 }),
    policy({ name: 'hostile-delete', table: 'tmp "x"', action: 'delete', age: { column: 'w hen', olderThan: '30d' }, batchSize: 6 }),
  ], { url, storage });
  const before = await snapshot(url, T, K);
  const { plan } = await planAndRun(desired);
  t.same(plan.errors, []);
  t.same(plan.actions.map((a) => [a.target, a.estimate?.rows]), [[`public.${T}`, 40], ['public.tmp "x"', 20]]);
  t.equal((await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM "log""; DROP TABLE users; --"`))[0]!.n, 60);
  t.equal((await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM "tmp ""x"""`))[0]!.n, 30);
  t.same(await sql(url, `SELECT email FROM users`), [{ email: 'keep@example.com' }], 'users untouched: no injected statement ran');
  const id = (await scanArchives(storage)).archives[0]!.header.id;
  await restoreArchiveById(desired, id, { env: process.env });
  t.same(await snapshot(url, T, K), before, 'restored exactly');
});

t.test('with storage encryption, archive chunks are encrypted at rest, verify and restore with the passphrase, and fail clearly without it', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 20, messages: 400 });
  const before = await snapshot(url, 'messages');
  const storage = t.testdir();
  const desired = desiredWith([messagesArchive(150)], { url, storage, encryption: 'JARVIS_TEST_ARCHIVE_KEY' });
  const env = { ...process.env, JARVIS_TEST_ARCHIVE_KEY: 'archive passphrase' };
  await planAndRun(desired, new Date(), env);
  const [archive] = (await scanArchives(storage)).archives;
  t.equal(archive!.header.encrypted, true);
  const chunk = archive!.chunks[0]!.manifest;
  t.match(chunk.file, { name: /\.jsonl\.(gz|zst)\.enc$/, encrypted: true });
  const raw = await readFile(join(archive!.dir, chunk.file.name));
  t.notOk(gunzipIfPossible(raw)?.includes('message '), 'the chunk is not readable without the key');
  t.ok((await verifyArchiveById(desired, archive!.header.id, env)).ok, 'verifies with the passphrase');
  await t.rejects(verifyArchiveById(desired, archive!.header.id, { ...process.env, JARVIS_TEST_ARCHIVE_KEY: '' }), { code: 'DECRYPT_FAILED', message: /\$JARVIS_TEST_ARCHIVE_KEY is not set/ });
  await t.rejects(restoreArchiveById(desired, archive!.header.id, { env: { ...process.env, JARVIS_TEST_ARCHIVE_KEY: 'wrong' } }), { code: 'ARCHIVE_INVALID', message: /wrong passphrase/ });
  await restoreArchiveById(desired, archive!.header.id, { env });
  t.same(await snapshot(url, 'messages'), before, 'restored exactly');
});

t.test('archives of either compression verify and restore: gzip (written where zstd is not available, or asked for) and the default', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 20, messages: 400 });
  const before = await snapshot(url, 'messages');
  const storage = t.testdir();
  const desired = desiredWith([messagesArchive(150)], { url, storage });
  const expected = chunkCompression();
  for (const [env, compression] of [[{ ...process.env, JARVIS_DB_ARCHIVE_COMPRESSION: 'gzip' }, 'gzip'], [process.env, expected]] as const) {
    await planAndRun(desired, new Date(), env);
    const archives = (await scanArchives(storage)).archives;
    const archive = archives[archives.length - 1]!;
    t.ok(archive.chunks.length > 1, `${archive.chunks.length} chunks`);
    t.ok(archive.chunks.every((c) => c.manifest.file.compression === compression && c.manifest.file.name.endsWith(`.jsonl${SUFFIX[compression]}`)), `the manifests say ${compression}`);
    t.ok((await verifyArchiveById(desired, archive.header.id, process.env)).ok, `a ${compression} archive verifies`);
    t.notSame(await snapshot(url, 'messages'), before, 'the old messages were archived');
    await restoreArchiveById(desired, archive.header.id, { env: process.env });
    t.same(await snapshot(url, 'messages'), before, `a ${compression} archive restores exactly`);
  }
});

function gunzipIfPossible(b: Buffer): string | null {
  try {
    return gunzipSync(b).toString('utf8');
  } catch {
    return null;
  }
}

t.test('a run is followed by a VACUUM of the tables it touched a large share of, and only those', async (t) => {
  const { tablesToVacuum } = await import('../../src/retention/vacuum.js');
  const table = (name: string, estimatedRows: number) => ({ schema: 'public', name, estimatedRows });
  t.same(tablesToVacuum([
    { table: table('metrics', 20_000), rows: 10_000 },
    { table: table('sessions', 100_000), rows: 500 },
    { table: table('messages', 0), rows: 3 },
    { table: table('untouched', 10), rows: 0 },
  ]).map((x) => x.name), ['metrics', 'messages'], 'half of metrics, an unanalyzed table; not 0.5% of sessions nor a table with no row touched');
});

t.test('the server version is read as a number, so the xid functions of PostgreSQL 13+ are the ones used', async (t) => {
  const url = await freshDatabase(t);
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  const { serverVersion } = await import('../../src/retention/session.js');
  const version = await serverVersion(client);
  t.ok(Number.isInteger(version) && version >= 130000, `server_version_num ${version}`);
});
