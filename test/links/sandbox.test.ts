/**
 * The three stores through their links on the sandbox (PostgreSQL, Redis, Chroma), through the
 * compiled CLI (build first): `init --seed` fills all three so that they agree; the health check
 * `consistency` and `verify --point` report a vector deleted by hand as an orphan naming the link
 * and the id; a point restores all three to one moment (zero orphans after `restore --point`);
 * the sampled live check finds the same; a link naming an unknown table, column or collection is a
 * broken link naming its file:line, and it and a service down stop only their link.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/load.js';
import { checkLinksLive } from '../../src/links/live.js';
import { ChromaRest } from '../../src/services/chroma.js';
import { countRecords, findCollection } from '../../src/services/chroma-collections.js';
import { withSandbox } from '../helpers/sandbox.js';
import { sql, withDb } from '../backup/fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const MIGRATIONS = new URL('../../migrations/', import.meta.url).pathname;
const SCALE = '0.005';

const cli = (args: string[], env: Record<string, string>) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env, NO_COLOR: '1' }, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

const LINKS = [
  'links:',
  '  - name: memory-vectors',
  '    postgres: { table: memory, key: id, user: user_id }',
  '    chroma: { collection: memories, metadata: memory_id }',
  '  - name: user-sessions',
  '    postgres: { table: sessions, key: id, user: user_id, until: expires_at }',
  '    redis: { pattern: "session:{key}" }',
];

async function config(dir: string, extraLinks: string[] = []): Promise<string> {
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, [
    'version: 1', 'services:', '  postgres: { url: "${PG}" }', '  redis: { url: "${RD}" }', '  chroma: { url: "${CH}" }', 'storage: { path: ./backups }',
    `schema: { migrations: ${JSON.stringify(MIGRATIONS)}, backupBefore: false }`, 'backups:',
    '  - { name: pg, service: postgres, cron: "0 3 * * *", keep: { last: 5 } }',
    '  - { name: rd, service: redis, method: rdb, cron: "0 3 * * *", keep: { last: 5 } }',
    '  - { name: ch, service: chroma, cron: "0 3 * * *", keep: { last: 5 } }',
    ...LINKS, ...extraLinks, '',
  ].join('\n'));
  return file;
}

interface HealthJson { status: string; findings: { check: string; status: string; message: string }[]; samples: { key: string; value: number | null; detail?: string }[] }
const consistency = (env: Record<string, string>) => {
  const r = cli(['--json', 'health', 'check', '--service', 'consistency'], env);
  return { code: r.code, stderr: r.stderr, health: JSON.parse(r.stdout) as HealthJson };
};
const value = (h: HealthJson, key: string) => h.samples.find((s) => s.key === key)?.value;
const newestPoint = (env: Record<string, string>) => (JSON.parse(cli(['--json', 'backup', 'list'], env).stdout) as { points: { id: string }[] }).points[0]!.id;

t.test('the links between the seeded stores', async (t) => {
  const state = await withSandbox(t, ['postgres', 'redis', 'chroma']);
  const pgUrl = withDb(state.postgres!.url, 'links_db');
  const dir = t.testdir();
  const file = await config(dir);
  const env = { PG: pgUrl, RD: state.redis!.url, CH: state.chroma!.url, JARVIS_DB_CONFIG: file };
  const redis = new Redis(state.redis!.url);
  t.teardown(() => redis.quit());
  const rest = new ChromaRest({ url: state.chroma!.url });
  t.teardown(() => rest.close());

  await t.test('init --seed fills Chroma and Redis from the rows: counts match, metadata and TTLs as the rows say', async (t) => {
    const r = cli(['init', '--seed', '--scale', SCALE], env);
    t.equal(r.code, 0, r.stderr);
    const [counts] = (await sql(pgUrl, `SELECT (SELECT count(*) FROM memory)::int AS memory,
      (SELECT count(*) FROM sessions WHERE expires_at > now() + interval '10 seconds')::int AS live_sessions,
      (SELECT count(*) FROM sessions WHERE expires_at > now() - interval '10 seconds')::int AS live_sessions_max,
      (SELECT count(*) FROM cache_entries WHERE expires_at > now() + interval '10 seconds')::int AS live_cache,
      (SELECT count(*) FROM cache_entries WHERE expires_at > now() - interval '10 seconds')::int AS live_cache_max`))[0]!.rows as Record<string, number>[];
    const c = counts!;
    const collection = await findCollection(rest, 'memories');
    t.ok(collection, 'the collection memories exists');
    t.equal(await countRecords(rest, collection!.id), c.memory, 'one record per memory row');
    t.match(r.stdout, new RegExp(`^\\+ seeded chroma in .*: collection memories, ${c.memory} records$`, 'm'));
    const sessions = (await redis.keys('session:*')).length;
    const cache = (await redis.keys('cache:*')).length;
    t.ok(sessions >= c.live_sessions! && sessions <= c.live_sessions_max!, `a key per live session (${sessions}, rows ${c.live_sessions}-${c.live_sessions_max})`);
    t.ok(cache >= c.live_cache! && cache <= c.live_cache_max!, `a key per live cache entry (${cache}, rows ${c.live_cache}-${c.live_cache_max})`);
    t.ok(sessions > 0 && cache > 0);
    const [session] = (await sql(pgUrl, `SELECT id::text, user_id::text, extract(epoch FROM expires_at - now())::float8 AS ttl FROM sessions WHERE expires_at > now() + interval '1 hour' LIMIT 1`))[0]!.rows as { id: string; user_id: string; ttl: number }[];
    t.equal(await redis.get(`session:${session!.id}`), session!.user_id, 'the session key holds its user id');
    const ttl = await redis.pttl(`session:${session!.id}`);
    t.ok(Math.abs(ttl / 1000 - session!.ttl) < 60, `its TTL is what is left until expires_at (${ttl} ms)`);
    const page = JSON.parse((await rest.call('POST', `${rest.collectionsPath}/${collection!.id}/get`, JSON.stringify({ ids: ['1'], include: ['metadatas', 'documents'] }))).toString()) as { metadatas: Record<string, number>[]; documents: string[] };
    const [row] = (await sql(pgUrl, 'SELECT user_id::int, content FROM memory WHERE id = 1'))[0]!.rows as { user_id: number; content: string }[];
    t.same(page.metadatas[0], { memory_id: 1, user_id: row!.user_id });
    t.equal(page.documents[0], row!.content);

    const again = cli(['init', '--seed', '--scale', SCALE], env);
    t.equal(again.code, 1, 'a second seed is refused');
    t.match(again.stderr, /^error: cannot seed: the Chroma collection memories at http:\/\/127\.0\.0\.1:\d+ already has records; --seed fills empty stores$/m);
    t.notMatch(again.stderr, /\n\s+at /, 'no stack trace');
  });

  let before = '';
  await t.test('the seeded stores agree: the live check finds no orphan; a point taken now verifies exactly', async (t) => {
    const { code, health, stderr } = consistency(env);
    t.equal(code, 0, stderr);
    t.equal(value(health, 'consistency.orphans.memory-vectors.postgres'), 0);
    t.equal(value(health, 'consistency.orphans.user-sessions.redis'), 0);
    t.match(health.samples.find((s) => s.key === 'consistency.keys_compared.memory-vectors')?.detail, /^all \d+ rows and \d+ records$/, 'it says it compared everything');
    const created = cli(['backup', 'create', '--service', 'all'], env);
    t.equal(created.code, 0, created.stderr);
    before = newestPoint(env);
    const v = cli(['verify', '--point', before], env);
    t.equal(v.code, 0, v.stdout + v.stderr);
    t.match(v.stdout, /^✓ memory-vectors +exactly: \d+ rows and \d+ records: no orphans$/m);
    t.match(v.stdout, /^✓ user-sessions +exactly: \d+ rows \(\d+ not past their until\) and \d+ keys: no orphans$/m);
  });

  await t.test('a vector deleted from Chroma by hand is an orphan naming the link and the id, live and in a point taken after', async (t) => {
    const collection = (await findCollection(rest, 'memories'))!;
    await rest.call('POST', `${rest.collectionsPath}/${collection.id}/delete`, JSON.stringify({ ids: ['7'] }));
    await redis.set('session:00000000-0000-0000-0000-00000000beef', 'ghost');
    const { code, health } = consistency(env);
    t.equal(code, 1, 'WARNING');
    const rows = health.findings.find((f) => f.check === 'consistency.orphans.memory-vectors.postgres')!;
    t.equal(rows.status, 'WARNING');
    t.match(rows.message, /consistency\.orphans \(memory-vectors, postgres\) 1 \(rows without their record, e\.g\. 7\)/);
    t.match(health.findings.find((f) => f.check === 'consistency.orphans.user-sessions.redis')!.message, /keys without their row, e\.g\. 00000000-0000-0000-0000-00000000beef/);
    const prom = cli(['health', 'check', '--service', 'consistency', '--format', 'prometheus'], env);
    t.match(prom.stdout, /^jarvis_db_consistency_orphans\{link="memory-vectors",side="postgres"\} 1$/m);

    const desired = await loadConfig(file, env);
    const [sampled] = await checkLinksLive(desired, { fullLimit: 10, sampleSize: 100_000, links: ['memory-vectors'] });
    t.match(sampled, { mode: 'sample', missing: { count: 1, examples: ['7'] } }, 'the sampled check (large stores) finds it too when the sample holds the row');
    t.match((sampled as { note: string }).note, /^a sample of .* \(more than 10 keys on a side\)$/);
    const [sessions] = await checkLinksLive(desired, { fullLimit: 10, sampleSize: 100_000, links: ['user-sessions'] });
    t.match(sessions, { mode: 'sample', missing: { count: 0 }, orphans: { count: 1, examples: ['00000000-0000-0000-0000-00000000beef'] } }, 'and the sampled Redis side its orphan key');
    const [late] = await checkLinksLive(desired, { budgetMs: 0, sampleSize: 100_000, links: ['memory-vectors'] });
    t.match(late, { mode: 'sample', missing: { count: 1, examples: ['7'] } }, 'a full comparison out of its time budget gives way to the sample');
    t.match((late as { note: string }).note, /\(every key could not be read within 0 s\)$/);

    t.equal(cli(['backup', 'create', '--service', 'all'], env).code, 0);
    const after = newestPoint(env);
    const v = cli(['verify', '--point', after], env);
    t.equal(v.code, 1, 'orphans: exit 1');
    t.match(v.stdout, /^✗ memory-vectors .*: 1 orphan$/m);
    t.match(v.stdout, /^ {4}1 row without its record in chroma \(side postgres\): e\.g\. 7$/m);
    t.match(v.stdout, /^ {4}1 key in redis without its row \(side redis\): e\.g\. 00000000-0000-0000-0000-00000000beef$/m, 'the RDB\'s keys are read');
    const json = JSON.parse(cli(['--json', 'verify', '--point', after], env).stdout) as { agree: boolean; links: { link: string; missing: { examples: string[] } }[] };
    t.equal(json.agree, false);
    t.same(json.links.find((l) => l.link === 'memory-vectors')!.missing.examples, ['7']);
  });

  await t.test('restore --point brings all three stores back to one moment: zero orphans after it', async (t) => {
    const r = cli(['restore', '--point', before, '--target-db', 'links_db', '--force', '--flush'], env);
    t.equal(r.code, 0, r.stderr);
    const { code, health, stderr } = consistency(env);
    t.equal(code, 0, stderr);
    for (const key of ['memory-vectors.postgres', 'memory-vectors.chroma', 'user-sessions.postgres', 'user-sessions.redis']) t.equal(value(health, `consistency.orphans.${key}`), 0, key);
  });

  await t.test('a link naming an unknown table is a broken link naming its file:line; a service down stops only its links', async (t) => {
    const other = t.testdir();
    const broken = await config(other, [
      '  - name: typo', '    postgres: { table: memroy, key: id }', '    chroma: { collection: memories, metadata: memory_id }',
      '  - name: no-column', '    postgres: { table: memory, key: uuid }', '    chroma: { collection: memories, metadata: memory_id }',
      '  - name: no-collection', '    postgres: { table: memory, key: id }', '    chroma: { collection: memoirs, metadata: memory_id }',
    ]);
    const { code, health } = consistency({ ...env, JARVIS_DB_CONFIG: broken, RD: 'redis://127.0.0.1:1/0' });
    t.equal(code, 2, 'CRITICAL');
    const brokenLinks = health.findings.find((f) => f.check === 'consistency.broken_links')?.message;
    t.match(brokenLinks, /^consistency\.broken_links 3 /);
    t.match(brokenLinks, /jarvis-db\.yaml:19 links\[2\]\.postgres\.table: table memroy does not exist/);
    t.match(brokenLinks, /jarvis-db\.yaml:22 links\[3\]\.postgres\.key: table memory has no column uuid/);
    t.match(brokenLinks, /jarvis-db\.yaml:25 links\[4\]\.chroma\.collection: collection memoirs does not exist in Chroma/);
    t.equal(value(health, 'consistency.orphans.memory-vectors.postgres'), 0, 'the other links are still compared');
    t.equal(health.findings.find((f) => f.check === 'consistency.orphans.user-sessions.redis')?.status, 'UNKNOWN', 'the link on the Redis that is down is UNKNOWN');
  });
});
