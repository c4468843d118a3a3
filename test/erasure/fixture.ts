/**
 * The erasure tests' JARVIS: a sandbox PostgreSQL (migrated by `jarvis-db init`), Redis and
 * Chroma holding three users' data the way the links describe it: memory rows and their vectors
 * (memory_id and user_id metadata, plus one vector of user 1 with user_id only), sessions and
 * their `session:<id>` keys, and keys no link names. The compiled CLI (build first). The whole
 * schema, partitioned metrics included (`restore --point --force` replaces them).
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChromaClient } from 'chromadb';
import { Redis } from 'ioredis';
import { sql, withDb } from '../backup/fixture.js';
import { withSandbox, type SandboxState } from '../helpers/sandbox.js';

export const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const MIGRATIONS = new URL('../../migrations/', import.meta.url).pathname;

export const cli = (args: string[], env: Record<string, string>) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env, NO_COLOR: '1' }, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

type T = Parameters<typeof withSandbox>[0] & { testdir(): string };

export interface Jarvis { state: SandboxState; pgUrl: string; env: Record<string, string>; redis: Redis; chroma: ChromaClient; storage: string; config: string }

export const USERS = [1, 2, 3];

export async function jarvis(t: T, db = 'erase_db'): Promise<Jarvis> {
  const state = await withSandbox(t, ['postgres', 'redis', 'chroma']);
  const pgUrl = withDb(state.postgres!.url, db);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${PG}" }', '  redis: { url: "${RD}" }', '  chroma: { url: "${CH}" }', 'storage: { path: ./backups }',
    'schema:', `  migrations: ${JSON.stringify(MIGRATIONS)}`, '  target: latest', '  backupBefore: false',
    'backups:',
    '  - { name: pg, service: postgres, cron: "0 3 * * *", keep: { last: 5 } }',
    '  - { name: rd, service: redis, cron: "0 3 * * *", keep: { last: 5 } }',
    '  - { name: ch, service: chroma, cron: "0 3 * * *", keep: { last: 5 } }',
    'links:',
    '  - name: memory-vectors',
    '    postgres: { table: memory, key: id }',
    '    chroma: { collection: memories, metadata: memory_id }',
    '  - name: user-sessions',
    '    postgres: { table: sessions, key: id, user: user_id }',
    '    redis: { pattern: "session:{key}" }',
    'erasure:',
    '  anonymize: { columns: { email: email, display_name: redact } }', '',
  ].join('\n'));
  const env = { PG: pgUrl, RD: state.redis!.url, CH: state.chroma!.url, JARVIS_DB_CONFIG: config };
  const init = cli(['init'], env);
  if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
  await sql(pgUrl, `
    INSERT INTO users (id, email, display_name) VALUES (1, 'ada@example.com', 'Ada'), (2, 'bob@example.com', 'Bob'), (3, 'cy@example.com', 'Cy');
    INSERT INTO conversations (id, user_id, title) SELECT u * 10 + c, u, 'talk ' || c FROM generate_series(1, 3) u, generate_series(1, 2) c;
    INSERT INTO messages (conversation_id, role, content) SELECT c.id, 'user', 'hello ' || c.id || ' #' || m FROM conversations c, generate_series(1, 3) m;
    INSERT INTO memory (id, user_id, conversation_id, content) SELECT u * 100 + m, u, u * 10 + 1, 'memory ' || m FROM generate_series(1, 3) u, generate_series(1, 4) m;
    INSERT INTO sessions (user_id, token_hash, expires_at) SELECT u, md5(u::text || s), now() + interval '1 day' FROM generate_series(1, 3) u, generate_series(1, 2) s;
  `);
  const redis = new Redis(state.redis!.url);
  t.teardown(() => redis.quit());
  const sessions = (await sql(pgUrl, 'SELECT id::text FROM sessions'))[0]!.rows as { id: string }[];
  for (const s of sessions) await redis.set(`session:${s.id}`, 'token');
  await redis.set('cache:global', 'x');
  const u = new URL(state.chroma!.url);
  const chroma = new ChromaClient({ host: u.hostname, port: Number(u.port) });
  const collection = await chroma.createCollection({ name: 'memories', embeddingFunction: null });
  const memories = (await sql(pgUrl, 'SELECT id, user_id FROM memory ORDER BY id'))[0]!.rows as { id: string; user_id: string }[];
  await collection.add({
    ids: [...memories.map((m) => `mem-${m.id}`), 'loose-1'],
    embeddings: [...memories.map((m) => [Number(m.id), 1, 0]), [1, 1, 1]],
    metadatas: [...memories.map((m) => ({ memory_id: Number(m.id), user_id: Number(m.user_id) })), { user_id: 1 }],
  });
  return { state, pgUrl, env, redis, chroma, storage: join(dir, 'backups'), config };
}

/** What each store holds of each user: rows per table, the users row, vectors, session keys. */
export async function holdings(j: Jarvis): Promise<Record<string, unknown>> {
  const [rows] = await sql(j.pgUrl, `SELECT u.id::int AS user, u.email, u.display_name, u.anonymized_at IS NOT NULL AS anonymized,
      (SELECT count(*)::int FROM conversations c WHERE c.user_id = u.id) AS conversations,
      (SELECT count(*)::int FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.user_id = u.id) AS messages,
      (SELECT count(*)::int FROM memory m WHERE m.user_id = u.id) AS memory,
      (SELECT count(*)::int FROM sessions s WHERE s.user_id = u.id) AS sessions
    FROM users u ORDER BY u.id`);
  const collection = await j.chroma.getCollection({ name: 'memories' });
  const records = await collection.get({ include: ['metadatas' as never] });
  const vectors: Record<string, string[]> = {};
  records.ids.forEach((id, i) => { const user = String((records.metadatas[i] as { user_id?: number } | null)?.user_id); (vectors[user] ??= []).push(id); });
  for (const v of Object.values(vectors)) v.sort();
  return { rows: rows!.rows, vectors, keys: (await j.redis.keys('*')).filter((k) => !k.startsWith('jarvis-db')).sort() };
}

export async function sessionKeys(j: Jarvis, user: number): Promise<string[]> {
  const rows = (await sql(j.pgUrl, `SELECT id::text FROM sessions WHERE user_id = ${user}`))[0]!.rows as { id: string }[];
  return rows.map((r) => `session:${r.id}`).sort();
}
