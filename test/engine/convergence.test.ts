/**
 * Convergence on the sandbox (issue 3, "must be true"): plan shows changes (exit 2), apply
 * makes them (exit 0), and the next plan has nothing to do (exit 0); a second apply does
 * nothing. Through the compiled CLI as a child process (`npm run build` first), against a
 * throwaway PostgreSQL, with:
 * - the test-only marker module (test/engine/fixtures/marker-module.mjs, injected through
 *   JARVIS_DB_TEST_MODULE), which keeps a row in table jarvis_marker: real I/O on PostgreSQL;
 * - a real backup schedule with `verify: restore`: a pg_dump backup, then its restore test;
 * - the migrate module with the real migrations/ (issue 7) and `backupBefore`: the backup runs
 *   first, then every migration, and the restore test proves the pre-change backup;
 * - the retention module (issue 8): its policy waits for the migrations that create its table,
 *   then old rows make it plan a delete, which the next apply carries out.
 * Each domain issue extends this test with its own module.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { listJournals } from '../../src/engine/journal.js';
import { withSandbox } from '../helpers/sandbox.js';
import { cli, writeConfig } from './fixtures/cli.js';

const MIGRATIONS = new URL('../../migrations', import.meta.url).pathname;

t.test('plan → apply → plan converges: 2, 0, then 0, and a second apply does nothing', async (t) => {
  const sandbox = await withSandbox(t, ['postgres']);
  const url = sandbox.postgres!.url;
  const password = decodeURIComponent(new URL(url).password);
  const dir = t.testdir();
  const config = await writeConfig(dir, [
    'version: 1',
    'services:',
    '  postgres: { url: "${JARVIS_PG_URL}" }',
    'storage:',
    '  path: ./backups',
    'schema:',
    `  migrations: ${JSON.stringify(MIGRATIONS)}`,
    '  target: latest',
    '  backupBefore: true',
    'retention:',
    '  policies:',
    '    - { name: metrics-delete, table: metrics, age: { column: recorded_at, olderThan: 30d }, action: delete, batchSize: 100 }',
    'backups:',
    '  - { name: pg-nightly, service: postgres, cron: "0 3 * * *", timezone: Europe/Paris, keep: { last: 2 }, verify: restore }',
  ]);
  const env = { JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config };
  const outputs: string[] = [];
  const run = (args: string[]) => { const r = cli(args, env); outputs.push(r.stdout, r.stderr); return r; };

  const first = run(['plan', '--detailed-exitcode']);
  t.equal(first.code, 2, first.stderr);
  t.match(first.stdout, /\+ create_backup pg-nightly  backup\.create\.pg-nightly\n      no backup yet; and before migrations/);
  t.match(first.stdout, /~ migrate_up 0001_users_and_sessions/);
  t.match(first.stdout, /~ migrate_up 0005_cache_entries/);
  t.match(first.stdout, /~ migrate_up 0006_partition_metrics/);
  t.match(first.stdout, /~ marker_ensure jarvis_marker  marker\.ensure/);
  t.match(first.stdout, /~ verify_backup pg-nightly \(new backup\)/);
  t.ok(first.stdout.indexOf('create_backup') < first.stdout.indexOf('migrate_up 0001'), 'the backup comes before the migrations');
  t.match(first.stdout, /! UNKNOWN retention\.waiting\.metrics-delete: metrics-delete: waits for the\s+pending migrations/);
  t.match(first.stdout, /Plan: 1 to create, 8 to change, 0 to destroy\./);

  const applied = run(['apply', '--auto-approve']);
  t.equal(applied.code, 0, applied.stderr);
  // Each action: a line as it starts, its progress notes, a line as it ends.
  t.match(applied.stderr, /\[1\/9\] \+ create_backup pg-nightly\n(?: {6}pg-nightly: .*\n)+ {6}done in [\d.]+m?s: backup \d{8}T\d{6}Z-[0-9a-f]{4} written/);
  t.match(applied.stderr, /\[2\/9\] ~ migrate_up 0001_users_and_sessions\n(?: {6}.*\n)*? {6}done in .*applied 0001_users_and_sessions/);
  t.match(applied.stderr, /\[8\/9\] ~ marker_ensure jarvis_marker\n(?: {6}.*\n)*? {6}done in /);
  t.match(applied.stderr, /\[9\/9\] ~ verify_backup pg-nightly \(new backup\)\n(?: {6}.*\n)*? {6}done in .*verified: checksums match; /);
  t.match(applied.stdout, /Apply complete: 9 actions done in /);

  const second = run(['plan', '--detailed-exitcode']);
  t.equal(second.code, 0, second.stdout + second.stderr);
  // Health findings about this machine (its load) may precede the summary; no action does.
  t.match(second.stdout, /^(?:Findings:\n(?:  .*\n)+\n)?No changes\. Observed state matches jarvis-db\.yaml\.\n$/);

  const again = run(['apply', '--auto-approve']);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /^No changes\. Observed state matches jarvis-db\.yaml\. Nothing to apply\./);

  // The world really changed: the marker row exists, and one restore-tested backup is in the catalog.
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const marker = await client.query('SELECT name FROM jarvis_marker');
  const tables = await client.query<{ t: string }>(`SELECT string_agg(tablename, ',' ORDER BY tablename) AS t FROM pg_tables
    WHERE schemaname = 'public' AND tablename IN ('users', 'sessions', 'conversations', 'messages', 'memory', 'metrics', 'metrics_hourly', 'cache_entries')`);
  await client.end();
  t.equal(tables.rows[0]!.t, 'cache_entries,conversations,memory,messages,metrics,metrics_hourly,sessions,users', 'the data model is in place');
  t.same(marker.rows, [{ name: 'jarvis-db-convergence' }]);

  const list = run(['backup', 'list', '--json']);
  const backups = JSON.parse(list.stdout).backups as { schedule: string; verification: { how: string; ok: boolean } }[];
  t.match(backups, [{ schedule: 'pg-nightly', verification: { how: 'restore', ok: true } }]);
  t.equal(backups.length, 1);

  // Old rows make retention plan a delete; the next apply converges again.
  const writer = new pg.Client({ connectionString: url });
  await writer.connect();
  await writer.query(`INSERT INTO metrics (name, value, recorded_at)
    SELECT 'latency', i, now() - (i + 0.5) * interval '1 day' FROM generate_series(0, 89) i`);
  const aged = run(['plan', '--detailed-exitcode']);
  t.equal(aged.code, 2, aged.stderr);
  // metrics is partitioned by day (0006) from today on: these older rows are in its default partition.
  t.match(aged.stdout, /- retention_delete public\.metrics.*\n\s+60 rows older than 30d.*in metrics_default \(the default partition\)/);
  const cleaned = run(['apply', '--auto-approve']);
  t.equal(cleaned.code, 0, cleaned.stderr);
  t.equal(run(['plan', '--detailed-exitcode']).code, 0, 'converged again');
  t.same((await writer.query('SELECT count(*)::int AS n FROM metrics')).rows, [{ n: 30 }], 'the 60 old rows are gone, the 30 recent ones stay');
  await writer.end();

  // Three applies, three journals; no password anywhere.
  const journals = await listJournals(join(dir, 'backups'));
  t.equal(journals.length, 3);
  const journalText = (await Promise.all(journals.map((f) => readFile(f, 'utf8')))).join('');
  t.match(journalText, /"event":"action_done","action":"marker.ensure"/);
  for (const text of [...outputs, journalText]) t.notMatch(text, password, 'the password is never printed or journaled');
});
