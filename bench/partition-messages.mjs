// Does range-partitioning `messages` by month on created_at pay (issue 17, item 4)? On two copies
// of the seeded JARVIS database (`jarvis-db init --seed`), one with messages as it is and one
// with messages converted to monthly partitions (primary key (id, created_at), the same indexes
// and foreign key), measures:
//   read     the product's hot read: a conversation's messages in order (by conversation_id,
//            no bound on created_at, so no partition can be pruned), for random conversations;
//   archive  the retention of policies/conversations.yaml through the real CLI: conversations-
//            archive (conversations by updated_at, their messages as children, in batches),
//            then messages-archive (messages by created_at: whole months on the partitioned copy).
// Usage: node bench/partition-messages.mjs [SCALE] [READS]   (build first)
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startSandbox, stopSandbox } from '../dist/sandbox/index.js';
import { databaseUrl, query, secs } from './retention-data.mjs';

const SCALE = process.argv[2] ?? '0.2';
const READS = Number(process.argv[3] ?? 3000);
const ROOT = new URL('..', import.meta.url).pathname;
const jdb = (args, env, config) => execFileSync(process.execPath, [join(ROOT, 'bin', 'jarvis-db.js'), ...args], { env: { ...process.env, ...env, JARVIS_DB_CONFIG: config }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const PARTITION = `
  ALTER TABLE messages RENAME TO messages_plain;
  ALTER INDEX messages_pkey RENAME TO messages_plain_pkey;
  ALTER INDEX messages_created_at_idx RENAME TO messages_plain_created_at_idx;
  ALTER INDEX messages_conversation_id_created_at_idx RENAME TO messages_plain_conversation_id_created_at_idx;
  ALTER SEQUENCE messages_id_seq RENAME TO messages_plain_id_seq;
  CREATE TABLE messages (LIKE messages_plain INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY) PARTITION BY RANGE (created_at);
  DO $$ DECLARE m date; BEGIN
    FOR m IN SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM messages_plain UNION SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date ORDER BY 1 LOOP
      EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)', 'messages_p' || to_char(m, 'YYYYMMDD'), m::text || ' 00:00:00+00', (m + interval '1 month')::date::text || ' 00:00:00+00');
    END LOOP; END $$;
  INSERT INTO messages SELECT * FROM messages_plain;
  ALTER TABLE messages ADD PRIMARY KEY (id, created_at);
  ALTER TABLE messages ADD FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE;
  CREATE INDEX messages_created_at_idx ON messages (created_at);
  CREATE INDEX messages_conversation_id_created_at_idx ON messages (conversation_id, created_at);
  SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT max(id) FROM messages_plain));
  DROP TABLE messages_plain;`;

async function reads(url) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const [{ n }] = (await c.query(`SELECT max(id)::int AS n FROM conversations`)).rows;
  const times = [];
  for (let i = 0; i < READS; i++) {
    const id = 1 + Math.floor(Math.random() * n);
    const t0 = performance.now();
    await c.query({ name: 'read', text: `SELECT id, role, content, created_at FROM messages WHERE conversation_id = $1 ORDER BY created_at`, values: [id] });
    times.push(performance.now() - t0);
  }
  await c.end();
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], p95: times[Math.floor(times.length * 0.95)], mean: times.reduce((a, b) => a + b, 0) / times.length };
}

const work = await mkdtemp(join(tmpdir(), 'jarvis-bench-partition-messages-'));
const sandbox = await startSandbox({ dir: join(work, 'sandbox'), services: ['postgres'], ownerPid: process.pid });
const server = sandbox.postgres.url;
try {
  const config = join(work, 'jarvis-db.yaml');
  await writeFile(config, ['version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', `storage: { path: ${JSON.stringify(join(work, 'storage'))} }`,
    `schema: { migrations: ${JSON.stringify(join(ROOT, 'migrations'))}, target: latest }`, `retention: { include: [${JSON.stringify(join(ROOT, 'policies', 'conversations.yaml'))}] }`, ''].join('\n'));
  const template = databaseUrl(server, 'bench_messages');
  console.log(`seeding at scale ${SCALE}...`);
  jdb(['init', '--seed', '--scale', SCALE], { JARVIS_PG_URL: template }, config);
  await query(template, 'CHECKPOINT');
  const [size] = await query(template, `SELECT count(*)::int AS rows, pg_total_relation_size('messages')::float8 AS bytes, count(*) FILTER (WHERE created_at < now() - interval '90 days')::int AS old FROM messages`);
  console.log(`messages: ${size.rows.toLocaleString('en-US')} rows (${size.old.toLocaleString('en-US')} older than 90 days), ${(size.bytes / 1e6).toFixed(1)} MB with indexes`);
  for (const shape of ['plain', 'monthly']) {
    const db = `bench_${shape}`;
    await query(server, `CREATE DATABASE ${db} TEMPLATE bench_messages`);
    const url = databaseUrl(server, db);
    if (shape === 'monthly') {
      const t0 = performance.now();
      await query(url, PARTITION);
      await query(url, 'VACUUM ANALYZE messages');
      const [{ n }] = await query(url, `SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'messages'::regclass`);
      console.log(`monthly: converted in ${secs(performance.now() - t0)} s into ${n} partitions`);
    }
    await query(url, 'CHECKPOINT');
    const r = await reads(url);
    const out = {};
    for (const policy of ['conversations-archive', 'messages-archive']) {
      const t0 = performance.now();
      const text = jdb(['retention', 'run', '--policy', policy, '--auto-approve'], { JARVIS_PG_URL: url }, config);
      out[policy] = { ms: performance.now() - t0, text: text.trim().split('\n').filter((l) => /done in|archived|drop/.test(l)).map((l) => l.trim()).join(' | ') };
    }
    console.log(`${shape.padEnd(8)} read of a conversation's messages (${READS}): median ${r.median.toFixed(3)} ms, p95 ${r.p95.toFixed(3)} ms, mean ${r.mean.toFixed(3)} ms`);
    for (const [policy, o] of Object.entries(out)) console.log(`${shape.padEnd(8)} ${policy}: ${secs(o.ms)} s (whole CLI)  ${o.text.slice(0, 400)}`);
  }
} finally {
  await stopSandbox(join(work, 'sandbox'));
  await rm(work, { recursive: true, force: true });
}
