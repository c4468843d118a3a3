// Benchmark (issue 8): archive-and-delete 1,000,000 of 2,000,000 message rows with jarvis-db
// (batches of 5000: FOR UPDATE SKIP LOCKED, gzip JSON-lines chunk fsynced and published, delete,
// commit) against a bare `DELETE FROM messages WHERE created_at < X` on an identical copy of the
// same database, in the same run. Prints the ratio, the longest batch transaction, the archive's
// size against the table's, retention observation time and the peak RSS of the jarvis-db process.
// Usage: node bench/retention.mjs [SCALE] [ROUNDS]   (SCALE 1 = 2,000,000 rows; 0.05 for a quick run)
// Needs: a built dist/ (npx tsc -p tsconfig.json) and the PostgreSQL server binaries (the sandbox).
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startSandbox, stopSandbox } from '../dist/sandbox/index.js';
import { createMessagesTemplate, databaseUrl, mb, query, secs } from './retention-data.mjs';

const SCALE = Number(process.argv[2] ?? 1);
const ROUNDS = Number(process.argv[3] ?? 2);
const ROWS = Math.round(2_000_000 * SCALE);
const ROOT = new URL('..', import.meta.url).pathname;
const work = await mkdtemp(join(tmpdir(), 'jarvis-bench-retention-'));
const sandbox = await startSandbox({ dir: join(work, 'sandbox'), services: ['postgres'], ownerPid: process.pid });
const server = sandbox.postgres.url;
const urlOf = (db) => databaseUrl(server, db);

try {
  const now = new Date();
  const size = await createMessagesTemplate(server, ROWS, now);

  const base = [];
  const ours = [];
  for (let round = 1; round <= ROUNDS; round++) {
    await query(server, `CREATE DATABASE bench_bare TEMPLATE bench_template`);
    await query(server, `CREATE DATABASE bench_jdb TEMPLATE bench_template`);
    await query(server, 'CHECKPOINT');
    const bare = async () => {
      const c = new pg.Client({ connectionString: urlOf('bench_bare') });
      await c.connect();
      const t0 = performance.now();
      const r = await c.query(`DELETE FROM messages WHERE created_at < $1::timestamptz - interval '365 days'`, [now.toISOString()]);
      base.push({ ms: performance.now() - t0, rows: r.rowCount });
      await c.end();
    };
    const jdb = async () => {
      const storage = join(work, `storage-${round}`);
      const desired = {
        version: 1, project: 'bench', configFile: join(work, 'jarvis-db.yaml'), configHash: 'bench', services: { postgres: { url: urlOf('bench_jdb') } }, storage: { path: storage },
        backups: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 },
        retention: [{ name: 'messages-archive', table: 'messages', age: { column: 'created_at', olderThan: '365d' }, action: 'archive', batchSize: 5000, enabled: true, source: { file: 'bench', path: 'policies[0]' } }],
      };
      await writeFile(join(work, 'desired.json'), JSON.stringify(desired));
      const t0 = performance.now();
      const out = execFileSync(process.execPath, [join(ROOT, 'bench', 'retention-run.mjs'), join(work, 'desired.json'), now.toISOString()], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const wall = performance.now() - t0;
      const r = JSON.parse(out);
      ours.push({ wall, ...r, rows: r.results[0].rows, longest: r.results[0].longestBatchMs, archiveBytes: r.results[0].archiveBytes, chunks: r.results[0].chunks, batches: r.results[0].batches, timings: r.results[0].timings });
      await rm(storage, { recursive: true, force: true });
    };
    if (round % 2) { await bare(); await jdb(); } else { await jdb(); await bare(); }
    await query(server, `DROP DATABASE bench_bare`);
    await query(server, `DROP DATABASE bench_jdb`);
    console.log(`round ${round}: bare DELETE ${secs(base.at(-1).ms)} s (${base.at(-1).rows} rows); jarvis-db archive ${secs(ours.at(-1).runMs)} s (${ours.at(-1).rows} rows, observe ${ours.at(-1).observeMs.toFixed(0)} ms, longest batch ${ours.at(-1).longest} ms)`);
  }
  const bestBase = Math.min(...base.map((b) => b.ms));
  const best = ours.reduce((a, b) => (b.runMs < a.runMs ? b : a));
  const longest = Math.max(...ours.map((o) => o.longest));
  const observe = Math.min(...ours.map((o) => o.observeMs));
  console.log('');
  console.log(`== retention, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, scale ${SCALE} ==`);
  console.log(`messages table: ${size.rows.toLocaleString('en-US')} rows, pg_table_size ${mb(size.heap)} MB (with indexes ${mb(size.total)} MB)`);
  console.log(`bare DELETE ... WHERE created_at < X (${base[0].rows.toLocaleString('en-US')} rows)   ${secs(bestBase)} s   (runs: ${base.map((b) => secs(b.ms)).join(' ')})`);
  console.log(`jarvis-db archive + delete (${best.rows.toLocaleString('en-US')} rows)   ${secs(best.runMs)} s   (runs: ${ours.map((o) => secs(o.runMs)).join(' ')}; ${best.batches} batches of 5000)`);
  console.log(`speed ratio (bare time / jarvis-db time)          ${(bestBase / best.runMs).toFixed(3)}   (target >= 0.5)`);
  console.log(`longest single transaction                        ${longest} ms   (target < 500 ms)`);
  console.log(`archive size                                      ${mb(best.archiveBytes)} MB in ${best.chunks} chunks = ${(best.archiveBytes / size.heap).toFixed(3)} of the table   (target <= 0.30)`);
  console.log(`retention observation (connect, catalog, exact count)  ${observe.toFixed(0)} ms total, ${Math.min(...ours.map((o) => o.policyObserveMs[0])).toFixed(0)} ms for the policy   (target < 200 ms)`);
  console.log(`peak RSS of the jarvis-db process                 ${(Math.max(...ours.map((o) => o.maxRssKB)) / 1024).toFixed(1)} MB`);
  const tm = best.timings;
  console.log(`where the archive's time goes (summed over batches; the chunk writes and commits overlap the next batch): lock keys ${secs(tm.selectMs)} s, delete + return rows ${secs(tm.deleteMs)} s, gzip + fsync + publish ${secs(tm.writeMs)} s, commit ${secs(tm.commitMs)} s; jarvis-db process CPU ${secs(best.cpuMs)} s`);
} finally {
  await stopSandbox(join(work, 'sandbox'));
  await rm(work, { recursive: true, force: true });
}
