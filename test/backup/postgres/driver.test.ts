import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createBackup, restoreBackup, verifyBackup } from '../../../src/backup/operations.js';
import { listBackups, findBackup } from '../../../src/backup/catalog.js';
import { checkToolVersion } from '../../../src/backup/postgres/driver.js';
import { libpqEnv } from '../../../src/services/postgres.js';
import { freshDatabase, makeDesired, sql, withDb } from '../fixture.js';

const RICH_SCHEMA = `
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('happy', 'sad', 'ünïcødé 🙂');
CREATE SEQUENCE app.ticket_seq START 1000 INCREMENT 7;
CREATE TABLE app.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text UNIQUE NOT NULL, mood app.mood, tags text[], scores int[], profile jsonb, avatar bytea, bio text, ticket bigint DEFAULT nextval('app.ticket_seq'), created_at timestamptz DEFAULT now());
CREATE TABLE app.posts (id serial PRIMARY KEY, user_id bigint REFERENCES app.users(id) ON DELETE CASCADE, body text, published boolean, rating numeric(5,2));
CREATE INDEX posts_user_idx ON app.posts(user_id);
CREATE INDEX users_profile_gin ON app.users USING gin (profile);
CREATE TABLE public.metrics (id bigint, recorded_at timestamptz NOT NULL, value double precision, labels jsonb) PARTITION BY RANGE (recorded_at);
CREATE TABLE public.metrics_2026_10 PARTITION OF public.metrics FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE TABLE public.metrics_2026_11 PARTITION OF public.metrics FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE VIEW app.active_users AS SELECT id, email FROM app.users WHERE mood = 'happy';
CREATE MATERIALIZED VIEW app.post_counts AS SELECT user_id, count(*) AS n FROM app.posts GROUP BY user_id;
CREATE FUNCTION app.shout(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(s) || '!' $$;
INSERT INTO app.users (email, mood, tags, scores, profile, avatar, bio)
  SELECT 'user' || i || '@example.com', (ARRAY['happy','sad','ünïcødé 🙂']::app.mood[])[1 + i % 3],
         CASE WHEN i % 5 = 0 THEN NULL ELSE ARRAY['a' || i, 'b"quoted"', 'c,comma'] END,
         ARRAY[i, i * 2, NULL], jsonb_build_object('n', i, 'nested', jsonb_build_object('k', 'vä', 'arr', jsonb_build_array(1, 'two', null))),
         CASE WHEN i % 7 = 0 THEN NULL ELSE decode(md5(i::text) || '00ff', 'hex') END,
         CASE WHEN i % 50 = 0 THEN repeat('long text ✓ ', 20000) ELSE E'line1\\nline2\\ttab ' || i END
  FROM generate_series(1, 2000) i;
INSERT INTO app.posts (user_id, body, published, rating) SELECT 1 + i % 2000, 'post ' || i || ' 中文', CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 = 0 END, (i % 500) / 7.0 FROM generate_series(1, 5000) i;
INSERT INTO public.metrics SELECT i, timestamptz '2026-10-01' + (i || ' minutes')::interval, random(), jsonb_build_object('host', 'h' || i % 4) FROM generate_series(1, 80000) i;
REFRESH MATERIALIZED VIEW app.post_counts;
SELECT nextval('app.ticket_seq');
`;

const TABLE_CHECKSUMS = `
SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname IN ('app', 'public') ORDER BY 1`;

async function checksums(url: string): Promise<Record<string, string>> {
  const [tables] = await sql(url, TABLE_CHECKSUMS);
  const out: Record<string, string> = {};
  for (const { name } of tables!.rows as { name: string }[]) {
    const [r] = await sql(url, `SELECT count(*)::text || ':' || coalesce(md5(string_agg(h, '' ORDER BY h)), '') AS sum FROM (SELECT md5(x::text) AS h FROM ${name} x) s`);
    out[name] = (r!.rows[0] as { sum: string }).sum;
  }
  const [seq] = await sql(url, `SELECT last_value::text FROM app.ticket_seq`);
  out['app.ticket_seq'] = (seq!.rows[0] as { last_value: string }).last_value;
  return out;
}

function schemaDump(url: string): string {
  const env = { ...process.env, ...libpqEnv(url) };
  const r = spawnSync('pg_dump', ['--schema-only', '--no-password'], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.split('\n').filter((l) => !/^\\(un)?restrict /.test(l)).join('\n');
}

t.test('a rich database round-trips: backup, restore into a new database, identical rows and schema', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, RICH_SCHEMA);
  const base = t.testdir();
  for (const format of ['directory', 'custom'] as const) {
    const desired = makeDesired(db.url, join(base, format), { format });
    const entry = await createBackup(desired, desired.backups[0]!, process.env);
    t.equal(entry.manifest.format, format);
    const [part] = await sql(db.url, 'SELECT count(*)::int AS n FROM public.metrics_2026_10');
    t.equal((entry.manifest.extra.rowCounts as Record<string, number>)['public.metrics_2026_10'], (part!.rows[0] as { n: number }).n, 'row counts recorded per partition');
    const notes: string[] = [];
    const updates: [number, number | undefined][] = [];
    const progress = { note: (m: string) => notes.push(m), update: (n: number, total?: number) => updates.push([n, total]) };
    const result = await restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, progress });
    t.match(result.target, new RegExp(`^${db.name}_restore_`));
    t.ok(notes.some((n) => /^restoring table data for \S+ \(\d+\/\d+\)$/.test(n)), `${format}: pg_restore's items show as progress notes`);
    const total = updates[0]?.[1] ?? 0;
    t.ok(total > 5 && updates.every(([n, of]) => of === total && n <= total), `${format}: the bar counts up to the dump's ${total} TOC entries`);
    t.ok(updates.at(-1)![0] >= total - 2, `${format}: and ends near the total (${updates.at(-1)![0]}/${total})`);
    const restoredUrl = withDb(db.serverUrl, result.target);
    t.same(await checksums(restoredUrl), await checksums(db.url), `${format}: every table's rows identical`);
    t.equal(schemaDump(restoredUrl), schemaDump(db.url), `${format}: pg_dump --schema-only identical`);
  }
});

t.test('restore onto a non-empty database needs --force, then replaces its objects', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 100) i;`);
  const desired = makeDesired(db.url, t.testdir());
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  await sql(db.url, `DELETE FROM t WHERE id > 10`);
  await t.rejects(restoreBackup(desired, entry.manifest.id, { target: db.name, force: false, env: process.env }), { code: 'RESTORE_REFUSED', message: /not empty/ });
  const [before] = await sql(db.url, 'SELECT count(*)::int AS n FROM t');
  t.equal((before!.rows[0] as { n: number }).n, 10, 'refused restore changed nothing');
  await restoreBackup(desired, entry.manifest.id, { target: db.name, force: true, env: process.env });
  const [after] = await sql(db.url, 'SELECT count(*)::int AS n FROM t');
  t.equal((after!.rows[0] as { n: number }).n, 100);
});

t.test('one flipped byte in any file: verify names the file and restore refuses without --force', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 5000) i; CREATE TABLE u (x int); INSERT INTO u VALUES (1);`);
  const desired = makeDesired(db.url, t.testdir());
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  t.ok(entry.manifest.files.length >= 3);
  for (const f of entry.manifest.files) {
    const path = join(entry.dir, f.name);
    const original = await readFile(path);
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)]! ^= 0x01;
    await writeFile(path, damaged);
    const fresh = await findBackup(desired.storage.path, entry.manifest.id);
    const v = await verifyBackup(desired, fresh, { restoreTest: false, env: process.env });
    t.notOk(v.ok, `${f.name}: verify fails`);
    t.same(v.badFiles, [f.name], `${f.name}: named`);
    await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: process.env }), { code: 'RESTORE_REFUSED', message: new RegExp(f.name.replace('.', '\\.')) });
    await writeFile(path, original);
  }
  const good = await verifyBackup(desired, await findBackup(desired.storage.path, entry.manifest.id), { restoreTest: true, env: process.env });
  t.ok(good.ok, good.message);
  t.equal((await listBackups(desired.storage.path))[0]!.manifest.verification!.how, 'restore', 'the verification is recorded');
});

t.test('an encrypted backup cannot be read without its key; a wrong key is a clear error', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE secrets (v text); INSERT INTO secrets SELECT 'TOPSECRET-MARKER-' || i FROM generate_series(1, 1000) i;`);
  const base = t.testdir();
  const plainDesired = makeDesired(db.url, join(base, 'plain'), { compression: 0 });
  const plain = await createBackup(plainDesired, plainDesired.backups[0]!, process.env);
  const containsMarker = async (e: typeof plain) => {
    for (const f of e.manifest.files) if ((await readFile(join(e.dir, f.name))).includes('TOPSECRET-MARKER')) return true;
    return false;
  };
  t.ok(await containsMarker(plain), 'the test can see the marker in an unencrypted, uncompressed backup');
  const env = { ...process.env, TEST_BACKUP_KEY: 'a long passphrase 123' };
  const desired = makeDesired(db.url, join(base, 'enc'), { compression: 0 }, 'TEST_BACKUP_KEY');
  const enc = await createBackup(desired, desired.backups[0]!, env);
  t.ok(enc.manifest.encrypted);
  t.notOk(await containsMarker(enc), 'no plaintext in the encrypted files');
  t.ok((await verifyBackup(desired, enc, { restoreTest: false, env: {} })).ok, 'checksums verify without the key');
  await t.rejects(restoreBackup(desired, enc.manifest.id, { force: false, env: {} }), { code: 'DECRYPT_FAILED', message: /TEST_BACKUP_KEY is not set/ });
  await t.rejects(restoreBackup(desired, enc.manifest.id, { force: false, env: { TEST_BACKUP_KEY: 'wrong' } }), { code: 'DECRYPT_FAILED', message: /wrong passphrase/ });
  const r = await restoreBackup(desired, enc.manifest.id, { force: false, env });
  t.match(r.summary, /1,000 rows, row counts match/);
});

t.test('older client tools than the server are refused with a hint', async (t) => {
  t.throws(() => checkToolVersion('pg_dump', 14, 150004), { code: 'TOOL_VERSION', hint: /postgresql-client-15/ });
  t.doesNotThrow(() => checkToolVersion('pg_dump', 16, 150004));
});

t.test('the password goes to the child environment, never the command line', async (t) => {
  const env = libpqEnv('postgres://jarvis:p%40ss@127.0.0.1:5544/jarvis?sslmode=disable');
  t.same(env, { PGHOST: '127.0.0.1', PGPORT: '5544', PGUSER: 'jarvis', PGPASSWORD: 'p@ss', PGDATABASE: 'jarvis', PGSSLMODE: 'disable' });
});

t.test('row counts compare per table; extra tables count only when the target was new', async (t) => {
  const { compareRowCounts } = await import('../../../src/backup/postgres/driver.js');
  t.same(compareRowCounts({ 'public.a': 3 }, { 'public.a': 3 }), []);
  t.same(compareRowCounts({ 'public.a': 3, 'public.b': 1 }, { 'public.a': 2 }), ['public.a: 2 rows, expected 3', 'public.b: missing']);
  t.same(compareRowCounts({ 'public.a': 3 }, { 'public.a': 3, 'public.x': 9 }), ['public.x: not in the backup']);
  t.same(compareRowCounts({ 'public.a': 3 }, { 'public.a': 3, 'public.x': 9 }, false), []);
});

t.test('the catalog lives with the backups: dropping the database loses no knowledge of its backups', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 500);`);
  const desired = makeDesired(db.url, t.testdir());
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  await sql(db.serverUrl, `DROP DATABASE ${db.name} WITH (FORCE)`);
  const listed = await listBackups(desired.storage.path);
  t.same(listed.map((e) => e.manifest.id), [entry.manifest.id]);
  const r = await restoreBackup(desired, entry.manifest.id, { target: db.name, force: false, env: process.env });
  t.match(r.summary, /500 rows, row counts match/);
});
