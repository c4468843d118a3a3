/**
 * Recovery points on the sandbox (PostgreSQL, Redis, Chroma) through the compiled CLI (build
 * first): `backup create --service all` records a point; after the data changes in all three
 * stores, `restore --point ID` brings each back to it; `backup prune` keeps the members of the
 * newest point; a point whose member is gone is broken in `backup list` and refused by restore;
 * kill -9 during `backup create --service all` never leaves a published point naming a missing
 * backup.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { withSandbox } from '../helpers/sandbox.js';
import { withDb, sql } from './fixture.js';
import { seedCollections, snapshot } from './chroma/fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const cli = (args: string[], env: Record<string, string>) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

interface ListedPoint { id: string; members: { service: string; id: string }[]; broken: string[] | null }
const points = (env: Record<string, string>) => (JSON.parse(cli(['backup', 'list', '--json'], env).stdout) as { points: ListedPoint[] }).points;
const backupIds = (env: Record<string, string>) => (JSON.parse(cli(['backup', 'list', '--json'], env).stdout) as { backups: { id: string }[] }).backups.map((b) => b.id);

t.test('recovery points on PostgreSQL, Redis and Chroma', async (t) => {
  const state = await withSandbox(t, ['postgres', 'redis', 'chroma']);
  const pgUrl = withDb(state.postgres!.url, 'points_db');
  await sql(state.postgres!.url, 'CREATE DATABASE points_db');
  await sql(pgUrl, 'CREATE TABLE memory (id int primary key, body text); INSERT INTO memory SELECT i, md5(i::text) FROM generate_series(1, 500) i;');
  const redis = new Redis(state.redis!.url);
  t.teardown(() => redis.quit());
  for (let i = 0; i < 50; i++) await redis.set(`session:${i}`, `token-${i}`);
  await seedCollections(state.chroma!.url, 20);
  const chromaBefore = await snapshot(state.chroma!.url, 'memories-l2');
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${PG}" }', '  redis: { url: "${RD}" }', '  chroma: { url: "${CH}" }', 'storage: { path: ./backups }', 'backups:',
    '  - { name: pg, service: postgres, cron: "0 3 * * *", keep: { last: 2 } }',
    '  - { name: rd, service: redis, cron: "0 3 * * *", keep: { last: 1 } }',
    '  - { name: ch, service: chroma, cron: "0 3 * * *", keep: { last: 1 } }', '',
  ].join('\n'));
  const env = { PG: pgUrl, RD: state.redis!.url, CH: state.chroma!.url, JARVIS_DB_CONFIG: config };

  const create = cli(['--json', 'backup', 'create', '--service', 'all'], env);
  t.equal(create.code, 0, create.stderr);
  const made = JSON.parse(create.stdout) as { points: { id: string; members: { service: string; id: string }[] }[] };
  t.equal(made.points.length, 1, 'one point');
  const point = made.points[0]!;
  t.same(point.members.map((m) => m.service), ['postgres', 'redis', 'chroma']);
  t.same(points(env).map((p) => [p.id, p.broken]), [[point.id, null]], 'backup list shows it whole');
  t.match(cli(['backup', 'list'], env).stdout, new RegExp(`${point.id} +all .* postgres \\S+, redis \\S+, chroma \\S+ +ok`));

  await t.test('restore --point brings all three stores back to the point', async (t) => {
    await sql(pgUrl, 'DELETE FROM memory WHERE id > 250; INSERT INTO memory VALUES (9999, \'after\');');
    await redis.del('session:1', 'session:2');
    await redis.set('session:new', 'x');
    const client = (await import('./chroma/fixture.js')).client(state.chroma!.url);
    await (await client.getCollection({ name: 'memories-l2' })).delete({ ids: ['l2-00000', 'l2-00001'] });
    const refused = cli(['restore', '--point', point.id], env);
    t.equal(refused.code, 1, 'non-empty targets need the flags restore needs');
    t.notMatch(refused.stderr, /\n\s+at /, 'no stack trace');
    const r = cli(['restore', '--point', point.id.slice(0, 17), '--target-db', 'points_db', '--force', '--flush'], env);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, new RegExp(`Recovery point ${point.id} restored \\(3 backups\\)`));
    const rows = await sql(pgUrl, 'SELECT count(*)::int AS n, max(id) AS top FROM memory');
    t.same(rows[0]!.rows[0], { n: 500, top: 500 }, 'PostgreSQL rows as at the point');
    t.same((await redis.keys('session:*')).sort(), Array.from({ length: 50 }, (_, i) => `session:${i}`).sort(), 'Redis keys as at the point');
    t.equal(await redis.get('session:1'), 'token-1');
    t.same((await snapshot(state.chroma!.url, 'memories-l2')).records, chromaBefore.records, 'Chroma records as at the point');
  });

  await t.test('backup prune keeps the members of the newest point', async (t) => {
    t.equal(cli(['backup', 'create', '--service', 'redis'], env).code, 0);
    t.equal(cli(['backup', 'create', '--service', 'chroma'], env).code, 0);
    const prune = cli(['--json', 'backup', 'prune'], env);
    t.equal(prune.code, 0, prune.stderr);
    const out = JSON.parse(prune.stdout) as { pruned: { id: string }[]; kept: { id: string; reasons: string[] }[] };
    t.same(out.pruned, [], 'redis and chroma keep last=1, but the point keeps its older members');
    for (const m of point.members.filter((x) => x.service !== 'postgres')) {
      t.same(out.kept.find((k) => k.id === m.id)?.reasons, [`point ${point.id}`], `${m.service} ${m.id} is kept by the point`);
    }
    t.same(points(env).map((p) => p.broken), [null]);
  });

  await t.test('a point whose member is gone is broken in backup list and refused by restore --point', async (t) => {
    const chroma = point.members.find((m) => m.service === 'chroma')!;
    t.equal(cli(['backup', 'delete', chroma.id], env).code, 0);
    t.match(points(env)[0]!.broken, [new RegExp(`its chroma backup ${chroma.id} \\(ch\\) is gone`)]);
    t.match(cli(['backup', 'list'], env).stderr, new RegExp(`! recovery point ${point.id} is broken: its chroma backup ${chroma.id} \\(ch\\) is gone`));
    const r = cli(['restore', '--point', point.id, '--target-db', 'points_db', '--force', '--flush'], env);
    t.equal(r.code, 1);
    t.equal(r.stderr.split('\n')[0], `error: recovery point ${point.id} is broken: its chroma backup ${chroma.id} (ch) is gone; nothing was restored`);
  });

  await t.test('kill -9 during backup create --service all leaves no published point naming a missing backup', async (t) => {
    const run = (extra: Record<string, string>) => spawn(process.execPath, [BIN, 'backup', 'create', '--service', 'all'], { env: { ...process.env, ...env, ...extra }, stdio: ['ignore', 'ignore', 'pipe'] });
    // Paused just before the point's manifest: its members are published, the point is not.
    const paused = run({ JARVIS_DB_TEST_PAUSE_AT: 'point-before-manifest' });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      paused.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('test pause at point-before-manifest')) resolve(); });
      paused.on('exit', () => reject(new Error(`exited before the pause: ${err}`)));
    });
    paused.kill('SIGKILL');
    const before = points(env).length;
    t.equal(before, 1, 'the killed run published no point');
    // Killed at moments through the backups: every point listed is whole.
    for (const ms of [300, 900, 1800]) {
      const child = run({});
      child.stderr!.resume();
      const exited = new Promise((r) => child.once('exit', r));
      await new Promise((r) => setTimeout(r, ms));
      child.kill('SIGKILL');
      await exited;
      const ids = new Set(backupIds(env));
      for (const p of points(env).slice(0, -1)) {
        t.same(p.broken, null, `killed after ${ms} ms: point ${p.id} is whole`);
        t.ok(p.members.every((m) => ids.has(m.id)), `killed after ${ms} ms: point ${p.id} names only published backups`);
      }
    }
    const next = cli(['backup', 'create', '--service', 'all'], env);
    t.equal(next.code, 0, next.stderr);
    t.match(next.stdout, /\+ recovery point \S+: postgres \S+, redis \S+, chroma \S+/);
    t.equal(points(env)[0]!.broken, null, 'the next run records a whole point');
  });
});
