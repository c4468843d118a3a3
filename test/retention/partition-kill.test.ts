/**
 * docs/architecture.md §4 rules 3 and 10 on the partition path, as a property: `jarvis-db retention
 * run` killed with SIGKILL between marking and detaching, after the detach, with a chunk
 * published, before the drop commits and after it; after each kill and a rerun, the rows left in
 * the table plus the rows in the verified archives are exactly the original rows (none lost, none
 * twice), and restoring the archives gives back the original table. Build first (npm run build).
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scanArchives } from '../../src/retention/store.js';
import { dailyTable, freshDatabase, sql } from './fixture.js';
import { accountFor, archivedRows, rowsAsText, runCli, sessionsGone } from './helpers.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const PAUSES = ['partition-marked', 'partition-detached', 'chunk-data-written', 'partition-chunk-published', 'partition-before-commit', 'partition-dropped'];

// Each moment has a server, a database and a storage of its own (freshDatabase starts one per
// subtest): three at a time, the test's time being wall time.
t.test('each kill moment of the partition path', { jobs: 3 }, async (t) => {
  await Promise.all(PAUSES.map((pause) => t.test(`killed at ${pause}: the rerun finishes the partition, no row lost or archived twice, and the archives restore the table`, async (t) => {
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('build first: npm run build');
    const url = await freshDatabase(t, { empty: true });
    await dailyTable(url, 'metrics', { perDay: 300 });
    const original = await rowsAsText(url, 'metrics');
    const dir = t.testdir();
    await writeFile(join(dir, 'jarvis-db.yaml'), [
      'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./storage }', 'retention:', '  policies:',
      '    - { name: metrics-archive, table: metrics, age: { column: recorded_at, olderThan: 5d }, action: archive, batchSize: 70 }', '',
    ].join('\n'));
    const env = { ...process.env, JARVIS_PG_URL: url };
    const args = ['retention', 'run', '--auto-approve', '-c', join(dir, 'jarvis-db.yaml')];
    const killed = await runCli(args, env, { pause });
    t.equal(killed.signal, 'SIGKILL', `killed mid-run: ${killed.stderr.slice(-300)}`);
    await sessionsGone(url);
    if (pause !== 'partition-marked') {
      const preview = await runCli(['retention', 'preview', '-c', join(dir, 'jarvis-db.yaml')], env);
      if (pause !== 'partition-dropped') t.match(preview.stdout, /was detached by an interrupted run and not dropped/, 'the plan says a detached partition is left to finish');
    }
    const rerun = await runCli(args, env);
    t.equal(rerun.code, 0, `the rerun completes: ${rerun.stderr.slice(-500)}`);
    const archived = await archivedRows(join(dir, 'storage'));
    t.same(archived.failed, [], 'every archive verifies');
    t.equal(archived.pending, 0, 'no chunk left unsettled');
    t.same(accountFor(original, await rowsAsText(url, 'metrics'), archived.rows['public.metrics'] ?? []), [], 'table + archives = the original rows exactly');
    const [{ left }] = await sql<{ left: number }>(url, `SELECT count(*)::int AS left FROM pg_class WHERE relname LIKE 'metrics_d%' AND relname IN ('metrics_d0', 'metrics_d1', 'metrics_d2', 'metrics_d3', 'metrics_d4')`);
    t.equal(left, 0, 'every old partition is dropped, detached ones included');
    for (const archive of (await scanArchives(join(dir, 'storage'))).archives) {
      const r = await runCli(['archive', 'restore', archive.header.id, '-c', join(dir, 'jarvis-db.yaml')], env);
      t.equal(r.code, 0, `archive restore ${archive.header.id}: ${r.stderr.slice(-300)}`);
      if (archive.header.partition) t.match(r.stdout, `+ partition ${archive.header.partition.name} created again for its rows`, 'the command says the partition was created again');
    }
    t.same(Object.fromEntries(await rowsAsText(url, 'metrics')), Object.fromEntries(original), 'restoring the archives gives back the original table');
  })));
});
