/**
 * `jarvis-db migrate status | up | down | create` through the compiled CLI (build first with
 * npx tsc), on the sandbox: the same checks as plan, one-line errors, the down opt-in, and the
 * backup that schema.backupBefore asks for.
 */
import t from 'tap';
import { appendFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, configFile, freshDatabase, migrationsFolder, MECHANICS, pgServer, sql, type PgServer } from './fixture.js';

const server: PgServer = await pgServer(t);

t.test('status, up, down with and without --allow-down, dry runs and create', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, MECHANICS);
  const config = await configFile(join(folder, '..'), folder);
  const env = { JARVIS_PG_URL: db.url };
  const pending = cli(['migrate', 'status'], env, config);
  t.equal(pending.code, 0, 'status exits 0 when nothing is wrong');
  t.match(pending.stdout, new RegExp(`^database ${db.name}: at 0 \\(0 of 5 migrations applied\\)$`, 'm'));
  t.match(pending.stdout, /^  pending   0005_cache_entries$/m);
  t.match(pending.stdout, /^schema\.target latest: 5 to apply\.$/m);

  const dry = cli(['migrate', 'up', '--dry-run'], env, config);
  t.match(dry.stdout, /^\+ would apply 0001_users_and_sessions$/m);
  t.match(dry.stdout, /^Dry run: 5 steps from 0; nothing changed\.$/m);
  t.same(await sql(db.url, `SELECT to_regclass('users') AS t`), [{ t: null }], 'the dry run changed nothing');
  const rehearsal = cli(['migrate', 'up', '--rehearse'], env, config);
  t.equal(rehearsal.code, 0, 'a rehearsal exits 0');
  t.match(rehearsal.stdout, /^\+ would apply 0005_cache_entries: rehearsed, it runs\nRehearsed: 5 steps from 0 ran in one transaction \((\d+ms|[\d.]+s)\), rolled back; nothing changed\.$/m);
  t.same(await sql(db.url, `SELECT to_regclass('users') AS t`), [{ t: null }], 'the rehearsal changed nothing');

  const up = cli(['migrate', 'up', '--to', '0004_metrics'], env, config);
  t.equal(up.code, 0, 'up --to exits 0');
  t.match(up.stdout, /^\+ 0004_metrics \((\d+ms|[\d.]+s)\)\nSchema at 0004_metrics \(was 0\)\.$/m);
  t.equal(up.stderr, ['0001_users_and_sessions', '0002_conversations_and_messages', '0003_memory', '0004_metrics'].map((m) => `applying ${m}.sql\n`).join(''),
    'stderr has our one line per step, not node-pg-migrate\'s own (### MIGRATION, > Migrating files)');
  t.notMatch(up.stdout, /### MIGRATION|Migrating files/);
  const json = JSON.parse(cli(['--json', 'migrate', 'status'], env, config).stdout) as { version: string; rows: { name: string; state: string }[]; steps: string[] };
  t.equal(json.version, '0004_metrics');
  t.same(json.steps, ['+ 0005_cache_entries']);

  const refused = cli(['migrate', 'down'], env, config);
  t.equal(refused.code, 1, 'down without opt-in exits 1');
  t.match(refused.stderr, /^error: the target 0003_memory is below the applied version 0004_metrics: rolling back 0004_metrics is destructive and needs --allow-down \(or schema\.allowDown: true\)$/m);
  t.notMatch(refused.stderr, /\n\s+at /, 'no stack trace');
  const down = cli(['migrate', 'down', '--allow-down'], env, config);
  t.equal(down.code, 0, 'down --allow-down exits 0');
  t.match(down.stdout, /^- 0004_metrics \((\d+ms|[\d.]+s)\)\nSchema at 0003_memory \(was 0004_metrics\)\.$/m);
  t.equal(down.stderr, 'rolling back 0004_metrics.sql\n', 'one line of ours for the step rolled back, none of node-pg-migrate\'s');
  const dryDown = cli(['migrate', 'down', '--to', '0', '--allow-down', '--dry-run'], env, config);
  t.match(dryDown.stdout, /^- would roll back 0003_memory\n- would roll back 0002_conversations_and_messages\n- would roll back 0001_users_and_sessions\n/m);
  const allowedByConfig = await configFile(join(folder, '..'), folder, { allowDown: true });
  const all = cli(['migrate', 'down', '--to', '0'], env, allowedByConfig);
  t.equal(all.code, 0, 'schema.allowDown in the config is the same opt-in');
  t.match(all.stdout, /Schema at 0 \(was 0003_memory\)\./);

  const created = cli(['migrate', 'create', 'add_user_locale'], env, config);
  t.equal(created.code, 0, 'create exits 0');
  t.match(created.stdout, new RegExp(`created ${join(folder, '0006_add_user_locale.sql')}`));
  t.ok((await readdir(folder)).includes('0006_add_user_locale.sql'));
});

t.test('status exits 1 and names the file when an applied migration changed; up refuses to run', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, 2);
  const config = await configFile(join(folder, '..'), folder);
  const env = { JARVIS_PG_URL: db.url };
  t.equal(cli(['migrate', 'up'], env, config).code, 0);
  await appendFile(join(folder, '0001_users_and_sessions.sql'), '\nCREATE INDEX users_display_name_idx ON users (display_name);\n');
  const status = cli(['migrate', 'status'], env, config);
  t.equal(status.code, 1, 'drift makes status fail (a CI check)');
  t.match(status.stdout, /^  CHANGED   0001_users_and_sessions /m);
  t.match(status.stdout, /^error: applied migration 0001_users_and_sessions \(0001_users_and_sessions\.sql\) changed since it was applied/m);
  await writeFile(join(folder, '0003_more.sql'), '-- Up Migration\nCREATE TABLE more (id int);\n-- Down Migration\nDROP TABLE more;\n');
  const up = cli(['migrate', 'up'], env, config);
  t.equal(up.code, 1);
  t.match(up.stderr, /^error: applied migration 0001_users_and_sessions \(0001_users_and_sessions\.sql\) changed since it was applied: sha256 [0-9a-f]{12}… then, [0-9a-f]{12}… now$/m);
  t.same(await sql(db.url, `SELECT to_regclass('more') AS t`), [{ t: null }]);
});

t.test('a failing migration through the CLI: one line naming the file, the line and the SQL error, exit 1', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, { '0006_broken.sql': '-- Up Migration\nCREATE TABLE broken (id int);\nINSERT INTO broken VALUES (\'not a number\');\n-- Down Migration\nDROP TABLE broken;\n' }, MECHANICS);
  const config = await configFile(join(folder, '..'), folder);
  const r = cli(['migrate', 'up'], { JARVIS_PG_URL: db.url }, config);
  t.equal(r.code, 1);
  t.match(r.stderr, /^error: migration 0006_broken\.sql failed at line 3: invalid input syntax for type integer: "not a number" \[SQLSTATE 22P02\]; rolled back, the schema is still at 0005_cache_entries$/m);
  t.match(r.stderr, /^hint: fix 0006_broken\.sql and run again$/m);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.same(await sql(db.url, `SELECT to_regclass('broken') AS t`), [{ t: null }]);
});

t.test('with schema.backupBefore, migrate up takes a PostgreSQL backup first (and --no-backup skips it)', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, 3);
  const schedule = ['backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", timezone: UTC, format: custom, keep: { last: 5 }, verify: checksum }'];
  const config = await configFile(join(folder, '..'), folder, { backupBefore: true }, schedule);
  const env = { JARVIS_PG_URL: db.url };
  const first = cli(['migrate', 'up', '--to', '0002_conversations_and_messages'], env, config);
  t.equal(first.code, 0, first.code === 0 ? 'up exits 0' : first.stderr);
  t.match(first.stdout, /^\+ backup \S+ \(schema\.backupBefore\)\n\+ 0001_users_and_sessions/m, 'the backup comes before the first migration');
  const list = JSON.parse(cli(['--json', 'backup', 'list'], env, config).stdout) as { backups: { schedule: string }[] };
  t.equal(list.backups.length, 1);
  t.equal(list.backups[0]!.schedule, 'nightly');
  const skipped = cli(['migrate', 'up', '--no-backup'], env, config);
  t.equal(skipped.code, 0);
  t.notMatch(skipped.stdout, /backup/);
  const nothing = cli(['migrate', 'up'], env, config);
  t.match(nothing.stdout, /^No changes/m);
  t.equal((JSON.parse(cli(['--json', 'backup', 'list'], env, config).stdout) as { backups: unknown[] }).backups.length, 1, 'no backup when there is nothing to migrate');
  const noSchedule = await configFile(join(folder, '..'), folder, { backupBefore: true, allowDown: true });
  const refused = cli(['migrate', 'down'], env, noSchedule);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^error: schema\.backupBefore asks for a PostgreSQL backup before migrations, but no backup schedule backs up postgres \(add one under backups:, or set schema\.backupBefore: false\)$/m);
  t.match(refused.stderr, /^hint: or run with --no-backup$/m);
  t.same(await sql<{ t: string }>(db.url, `SELECT to_regclass('memory')::text AS t`), [{ t: 'memory' }], 'nothing was rolled back');
});
