/**
 * Retention next to a live application: writers are not blocked for long while batches run
 * (row locks are held for one batch only, rows a writer holds are skipped), and a message
 * written into a conversation while it is being archived is never deleted unarchived by the
 * ON DELETE CASCADE (docs/architecture.md §4 rule 3).
 */
import t from 'tap';
import pg from 'pg';
import { sqlState } from '../../src/services/postgres.js';
import { desiredWith, freshDatabase, policy, seed, sql } from './fixture.js';
import { archivedRows, planAndRun, rowsAsText } from './helpers.js';
import { variant } from '../engine/fixtures/plan-fixtures.js';

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

t.test('writers are not blocked for long while an archive runs, and a row a writer holds is skipped, not waited for', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 200, messages: 30_000, days: 180 });
  const storage = t.testdir();
  const desired = desiredWith([policy({ name: 'messages-archive', table: 'messages', action: 'archive', age: { column: 'created_at', olderThan: '90d' }, batchSize: 1000 })], { url, storage });
  const eligible = (await sql<{ id: string }>(url, `SELECT id::text FROM messages WHERE created_at < now() - interval '91 days' ORDER BY created_at`)).map((r) => r.id);
  t.ok(eligible.length > 10_000, `${eligible.length} rows to archive`);

  // A writer that holds one old row for the whole run, in an open transaction.
  const holder = await client(url);
  const held = eligible[Math.floor(eligible.length / 2)]!;
  await holder.query('BEGIN');
  await holder.query(`UPDATE messages SET tokens = 424242 WHERE id = $1`, [held]);

  // Writers that keep inserting new rows and updating old ones (the rows being archived).
  const writer = await client(url);
  const latencies: number[] = [];
  let updatedOld = 0;
  let running = true;
  const writing = (async () => {
    let i = 0;
    while (running) {
      const started = performance.now();
      if (i % 2 === 0) await writer.query(`INSERT INTO messages (conversation_id, role, content, created_at) VALUES (1 + $1::int % 200, 'user', 'live', now())`, [i]);
      else {
        const r = await writer.query(`UPDATE messages SET content = content || ' (edited)' WHERE id = $1`, [eligible[(i * 7919) % eligible.length]]);
        updatedOld += r.rowCount ?? 0;
      }
      latencies.push(performance.now() - started);
      i++;
    }
  })();
  const started = Date.now();
  const { outcomes, plan } = await planAndRun(desired);
  const runMs = Date.now() - started;
  running = false;
  await writing;
  await holder.query('COMMIT');
  await holder.end();
  await writer.end();

  const details = outcomes[0]!.details as { rows: number; longestBatchMs: number; batches: number };
  t.comment(`archived ${details.rows} rows in ${runMs} ms, ${details.batches} batches, longest ${details.longestBatchMs} ms; ${latencies.length} writes, ${updatedOld} updates of old rows`);
  t.ok(latencies.length > 50, 'the writers kept writing during the run');
  t.ok(updatedOld > 0, 'some updates hit rows not yet archived');
  const worst = Math.max(...latencies);
  t.ok(worst < 1500, `the longest write waited ${worst.toFixed(0)} ms (under 1.5 s)`);
  const cutoff = variant(plan.actions[0], 'retention_archive').params.cutoff;
  const left = await sql<{ id: string; tokens: number | null; content: string }>(url, `SELECT id::text, tokens, content FROM messages WHERE created_at < $1 ORDER BY id`, [cutoff]);
  t.ok(left.some((r) => r.id === held && r.tokens === 424242), 'the row a writer held for the whole run was skipped, not waited for, and keeps its update');
  // Besides it, only rows the other writer was updating at the very moment a batch looked at them.
  const others = left.filter((r) => r.id !== held);
  t.ok(others.length <= details.batches, `${others.length} other rows skipped while a writer held them`);
  for (const r of others) t.match(r.content, /\(edited\)$/, `row ${r.id} was skipped because a writer was updating it`);
  const archived = (await archivedRows(storage)).rows['public.messages']!;
  const edited = archived.filter((r) => r[3]!.endsWith('(edited)')).length;
  t.ok(edited > 0, `${edited} archived rows carry the edit a writer made before their batch`);
});

t.test('messages written into conversations while they are archived are never deleted unarchived by the cascade', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 300, messages: 6000, days: 200 });
  const storage = t.testdir();
  const desired = desiredWith([policy({
    name: 'conversations-archive', table: 'conversations', action: 'archive', age: { column: 'updated_at', olderThan: '90d' }, batchSize: 5,
    children: [{ table: 'messages', column: 'conversation_id' }],
  })], { url, storage });
  const old = (await sql<{ id: string }>(url, `SELECT id::text FROM conversations WHERE updated_at < now() - interval '90 days'`)).map((r) => r.id);
  const writer = await client(url);
  const inserted: string[] = [];
  let refused = 0;
  let running = true;
  const writing = (async () => {
    let i = 0;
    while (running) {
      try {
        const r = await writer.query<{ id: string }>(`INSERT INTO messages (conversation_id, role, content, created_at) VALUES ($1, 'user', 'late reply', now()) RETURNING id::text`, [old[(i * 31) % old.length]]);
        inserted.push(r.rows[0]!.id);
      } catch (e) {
        if (sqlState(e) !== '23503') throw e; // the conversation is archived: the insert is refused, not lost
        refused++;
      }
      i++;
    }
  })();
  await planAndRun(desired);
  running = false;
  await writing;
  await writer.end();
  t.comment(`${inserted.length} messages written into old conversations during the run, ${refused} refused after their conversation was archived`);
  t.ok(inserted.length > 20 && refused > 0, 'writes raced with the archive');
  const left = await rowsAsText(url, 'messages');
  const archivedIds = new Set((await archivedRows(storage)).rows['public.messages']!.map((r) => r[0]!));
  const lost = inserted.filter((id) => !left.has(id) && !archivedIds.has(id));
  t.same(lost, [], 'every message written is in the table or in the archive');
  const orphans = await sql(url, `SELECT m.id FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id WHERE c.id IS NULL`);
  t.same(orphans, []);
});
