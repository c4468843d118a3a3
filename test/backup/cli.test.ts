/**
 * The backup and restore commands end to end (compiled CLI: build first with npx tsc).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireApplyLock } from '../../src/engine/lock.js';
import { runsOfAction } from '../helpers/journal.js';
import { freshDatabase, sql } from './fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('backup create, list, verify and restore through the CLI', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 3000) i;`);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./backups',
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", timezone: UTC, format: directory, jobs: 2, compression: 1, keep: { last: 3 }, verify: checksum }', '',
  ].join('\n'));
  const env = { JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
  const create = cli(['backup', 'create', '--service', 'postgres'], env);
  t.equal(create.code, 0, create.stderr);
  t.notMatch(create.stdout + create.stderr, new URL(db.url).password, 'the password is never printed');
  const list = cli(['backup', 'list', '--json'], env);
  t.equal(list.code, 0, list.stderr);
  const backups = JSON.parse(list.stdout).backups as { id: string; dir: string; schedule: string; verified: boolean | null }[];
  t.equal(backups.length, 1);
  t.equal(backups[0]!.schedule, 'nightly');
  const id = backups[0]!.id;
  t.match(cli(['backup', 'list'], env).stdout, new RegExp(`^${id} +postgres +nightly .* checksum \\d+s ago\n`, 'm'), 'a new backup is verified by the checksums written with it');
  t.equal(cli(['backup', 'verify', id], env).code, 0);
  const manifest = JSON.parse(await readFile(join(backups[0]!.dir, 'manifest.json'), 'utf8')) as { files: { name: string }[] };
  const victim = join(backups[0]!.dir, manifest.files[0]!.name);
  const bytes = await readFile(victim);
  bytes[0]! ^= 0xff;
  await writeFile(victim, bytes);
  const bad = cli(['backup', 'verify', id], env);
  t.equal(bad.code, 1);
  t.match(bad.stdout + bad.stderr, manifest.files[0]!.name);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  const refused = cli(['restore', id], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /damaged/);
  bytes[0]! ^= 0xff;
  await writeFile(victim, bytes);
  const restored = cli(['restore', id], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /3,000 rows, row counts match/);
});

/** A project with one PostgreSQL schedule keeping its newest backup, storage in ./backups. */
async function nightlyProject(t: { testdir(): string }, url: string): Promise<{ dir: string; env: Record<string, string> }> {
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./backups',
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 1 } }', '',
  ].join('\n'));
  return { dir, env: { JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config } };
}

t.test('backup create and prune wait for the apply lock, then fail clearly, naming the holder', async (t) => {
  const db = await freshDatabase(t);
  const { dir, env } = await nightlyProject(t, db.url);
  const lock = await acquireApplyLock(join(dir, 'backups'), { timeoutMs: 0, runId: 'test-holder' });
  try {
    for (const args of [['backup', 'create', '--service', 'postgres'], ['backup', 'prune']]) {
      const r = cli([...args, '--lock-timeout', '1s'], env);
      t.equal(r.code, 1, `${args.join(' ')} fails while another holds the lock`);
      t.match(r.stderr, new RegExp(`holds the lock on .*pid ${process.pid}.*run test-holder`), 'and names the holder');
    }
    t.equal(cli(['backup', 'list', '--json'], env).stdout.includes('"backups": []'), true, 'nothing was written');
  } finally {
    await lock.release();
  }
  t.equal(cli(['backup', 'create', '--service', 'postgres', '--lock-timeout', '1s'], env).code, 0, 'once released, the backup runs');
});

t.test('backup create, prune and restore are applies: each run is journaled, and restore waits for the apply lock, then fails clearly', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 10);`);
  const { dir, env } = await nightlyProject(t, db.url);
  const storage = join(dir, 'backups');
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = cli(['--json', 'backup', 'create', '--service', 'postgres'], env);
    t.equal(r.code, 0, r.stderr);
    ids.push((JSON.parse(r.stdout) as { backups: { id: string }[] }).backups[0]!.id);
  }
  const action = (id: string): [string, string | null][] => [['run_started', null], ['plan', null], ['action_started', id], ['action_done', id], ['run_finished', null]];
  t.same(await runsOfAction(storage, 'backup.create.nightly'), [action('backup.create.nightly'), action('backup.create.nightly')], 'one journal per backup create');

  const pruned = cli(['backup', 'prune'], env);
  t.equal(pruned.code, 0, pruned.stderr);
  t.match(pruned.stdout, new RegExp(`^- deleted nightly ${ids[0]} .*\n1 backup pruned, 1 kept\\.$`, 'm'));
  t.same(await runsOfAction(storage, `backup.prune.${ids[0]}`), [action(`backup.prune.${ids[0]}`)], 'backup prune is journaled');

  const lock = await acquireApplyLock(storage, { timeoutMs: 0, runId: 'test-holder' });
  try {
    const r = cli(['restore', ids[1]!, '--target-db', `${db.name}_copy`, '--lock-timeout', '1s'], env);
    t.equal(r.code, 1, 'restore fails while another holds the lock');
    t.match(r.stderr, /waiting up to 1s for the lock on /);
    t.match(r.stderr, new RegExp(`^error: another apply holds the lock on .*pid ${process.pid}.*run test-holder.*; gave up after 1s$`, 'm'), 'and names the holder');
    t.same(await runsOfAction(storage, `backup.restore.${ids[1]}`), [], 'nothing ran');
  } finally {
    await lock.release();
  }
  const restored = cli(['restore', ids[1]!, '--target-db', `${db.name}_copy`], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /10 rows, row counts match/);
  t.same(await runsOfAction(storage, `backup.restore.${ids[1]}`), [action(`backup.restore.${ids[1]}`)], 'restore is journaled');
});

t.test('backup create --service all: a service that is down fails alone, the others are backed up', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1);`);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', '  redis: { url: "redis://127.0.0.1:1/0" }', 'storage:', '  path: ./backups',
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }',
    '  - { name: redis-hourly, service: redis, cron: "0 * * * *", method: logical, keep: { last: 3 } }', '',
  ].join('\n'));
  const env = { JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
  const r = cli(['backup', 'create', '--service', 'all'], env);
  t.equal(r.code, 1, 'it exits 1');
  t.match(r.stdout, /^\+ postgres\/nightly \S+: .* in \d+ files?, /m, 'postgres is backed up');
  t.match(r.stderr, /^error: redis\/redis-hourly: .*127\.0\.0\.1:1/m, 'redis fails, naming the service');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const json = cli(['--json', 'backup', 'create', '--service', 'all'], env);
  t.equal(json.code, 1);
  const out = JSON.parse(json.stdout) as { backups: { service: string }[]; failures: string[] };
  t.same(out.backups.map((b) => b.service), ['postgres']);
  t.match(out.failures, [/^redis\/redis-hourly: /]);
});
