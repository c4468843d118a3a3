// What the issue 8 target (archive + delete at least half as fast as one bare DELETE) is up
// against: the same 1,000,000 of 2,000,000 message rows removed four ways, each on its own copy
// of the same data, in one run. No compression and no files in any of them: these are floors
// of the server side alone.
//   bare        DELETE FROM messages WHERE created_at < X: one statement, one transaction.
//   batched     the batch rule of docs/architecture.md §4 rule 5 with nothing archived: 5000 keys locked
//               FOR UPDATE SKIP LOCKED in (created_at, id) keyset order, deleted by ctid, each
//               batch its own transaction.
//   +rows       the same, each deleted row returned as an archive chunk line (a JSON array of
//               the columns' text, built by the server, as jarvis-db's archive does).
//   jarvis-db   jarvis-db's archive statements on one connection: lock the keys, then delete
//               by primary key returning chunk lines (src/retention/sql.ts).
//   cli-gzip    the real CLI, `jarvis-db retention run --auto-approve` with the messages-archive
//   cli-zstd    policy (batches of 5000), everything included: process start, config, observation,
//               plan, the archive written (compressed, checksummed, fsynced, manifests published)
//               and the rows deleted; JARVIS_DB_ARCHIVE_COMPRESSION picks gzip level 1 or zstd level 1.
//               Its ratio to +rows (the batched floor with rows returned) is issue 17's target (≥ 0.85).
// Usage: node bench/retention-floor.mjs [SCALE]   (needs a built dist/ for the sandbox)
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startSandbox, stopSandbox } from '../dist/sandbox/index.js';
import { createMessagesTemplate, databaseUrl, mb, query, secs } from './retention-data.mjs';

const SCALE = Number(process.argv[2] ?? 1);
const ROWS = Math.round(2_000_000 * SCALE);
const BATCH = 5000;
const COLUMNS = ['id', 'conversation_id', 'role', 'content', 'tokens', 'metadata', 'created_at'];
const chunkLine = `array_to_json(ARRAY[${COLUMNS.map((c) => `t.${c}::text`).join(', ')}])::text`;
const keyset = (last) => (last ? `AND t.created_at >= $2 AND (t.created_at, t.id) > ($2::timestamptz, $3::bigint)` : '');
const lockKeys = (last, what) => `SELECT ${what} FROM messages t WHERE t.created_at < $1 ${keyset(last)} ORDER BY t.created_at, t.id LIMIT ${BATCH} FOR UPDATE OF t SKIP LOCKED`;

/** Runs batches until none is left; `batch` returns the batch's last (created_at, id) or null. */
async function batches(c, cutoff, batch) {
  let last = null;
  for (;;) {
    await c.query('BEGIN');
    const next = await batch(c, last ? [cutoff, ...last] : [cutoff], last);
    if (!next) { await c.query('ROLLBACK'); return; }
    await c.query('COMMIT');
    last = next;
  }
}

/** The largest (created_at, id) of rows whose last two columns are their created_at and id text (UTC, same format). */
function lastKey(rows) {
  if (!rows.length) return null;
  const n = rows[0].length;
  let m = rows[0];
  for (const r of rows) if (r[n - 2] > m[n - 2] || (r[n - 2] === m[n - 2] && BigInt(r[n - 1]) > BigInt(m[n - 1]))) m = r;
  return [m[n - 2], m[n - 1]];
}

const ways = {
  bare: (c, cutoff) => c.query(`DELETE FROM messages WHERE created_at < $1`, [cutoff]),
  batched: (c, cutoff) => batches(c, cutoff, async (c, values, last) => lastKey((await c.query({
    text: `WITH b AS (${lockKeys(last, 't.ctid AS tid')}) DELETE FROM messages t USING b WHERE t.ctid = b.tid RETURNING t.created_at::text, t.id::text`, values, rowMode: 'array',
  })).rows)),
  '+rows': (c, cutoff) => batches(c, cutoff, async (c, values, last) => lastKey((await c.query({
    text: `WITH b AS (${lockKeys(last, 't.ctid AS tid')}) DELETE FROM messages t USING b WHERE t.ctid = b.tid RETURNING ${chunkLine}, t.created_at::text, t.id::text`, values, rowMode: 'array',
  })).rows)),
  'jarvis-db': (c, cutoff) => batches(c, cutoff, async (c, values, last) => {
    const keys = (await c.query({ text: lockKeys(last, 't.created_at::text, t.id::text'), values, rowMode: 'array' })).rows;
    if (!keys.length) return null;
    await c.query({ text: `DELETE FROM messages t WHERE t.id = ANY($1::bigint[]) RETURNING ${chunkLine}`, values: [keys.map((k) => k[1])], rowMode: 'array' });
    return keys.at(-1);
  }),
};

const ROOT = new URL('..', import.meta.url).pathname;

/** The CLI's run on the bench database: wall and CPU time (its own process), archive bytes. */
async function cliRun(url, dir, compression) {
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', `storage: { path: ${JSON.stringify(join(dir, 'storage'))} }`,
    'retention:', '  policies:',
    '    - { name: messages-archive, table: messages, age: { column: created_at, olderThan: 365d }, action: archive, batchSize: 5000 }', '',
  ].join('\n'));
  const timeFile = join(dir, 'time.txt');
  const t0 = performance.now();
  execFileSync('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, process.execPath, join(ROOT, 'bin', 'jarvis-db.js'), 'retention', 'run', '--auto-approve'], {
    env: { ...process.env, JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config, JARVIS_DB_ARCHIVE_COMPRESSION: compression }, stdio: ['ignore', 'ignore', 'inherit'],
  });
  const ms = performance.now() - t0;
  const [user, sys, rssKB] = (await import('node:fs')).readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  let bytes = 0;
  let chunks = 0;
  const walk = async (d) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (/^chunk-\d+\.jsonl\./.test(e.name)) { bytes += (await stat(join(d, e.name))).size; chunks++; }
    }
  };
  await walk(join(dir, 'storage', 'archives'));
  // The action's own time from the journal, less the VACUUM it runs after the batches (no floor has one).
  const [journal] = await readdir(join(dir, 'storage', 'journal'));
  const done = (await import('node:fs')).readFileSync(join(dir, 'storage', 'journal', journal), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .find((e) => e.event === 'action_done' && e.action === 'retention.archive.messages-archive');
  const vac = /VACUUM \(ANALYZE\) of \S+ in ([\d.]+)(ms|s)/.exec(done.summary);
  const vacuumMs = vac ? Number(vac[1]) * (vac[2] === 's' ? 1000 : 1) : 0;
  return { ms, cpuMs: (user + sys) * 1000, rssKB, bytes, chunks, actionMs: done.durationMs, vacuumMs, rows: done.details.rows, longestBatchMs: done.details.longestBatchMs };
}

const work = await mkdtemp(join(tmpdir(), 'jarvis-bench-retention-floor-'));
const sandbox = await startSandbox({ dir: join(work, 'sandbox'), services: ['postgres'], ownerPid: process.pid });
const server = sandbox.postgres.url;
try {
  const now = new Date();
  await createMessagesTemplate(server, ROWS, now);
  const cutoff = new Date(now.getTime() - 365 * 86_400_000).toISOString();
  const times = {};
  const only = process.env.WAYS ? process.env.WAYS.split(',') : null;
  for (const [name, run] of Object.entries(ways)) {
    if (only && !only.includes(name) && name !== '+rows') continue;
    await query(server, `CREATE DATABASE bench_floor TEMPLATE bench_template`);
    await query(server, 'CHECKPOINT');
    const c = new pg.Client({ connectionString: databaseUrl(server, 'bench_floor') });
    await c.connect();
    await c.query(`SET TimeZone = 'UTC'`);
    const t0 = performance.now();
    await run(c, cutoff);
    times[name] = performance.now() - t0;
    const [{ left }] = (await c.query(`SELECT count(*)::int AS left FROM messages WHERE created_at < $1`, [cutoff])).rows;
    await c.end();
    if (left !== 0) throw new Error(`${name} left ${left} eligible rows`);
    await query(server, `DROP DATABASE bench_floor`);
    console.log(`${name.padEnd(10)} ${secs(times[name])} s   ratio to bare ${(times.bare / times[name]).toFixed(3)}`);
  }
  const [{ heap }] = await query(databaseUrl(server, 'bench_template'), `SELECT pg_table_size('messages')::float8 AS heap`);
  for (const compression of ['gzip', 'zstd']) {
    await query(server, `CREATE DATABASE bench_floor TEMPLATE bench_template`);
    await query(server, 'CHECKPOINT');
    const url = databaseUrl(server, 'bench_floor');
    const [{ eligible }] = await query(url, `SELECT count(*)::int AS eligible FROM messages WHERE created_at < now() - interval '365 days'`);
    const dir = await mkdtemp(join(work, `cli-${compression}-`));
    const r = await cliRun(url, dir, compression);
    const [{ left }] = await query(url, `SELECT count(*)::int AS left FROM messages WHERE created_at < now() - interval '365 days' - interval '1 minute'`);
    await query(server, `DROP DATABASE bench_floor`);
    if (left !== 0) throw new Error(`cli-${compression} left ${left} eligible rows`);
    // Per row: the CLI's cut-off is its own now, a few rows later than the floors' (1 row per ~31 s at scale 1).
    const floorPerRow = times['+rows'] / ROWS * 2;
    const archiveMs = r.actionMs - r.vacuumMs;
    console.log(`cli-${compression.padEnd(6)} archive + delete ${secs(archiveMs)} s for ${r.rows.toLocaleString('en-US')} rows: ratio to +rows ${(floorPerRow / (archiveMs / r.rows)).toFixed(3)}`
      + ` (longest batch ${r.longestBatchMs} ms; then VACUUM ${secs(r.vacuumMs)} s);`
      + ` whole CLI process ${secs(r.ms)} s: ratio ${(floorPerRow / (r.ms / r.rows)).toFixed(3)};`
      + ` CPU ${secs(r.cpuMs)} s, peak RSS ${(r.rssKB / 1024).toFixed(0)} MB, archive ${mb(r.bytes)} MB in ${r.chunks} chunks = ${(r.bytes / heap).toFixed(3)} of the table`);
    void eligible;
  }
} finally {
  await stopSandbox(join(work, 'sandbox'));
  await rm(work, { recursive: true, force: true });
}
