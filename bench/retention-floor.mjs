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
// Usage: node bench/retention-floor.mjs [SCALE]   (needs a built dist/ for the sandbox)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startSandbox, stopSandbox } from '../dist/sandbox/index.js';
import { createMessagesTemplate, databaseUrl, query, secs } from './retention-data.mjs';

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

const work = await mkdtemp(join(tmpdir(), 'jarvis-bench-retention-floor-'));
const sandbox = await startSandbox({ dir: join(work, 'sandbox'), services: ['postgres'], ownerPid: process.pid });
const server = sandbox.postgres.url;
try {
  const now = new Date();
  await createMessagesTemplate(server, ROWS, now);
  const cutoff = new Date(now.getTime() - 365 * 86_400_000).toISOString();
  const times = {};
  for (const [name, run] of Object.entries(ways)) {
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
} finally {
  await stopSandbox(join(work, 'sandbox'));
  await rm(work, { recursive: true, force: true });
}
