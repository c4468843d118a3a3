/**
 * The migrate module against a real PostgreSQL (sandbox): observe → plan → the handlers, drift
 * reported by plan with the file's name, a failing migration rolled back whole with an error
 * that names the file and the SQL error, and handlers that re-check a planned step under the
 * lock before running it.
 */
import t from 'tap';
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Action, ExecuteContext, Handler, Plan, Progress } from '../../src/engine/types.js';
import { migrateHandlers, migrateModule } from '../../src/migrate/module.js';
import type { MigrateObserved } from '../../src/migrate/observe.js';
import { migrateTo } from '../../src/migrate/run.js';
import { freshDatabase, makeDesired, migrationsFolder, MECHANICS, newDatabaseUrl, noLog, pgServer, schemaDump, sql, type PgServer } from './fixture.js';

const server: PgServer = await pgServer(t);
const now = new Date('2026-11-25T10:00:00Z');
const silent: Progress = { note: () => undefined, update: () => undefined };

function context(desired: ReturnType<typeof makeDesired>): ExecuteContext {
  const plan: Plan = { formatVersion: 1, createdAt: now.toISOString(), configFile: desired.configFile, configHash: 'test', fingerprint: 'f', basis: { configHash: 'test', modules: {} }, actions: [], findings: [], errors: [] };
  return { desired, plan, runId: 'test-run', env: process.env, signal: new AbortController().signal, log: () => undefined, outcomes: new Map() };
}

async function observeAndPlan(desired: ReturnType<typeof makeDesired>) {
  const observed = await migrateModule.observe({ desired, env: process.env, now }) as MigrateObserved;
  return { observed, plan: migrateModule.plan(desired, observed, now, { migrate: observed }) };
}

async function execute(desired: ReturnType<typeof makeDesired>, actions: Action[]) {
  const outcomes = [];
  for (const a of actions) outcomes.push(await (migrateHandlers[a.type as 'migrate_up' | 'migrate_down'] as Handler)(a, context(desired), silent));
  return outcomes;
}

t.test('observe, plan and the handlers converge: a second plan has nothing to do, and the fingerprint moved', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, MECHANICS);
  const desired = makeDesired(db.url, folder);
  t.ok(migrateModule.appliesTo(desired));
  const first = await observeAndPlan(desired);
  t.same(first.plan.errors, []);
  t.equal(first.plan.actions.length, 5);
  const outcomes = await execute(desired, first.plan.actions);
  t.match(outcomes[4]!.summary, /^applied 0005_cache_entries\.sql in (\d+ms|[\d.]+s); schema at 0005_cache_entries$/);
  const second = await observeAndPlan(desired);
  t.same(second.plan.actions, [], 'nothing left to do');
  t.equal(second.observed.applied.length, 5);
  t.ok(second.observed.applied.every((a, i) => a.sha256 === second.observed.files[i]!.sha256), 'the checksum of each applied file is recorded');
  t.equal(second.observed.embeddingType, 'real[]');
  t.not(JSON.stringify(migrateModule.fingerprint(first.observed)), JSON.stringify(migrateModule.fingerprint(second.observed)), 'the fingerprint follows the applied migrations');
});

t.test('plan reports an applied migration file that changed, by name, and migrate refuses to run anything', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, 3);
  const desired = makeDesired(db.url, folder);
  await migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog);
  await appendFile(join(folder, '0002_conversations_and_messages.sql'), '\n-- an innocent-looking edit\n');
  await writeFile(join(folder, '0004_extra.sql'), '-- Up Migration\nCREATE TABLE extra (id int);\n-- Down Migration\nDROP TABLE extra;\n');
  const { plan } = await observeAndPlan(desired);
  t.same(plan.actions, [], 'no action is planned over drift');
  t.match(plan.errors.map((e) => e.message).join('\n'), /applied migration 0002_conversations_and_messages \(0002_conversations_and_messages\.sql\) changed since it was applied/);
  await t.rejects(migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog), { code: 'MIGRATION_DRIFT', message: /0002_conversations_and_messages.*changed/ });
  t.same(await sql(db.url, `SELECT to_regclass('extra') AS t`), [{ t: null }], 'the pending migration did not run');
});

t.test('plan reports an applied migration whose file vanished, by name', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, 2);
  await migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog);
  await rm(join(folder, '0002_conversations_and_messages.sql'));
  const { plan } = await observeAndPlan(makeDesired(db.url, folder));
  t.match(plan.errors.map((e) => e.message).join('\n'), /applied migration 0002_conversations_and_messages has no file in .* \(vanished\)/);
});

t.test('plan on a database that does not exist says to run init, without creating it', async (t) => {
  const db = newDatabaseUrl(t, server);
  const { plan, observed } = await observeAndPlan(makeDesired(db.url, await migrationsFolder(t, {}, MECHANICS)));
  t.equal(observed.databaseExists, false);
  t.match(plan.errors[0]!.message, new RegExp(`database ${db.name} does not exist: run \`jarvis-db init\``));
  t.same(await sql(server.url, `SELECT datname FROM pg_database WHERE datname = $1`, [db.name]), [], 'observe created nothing');
});

t.test('a migration that fails midway leaves the schema at the previous version; the error names the file, the line and the SQL error', async (t) => {
  const db = await freshDatabase(t, server);
  const bad = [
    '-- Up Migration',
    'CREATE TABLE user_locales (user_id bigint PRIMARY KEY REFERENCES users ON DELETE CASCADE, locale text NOT NULL);',
    "INSERT INTO jarvis_db_settings (key, value) VALUES ('half', 'applied');",
    'ALTER TABLE users ADD COLUMN locale text;',
    'UPDATE users SET locale = no_such_column;',
    '-- Down Migration',
    'ALTER TABLE users DROP COLUMN locale;',
    'DROP TABLE user_locales;',
    '',
  ].join('\n');
  const folder = await migrationsFolder(t, { '0006_user_locales.sql': bad }, MECHANICS);
  await migrateTo(db.url, folder, { target: '0005_cache_entries', allowDown: false }, noLog);
  const before = await schemaDump(server, db.url);
  await t.rejects(migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog), {
    code: 'MIGRATION_FAILED',
    message: /^migration 0006_user_locales\.sql failed at line 5: column "no_such_column" does not exist \[SQLSTATE 42703\]; rolled back, the schema is still at 0005_cache_entries$/,
  });
  t.equal(await schemaDump(server, db.url), before, 'the schema is exactly as before');
  t.same(await sql(db.url, `SELECT key FROM jarvis_db_settings WHERE key = 'half'`), [], 'its data changes are gone too');
  const [last] = await sql<{ name: string }>(db.url, `SELECT name FROM pgmigrations ORDER BY run_on DESC, id DESC LIMIT 1`);
  t.equal(last!.name, '0005_cache_entries');
  t.same(await sql(db.url, `SELECT name FROM jarvis_db_migrations WHERE name = '0006_user_locales'`), [], 'no checksum for it');
  await writeFile(join(folder, '0006_user_locales.sql'), bad.replace('no_such_column', "'en'"));
  const fixed = await migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog);
  t.same(fixed.done.map((d) => d.step.name), ['0006_user_locales'], 'once fixed, it applies');
});

t.test('a handler refuses a planned step whose file changed after the plan', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, 2);
  const desired = makeDesired(db.url, folder);
  const { plan } = await observeAndPlan(desired);
  await execute(desired, plan.actions.slice(0, 1));
  await appendFile(join(folder, '0002_conversations_and_messages.sql'), '\n-- edited after the plan\n');
  await t.rejects(execute(desired, plan.actions.slice(1)), { code: 'STALE_PLAN', message: /0002_conversations_and_messages\.sql changed since the plan was made/ });
  t.same(await sql(db.url, `SELECT to_regclass('messages') AS t`), [{ t: null }], 'nothing of it ran');
});

t.test('a handler refuses a step that is not next any more (another process migrated meanwhile)', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, 3);
  const desired = makeDesired(db.url, folder);
  const { plan } = await observeAndPlan(desired);
  await migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog);
  await t.rejects(execute(desired, plan.actions.slice(0, 1)), { code: 'STALE_PLAN', message: /migration 0001_users_and_sessions is not the next one to apply: the schema is at 0003_memory, the latest/ });
});

t.test('the down handler needs schema.allowDown and rolls back newest first', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, MECHANICS);
  await migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog);
  const allowed = makeDesired(db.url, folder, { target: '0003_memory', allowDown: true });
  const { plan } = await observeAndPlan(allowed);
  t.same(plan.actions.map((a) => `${a.type} ${a.target} ${a.risk}`), ['migrate_down 0005_cache_entries destructive', 'migrate_down 0004_metrics destructive']);
  const refused = makeDesired(db.url, folder, { target: '0003_memory', allowDown: false });
  await t.rejects(execute(refused, plan.actions), { code: 'PLAN_INVALID', message: /schema\.allowDown is not true/ });
  const outcomes = await execute(allowed, plan.actions);
  t.match(outcomes[1]!.summary, /^rolled back 0004_metrics\.sql in (\d+ms|[\d.]+s); schema at 0003_memory$/);
  t.same(await sql(db.url, `SELECT to_regclass('metrics') AS m, to_regclass('memory')::text AS mem`), [{ m: null, mem: 'memory' }]);
  t.same(await sql(db.url, `SELECT name FROM jarvis_db_migrations ORDER BY name`), [{ name: '0001_users_and_sessions' }, { name: '0002_conversations_and_messages' }, { name: '0003_memory' }], 'rolled-back checksums are forgotten');
});

t.test('a JavaScript migration is run and checksummed like a SQL one; one without a down is refused clearly when rolled back', async (t) => {
  const db = await freshDatabase(t, server);
  const js = `export const up = (pgm) => { pgm.createTable('notes', { id: 'id', body: { type: 'text', notNull: true } }); };
export const down = (pgm) => { pgm.dropTable('notes'); };
`;
  const noDown = `export const up = (pgm) => { pgm.sql('CREATE TABLE scratch (id int)'); };\n`;
  const folder = await migrationsFolder(t, { '0006_notes.mjs': js, '0007_scratch.mjs': noDown }, MECHANICS);
  await migrateTo(db.url, folder, { target: 'latest', allowDown: false }, noLog);
  const [row] = await sql<{ sha256: string }>(db.url, `SELECT sha256 FROM jarvis_db_migrations WHERE name = '0006_notes'`);
  const { createHash } = await import('node:crypto');
  t.equal(row!.sha256, createHash('sha256').update(await readFile(join(folder, '0006_notes.mjs'))).digest('hex'));
  await t.rejects(migrateTo(db.url, folder, { target: '0006_notes', allowDown: true }, noLog), { code: 'MIGRATION_FAILED', message: /0007_scratch\.mjs exports no down/ });
  await migrateTo(db.url, folder, { target: '0005_cache_entries', allowDown: true }, noLog).catch(() => undefined);
  t.same(await sql(db.url, `SELECT to_regclass('scratch')::text AS s`), [{ s: 'scratch' }], 'the refused down changed nothing');
});

t.test('a rehearsal runs the steps for real in one transaction and rolls it back: same schema, nothing recorded; a failing step is named', async (t) => {
  const db = await freshDatabase(t, server);
  const bad = '-- Up Migration\nCREATE TABLE tmp_ok (id int);\nALTER TABLE users ADD COLUMN age int CHECK (age >= 0);\nUPDATE users SET age = -1;\n-- Down Migration\nALTER TABLE users DROP COLUMN age;\nDROP TABLE tmp_ok;\n';
  const folder = await migrationsFolder(t, { '0006_user_age.sql': bad }, MECHANICS);
  const empty = await schemaDump(server, db.url);
  const rehearsed = await migrateTo(db.url, folder, { target: '0005_cache_entries', allowDown: false }, { ...noLog, rehearse: true });
  t.equal(rehearsed.plan.actions.length, 5);
  t.ok(rehearsed.rehearsedMs !== null && rehearsed.done.length === 0, 'rehearsed, not applied');
  t.equal(await schemaDump(server, db.url), empty, 'the database is exactly as before, not even the history table was left');
  await migrateTo(db.url, folder, { target: '0005_cache_entries', allowDown: false }, noLog);
  await sql(db.url, `INSERT INTO users (id, email) VALUES (1, 'a@example.com')`);
  const at5 = await schemaDump(server, db.url);
  await t.rejects(migrateTo(db.url, folder, { target: 'latest', allowDown: false }, { ...noLog, rehearse: true }), {
    code: 'MIGRATION_FAILED',
    message: /^migration 0006_user_age\.sql failed: new row for relation "users" violates check constraint "users_age_check" .*\[SQLSTATE 23514\]; the rehearsal was rolled back, nothing changed$/,
  });
  t.equal(await schemaDump(server, db.url), at5, 'the failed rehearsal changed nothing either');
  const downs = await migrateTo(db.url, folder, { target: '0003_memory', allowDown: true }, { ...noLog, rehearse: true });
  t.same(downs.plan.actions.map((a) => a.target), ['0005_cache_entries', '0004_metrics'], 'downs can be rehearsed too');
  t.equal(await schemaDump(server, db.url), at5);
  t.same(await sql(db.url, `SELECT count(*)::int AS n FROM users`), [{ n: 1 }]);
});
