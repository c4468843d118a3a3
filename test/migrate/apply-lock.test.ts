/**
 * `migrate up` is an apply like any other: it takes the storage's apply lock (so it waits for a
 * running `jarvis-db apply`, and fails clearly after --lock-timeout naming the holder) and
 * journals what it does. The apply that holds the lock runs the test-only marker module
 * (test/engine/fixtures/marker-module.mjs) in file mode, held until the test releases it.
 * Needs the compiled CLI (`npm run build`).
 */
import t from 'tap';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, cliBackground } from '../engine/fixtures/cli.js';
import { configFile, freshDatabase, migrationsFolder, MECHANICS, pgServer, sql, type PgServer } from './fixture.js';

const server: PgServer = await pgServer(t);

t.test('migrate up waits for a running apply, fails after --lock-timeout 1s naming it, and runs once it is done', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, MECHANICS);
  const dir = join(folder, '..');
  // schema.target 0: the apply that holds the lock has no migration of its own to run.
  const config = await configFile(dir, folder, { target: '0' });
  const release = join(dir, 'release');
  const env = { JARVIS_DB_CONFIG: config, JARVIS_PG_URL: db.url, MARKER_FILE: join(dir, 'marker') };
  const holder = cliBackground(['apply', '--auto-approve'], { ...env, MARKER_HOLD: '120000', MARKER_RELEASE: release });
  t.teardown(() => { holder.child.kill('SIGKILL'); });
  await holder.waitFor(/marker: holding the apply lock/);

  const impatient = cli(['migrate', 'up', '--lock-timeout', '1s'], env);
  t.equal(impatient.code, 1, 'it exits 1');
  t.match(impatient.stderr, /waiting up to 1\.0s for the apply lock/);
  t.match(impatient.stderr, new RegExp(`^error: another apply holds the lock on \\S+/backups \\(pid ${holder.child.pid} on [^,]+, run \\d{8}T\\d{6}Z-[0-9a-f]{4}, since [^)]+\\); gave up after 1s$`, 'm'));
  t.match(impatient.stderr, /^hint: wait for it to finish/m);
  t.notMatch(impatient.stderr, /\n\s+at /, 'no stack trace');
  t.ok(impatient.ms >= 1000, `it waited (${impatient.ms} ms)`);
  t.same(await sql(db.url, `SELECT to_regclass('users') AS t`), [{ t: null }], 'nothing was migrated');

  const patient = cliBackground(['migrate', 'up'], env);
  await patient.waitFor(/waiting up to 1m 00s for the apply lock/);
  t.same(await sql(db.url, `SELECT to_regclass('users') AS t`), [{ t: null }], 'it waits before migrating anything');
  await writeFile(release, '');
  const [held, migrated] = await Promise.all([holder.result, patient.result]);
  t.equal(held.code, 0, held.stderr);
  t.equal(migrated.code, 0, migrated.stderr);
  t.match(migrated.stdout, /^Schema at 0005_cache_entries \(was 0\)\.$/m, 'it ran once the apply was done');
});

t.test('migrate up writes a journal of its run: the plan, each step, the end', async (t) => {
  const db = await freshDatabase(t, server);
  const folder = await migrationsFolder(t, {}, 2);
  const dir = join(folder, '..');
  const config = await configFile(dir, folder);
  const r = cli(['--json', 'migrate', 'up'], { JARVIS_DB_CONFIG: config, JARVIS_PG_URL: db.url, JARVIS_DB_TEST_MODULE: undefined });
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { runId: string; journal: string; to: string };
  t.equal(out.to, '0002_conversations_and_messages');
  const files = await readdir(join(dir, 'backups', 'journal'));
  t.same(files, [`${out.runId}.jsonl`], 'one journal file, named by the run id');
  t.match(out.journal, new RegExp(`/backups/journal/${files[0]}$`), 'the output names it');
  const events = (await readFile(join(dir, 'backups', 'journal', files[0]!), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { event: string; action?: string; status?: string });
  t.same(events.map((e) => e.event).filter((e) => !e.startsWith('migrate.')), ['run_started', 'plan', 'action_started', 'action_done', 'action_started', 'action_done', 'run_finished']);
  t.same(events.filter((e) => e.event === 'action_done').map((e) => e.action), ['migrate.up.0001_users_and_sessions', 'migrate.up.0002_conversations_and_messages']);
  t.ok(events.some((e) => e.event === 'migrate.step'), 'with the steps\' own lines');
  t.equal(events.at(-1)!.status, 'succeeded');
});
