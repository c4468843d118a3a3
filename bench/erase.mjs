// Benchmark (issue 19): erasing one user across PostgreSQL, Chroma and Redis with the real CLI.
//  A sandbox (PostgreSQL, Redis, Chroma); `jarvis-db init --seed --scale SCALE`, which fills the
//  three stores (the Chroma collection `memories`: one 384-float record per memory row with
//  memory_id and user_id metadata; Redis: `session:<id>` per live session). Then, for
//  the USERS users holding the most memories, `node bin/jarvis-db.js erase --user ID
//  --auto-approve` (a new process each: config, lock, journal, tombstone, the three stores),
//  timed from spawn to exit, and `erase --verify --user ID` after it. Target: under 1 s each.
//  Beside it, the erase_user action's own duration from the run's journal (tombstone and the three
//  stores, without the process start and the config), which a loaded machine distorts less.
// Usage: npm run build && node bench/erase.mjs [SCALE=0.1] [USERS=7]
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { ChromaClient } from 'chromadb';

const SCALE = Number(process.argv[2] ?? 0.1);
const USERS = Number(process.argv[3] ?? 7);
const ROOT = new URL('..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/jarvis-db.js');
const sandbox = await import(new URL('../dist/sandbox/index.js', import.meta.url).href);

const dir = await mkdtemp(join(tmpdir(), 'jarvis-bench-erase-'));
await chmod(dir, 0o755);
const cleanup = async () => { await sandbox.stopSandbox(dir).catch(() => undefined); await rm(dir, { recursive: true, force: true }); };
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const ms = (n) => `${Math.round(n)} ms`;

function timed(args, env) {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' });
  const took = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0 && !args.includes('--verify')) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  return { ms: took, code: r.status, stdout: r.stdout };
}

try {
  const state = await sandbox.startSandbox({ dir, services: ['postgres', 'redis', 'chroma'], ownerPid: process.pid });
  const pgUrl = new URL(state.postgres.url);
  pgUrl.pathname = '/jarvis_bench';
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: bench', 'services:', '  postgres: { url: "${PG}" }', '  redis: { url: "${RD}" }', '  chroma: { url: "${CH}" }',
    'storage: { path: ./backups }', 'schema:', `  migrations: ${JSON.stringify(join(ROOT, 'migrations'))}`, '  target: latest', '  backupBefore: false',
    'links:',
    '  - { name: memory-vectors, postgres: { table: memory, key: id, user: user_id }, chroma: { collection: memories, metadata: memory_id } }',
    '  - { name: user-sessions, postgres: { table: sessions, key: id, user: user_id }, redis: { pattern: "session:{key}" } }',
    'erasure:', '  anonymize: { columns: { email: email, display_name: redact } }', '',
  ].join('\n'));
  const env = { ...process.env, PG: pgUrl.toString(), RD: state.redis.url, CH: state.chroma.url, JARVIS_DB_CONFIG: config, NO_COLOR: '1' };
  const seed = timed(['init', '--seed', '--scale', String(SCALE)], env);
  console.error(`seeded scale ${SCALE} in ${ms(seed.ms)}`);

  const db = new pg.Client({ connectionString: pgUrl.toString() });
  await db.connect();
  // The seed filled the other two stores from the rows (src/dataset/seed-stores.ts): the memories'
  // vectors in Chroma, the live sessions' keys in Redis.
  const u = new URL(state.chroma.url);
  const chroma = new ChromaClient({ host: u.hostname, port: Number(u.port) });
  const vectors = await (await chroma.getCollection({ name: 'memories', embeddingFunction: null })).count();
  const redis = new Redis(state.redis.url);
  const keys = (await redis.keys('session:*')).length;
  const top = (await db.query(`SELECT m.user_id::text AS id, count(*)::int AS memories,
      (SELECT count(*)::int FROM sessions s WHERE s.user_id = m.user_id) AS sessions,
      (SELECT count(*)::int FROM messages x JOIN conversations c ON c.id = x.conversation_id WHERE c.user_id = m.user_id) AS messages
    FROM memory m GROUP BY m.user_id ORDER BY count(*) DESC, m.user_id LIMIT $1`, [USERS])).rows;
  const [{ size }] = (await db.query('SELECT pg_size_pretty(pg_database_size(current_database())) AS size')).rows;
  await db.end();
  console.error(`${vectors} memory vectors in Chroma, ${keys} session keys in Redis, database ${size}`);

  const version = median(Array.from({ length: 5 }, () => timed(['--version'], env).ms));
  const runs = [];
  for (const user of top) {
    const erase = timed(['erase', '--user', user.id, '--auto-approve'], env);
    const journals = (await readdir(join(dir, 'backups', 'journal'))).sort();
    const done = (await readFile(join(dir, 'backups', 'journal', journals.at(-1)), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.event === 'action_done');
    const verify = timed(['erase', '--verify', '--user', user.id], env);
    if (verify.code !== 0) throw new Error(`user ${user.id} is not erased: ${verify.stdout}`);
    runs.push({ ...user, erase: erase.ms, action: done?.durationMs ?? NaN, verify: verify.ms, rows: /postgres: ([\d,]+) rows/.exec(erase.stdout)?.[1] });
  }
  await redis.quit();
  const lines = [
    `## erase (issue 19) — ${new Date().toISOString().slice(0, 10)}`, '',
    `\`node bench/erase.mjs ${SCALE} ${USERS}\` — \`jarvis-db init --seed --scale ${SCALE}\` (database ${size}) filling the three stores: ${vectors} memory vectors (384 floats) in the Chroma`,
    `collection memories and ${keys} live session keys in Redis, linked as \`links:\` declares; then for the ${USERS} users with the most memories`,
    '`node bin/jarvis-db.js erase --user ID --auto-approve` (a new process each), timed from spawn to exit, and `erase --verify` after it',
    `(exit 0 every time). Sandbox servers, 2 cores shared (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}).`, '',
    '| user | rows deleted | memories (vectors) | sessions (rows; the live ones have keys) | `erase` | its erase_user action | `erase --verify` |', '|---|---|---|---|---|---|---|',
    ...runs.map((r) => `| ${r.id} | ${r.rows} | ${r.memories} | ${r.sessions} | ${ms(r.erase)} | ${ms(r.action)} | ${ms(r.verify)} |`), '',
    `| what | median | max |`, '|---|---|---|',
    `| **\`jarvis-db erase --user\` (whole process)** | **${ms(median(runs.map((r) => r.erase)))}** | ${ms(Math.max(...runs.map((r) => r.erase)))} (target < 1000 ms) |`,
    `| the erase_user action (journal: tombstone, Chroma, Redis, PostgreSQL) | ${ms(median(runs.map((r) => r.action)))} | ${ms(Math.max(...runs.map((r) => r.action)))} |`,
    `| \`jarvis-db erase --verify --user\` | ${ms(median(runs.map((r) => r.verify)))} | ${ms(Math.max(...runs.map((r) => r.verify)))} |`,
    `| baseline: \`jarvis-db --version\` | ${ms(version)} | |`, '',
  ];
  console.log(lines.join('\n'));
} finally {
  await cleanup();
}
