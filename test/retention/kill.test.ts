/**
 * docs/architecture.md §4 rule 3, as a property: for random data and random kill -9 moments during
 * archive runs (`jarvis-db retention run` killed with SIGKILL, several rounds, at random times
 * and at each dangerous step), the rows left in the tables plus the rows in the verified
 * archives are exactly the original rows (none lost, none twice), and restoring the archives
 * gives back the original tables. The child runs the compiled CLI (build first: npx tsc -p tsconfig.json).
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { settle } from '../../src/retention/archives.js';
import { scanArchives } from '../../src/retention/store.js';
import { desiredWith, freshDatabase, sql } from './fixture.js';
import { accountFor, archivedRows, rowsAsText, runCli, sessionsGone } from './helpers.js';
import type { Row } from '../../src/retention/chunk.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const PAUSES = ['archive-selected', 'chunk-data-written', 'chunk-published', 'before-commit', 'committed'];

/** A small seeded PRNG (mulberry32), so that a failing seed can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('kill -9 at random moments of archive runs loses no row, archives none twice, and the archives restore the original tables', async (t) => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
  const seed = Number(process.env.JARVIS_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.comment(`seed ${seed} (replay with JARVIS_TEST_SEED=${seed})`);
  const rnd = random(seed);
  const url = await freshDatabase(t);
  const conversations = 400 + Math.floor(rnd() * 400);
  const messages = 15_000 + Math.floor(rnd() * 10_000);
  await sql(url, `INSERT INTO users (email) SELECT 'u' || i || '@example.com' FROM generate_series(1, 10) i`);
  const original = { conversations: new Map<string, Row>(), messages: new Map<string, Row>() };
  /** Adds conversations and messages (their messages point at the new conversations) and records them as original rows. */
  const addRows = async (c: number, m: number) => {
    await sql(url, `SELECT setseed(${rnd().toFixed(6)});
      INSERT INTO conversations (user_id, title, created_at, updated_at)
        SELECT 1 + i % 10, CASE WHEN random() < 0.1 THEN NULL ELSE 'conv ' || i || ' ' || md5(random()::text) END, now() - random() * interval '400 days', now() - random() * interval '300 days'
          FROM generate_series(1, ${c}) i;
      INSERT INTO messages (conversation_id, role, content, tokens, metadata, created_at)
        SELECT (SELECT max(id) FROM conversations) - floor(random() * ${c})::int, (ARRAY['user','assistant'])[1 + (random() > 0.5)::int], repeat(md5(random()::text), 1 + (random() * 4)::int) || E' \\u00e9\\n"q"',
               CASE WHEN random() < 0.2 THEN NULL ELSE (random() * 500)::int END, jsonb_build_object('r', random()), now() - random() * interval '300 days'
          FROM generate_series(1, ${m}) i;`);
    // Keys are never reused: a row in the table that is not yet an original one is new.
    for (const table of ['conversations', 'messages'] as const) {
      for (const [k, row] of await rowsAsText(url, table)) if (!original[table].has(k)) original[table].set(k, row);
    }
  };
  await addRows(conversations, messages);
  /** Keeps enough old rows that the next kill lands in the middle of a run, however fast the machine archives. */
  const topUp = async () => {
    const [{ n }] = await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM messages WHERE created_at < now() - interval '60 days'`);
    if (n < messages) await addRows(conversations, messages);
  };
  const dir = t.testdir();
  // Small batches: a whole run takes several seconds, so that every random kill lands in the middle of one.
  const conversationBatch = 2 + Math.floor(rnd() * 6);
  const messageBatch = 20 + Math.floor(rnd() * 60);
  t.comment(`${conversations} conversations, ${messages} messages; batches of ${conversationBatch} conversations and ${messageBatch} messages`);
  await writeFile(join(dir, 'jarvis-db.yaml'), [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./storage }', 'retention:', '  policies:',
    `    - { name: conversations-archive, table: conversations, age: { column: updated_at, olderThan: 90d }, action: archive, batchSize: ${conversationBatch},`,
    '        children: [ { table: messages, column: conversation_id } ] }',
    `    - { name: messages-archive, table: messages, age: { column: created_at, olderThan: 60d }, action: archive, batchSize: ${messageBatch} }`, '',
  ].join('\n'));
  const env = { ...process.env, JARVIS_PG_URL: url };
  const args = ['retention', 'run', '--auto-approve', '-c', join(dir, 'jarvis-db.yaml')];
  const storage = join(dir, 'storage');
  const desired = desiredWith([], { url, storage });

  const check = async (label: string) => {
    const archived = await archivedRows(storage);
    t.same(archived.failed, [], `${label}: every archive verifies`);
    t.equal(archived.pending, 0, `${label}: no chunk left unsettled`);
    const left = { conversations: await rowsAsText(url, 'conversations'), messages: await rowsAsText(url, 'messages') };
    t.same(accountFor(original.conversations, left.conversations, archived.rows['public.conversations'] ?? []), [], `${label}: conversations = table + archives`);
    t.same(accountFor(original.messages, left.messages, archived.rows['public.messages'] ?? []), [], `${label}: messages = table + archives`);
  };

  const moments: { pause?: string; afterMs?: number }[] = [...PAUSES.map((pause) => ({ pause })), ...Array.from({ length: 6 }, () => ({ afterMs: 500 + Math.floor(rnd() * 1500) }))];
  let settledCommitted = 0;
  let killedMidRun = 0;
  let settledVoid = 0;
  for (const moment of moments) {
    const label = moment.pause ? `killed at ${moment.pause}` : `killed after ${moment.afterMs} ms`;
    const r = await runCli(args, env, moment);
    if (r.code !== null && r.code !== 0) t.fail(`${label}: the run failed on its own: ${r.stderr}`);
    if (r.signal === 'SIGKILL' && r.stdout === '') killedMidRun++;
    else t.comment(`${label}: not killed mid-run: ${r.signal} ${r.code} ${JSON.stringify(r.stdout.slice(0, 300))} ${JSON.stringify(r.stderr.slice(-300))}`);
    await sessionsGone(url);
    const s = await settle(desired, env);
    settledCommitted += s.committed;
    settledVoid += s.voided;
    t.same(s.pending, [], `${label}: every interrupted chunk settles`);
    await check(label);
    await topUp();
  }
  t.equal(killedMidRun, moments.length, 'every kill landed before the run finished');
  t.ok(settledVoid >= 2, `chunks whose delete never committed were voided (${settledVoid})`);
  t.ok(settledCommitted >= 1, `chunks whose delete committed before the kill were kept (${settledCommitted})`);

  // One more kill with a chunk published and its delete uncommitted, left for the next run to settle.
  await runCli(args, env, { pause: 'chunk-published' });
  await sessionsGone(url);
  const last = await runCli(args, env);
  t.equal(last.code, 0, `a last run completes: ${last.stderr}`);
  // The chunk at the pause, and possibly the batch overlapped with it on the other connection.
  t.match(last.stderr, /settled the chunks of interrupted archive runs: 0 kept \(their delete committed\), [12] void and removed/, 'the next run settles what the kill left before it plans');
  await check('after the last run');
  const [{ old }] = await sql<{ old: number }>(url, `SELECT count(*)::int AS old FROM messages WHERE created_at < now() - interval '60 days'`);
  t.equal(old, 0, 'nothing eligible is left');

  for (const archive of (await scanArchives(storage)).archives) {
    const v = await runCli(['archive', 'verify', archive.header.id, '-c', join(dir, 'jarvis-db.yaml')], env);
    t.equal(v.code, 0, `archive verify ${archive.header.id}: ${v.stdout.trim()}`);
  }
  // Parents first: restore the archives of conversations, then those of messages.
  const archives = (await scanArchives(storage)).archives.sort((a, b) => (a.header.policy === b.header.policy ? 0 : a.header.policy === 'conversations-archive' ? -1 : 1));
  for (const archive of archives) {
    const r = await runCli(['archive', 'restore', archive.header.id, '-c', join(dir, 'jarvis-db.yaml')], env);
    t.equal(r.code, 0, `archive restore ${archive.header.id}: ${r.stderr}`);
  }
  t.same(Object.fromEntries(await rowsAsText(url, 'conversations')), Object.fromEntries(original.conversations), 'restoring the archives gives back the original conversations');
  t.same(Object.fromEntries(await rowsAsText(url, 'messages')), Object.fromEntries(original.messages), 'and the original messages');
});
