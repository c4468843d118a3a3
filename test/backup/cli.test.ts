/**
 * The backup and restore commands end to end (compiled CLI: build first with npx tsc).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireApplyLock } from '../../src/engine/lock.js';
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

t.test('backup create and prune wait for the apply lock, then fail clearly, naming the holder', async (t) => {
  const db = await freshDatabase(t);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./backups',
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 1 } }', '',
  ].join('\n'));
  const env = { JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
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
