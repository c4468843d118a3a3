/**
 * Redis backups when things go wrong, on sandbox servers: replication forbidden (ACL, renamed
 * command), a wrong password, a disk-based transfer, a transfer cut by the server; and the
 * commands end to end through the compiled CLI (build first: npx tsc -p tsconfig.json).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups } from '../../../src/backup/catalog.js';
import { createBackup, restoreBackup } from '../../../src/backup/operations.js';
import { describeFailure } from '../../../src/cli/failure.js';
import { JarvisError } from '../../../src/errors.js';
import { startRedisServer, stopRedisServer } from '../../../src/scratch/servers.js';
import { redisDesired, redisServer, withClient } from './fixture.js';

async function hidden(storage: string): Promise<string[]> {
  const out: string[] = [];
  for (const schedule of await readdir(join(storage, 'redis')).catch(() => [] as string[])) {
    out.push(...(await readdir(join(storage, 'redis', schedule))).filter((n) => n.startsWith('.')));
  }
  return out;
}

function withCredentials(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

t.test('a user whose ACL denies SYNC gets a clear error suggesting method: logical, which then works', async (t) => {
  const server = await redisServer(t);
  await withClient(server.url, async (c) => {
    await c.call('ACL', 'SETUSER', 'cacheonly', 'on', '>cache-only-pass', '~*', '&*', '+@all', '-sync', '-psync');
    await c.set('k', 'v');
  });
  const url = withCredentials(server.url, 'cacheonly', 'cache-only-pass');
  const storage = t.testdir();
  const desired = redisDesired(url, storage, { method: 'rdb' });
  const error = await createBackup(desired, desired.backups[0]!, process.env).then(() => null, (e: unknown) => e);
  t.ok(error instanceof JarvisError, 'a JarvisError');
  const e = error as JarvisError;
  t.equal(e.code, 'BACKUP_FAILED');
  t.match(e.message, /^Redis at redis:\/\/cacheonly:\*\*\*@127\.0\.0\.1:\d+\/0 does not allow replication \(SYNC\), which method: rdb needs: NOPERM/);
  t.match(e.hint, /method: logical/);
  t.notMatch(describeFailure(e, false), /cache-only-pass/, 'no password in the output');
  t.same(await listBackups(storage), [], 'nothing published');
  t.same(await hidden(storage), [], 'nothing left behind');
  const logical = redisDesired(url, storage, { method: 'logical', name: 'fallback' });
  const entry = await createBackup(logical, logical.backups[0]!, process.env);
  t.same(entry.manifest.extra.databases, { 0: { keys: 1, expires: 0 } }, 'the logical method needs no replication rights');
});

t.test('a server with SYNC renamed away gets the same clear error', async (t) => {
  const dir = t.testdir();
  const server = await startRedisServer({ dir, config: { 'rename-command': 'SYNC ""' } });
  t.teardown(() => stopRedisServer(server.pid));
  const desired = redisDesired(server.url, join(dir, 'storage'), { method: 'rdb' });
  await t.rejects(createBackup(desired, desired.backups[0]!, process.env), {
    code: 'BACKUP_FAILED', message: /does not allow replication \(SYNC\), which method: rdb needs: ERR unknown command 'SYNC'/, hint: /method: logical/,
  });
});

t.test('a wrong password is one clear line without any password in it, for backups and restores', async (t) => {
  const server = await redisServer(t);
  const wrong = withCredentials(server.url, 'default', 'not-the-password-42');
  const storage = t.testdir();
  for (const method of ['rdb', 'logical']) {
    const desired = redisDesired(wrong, storage, { method, name: method });
    const error = await createBackup(desired, desired.backups[0]!, process.env).then(() => null, (e: unknown) => e);
    t.ok(error instanceof JarvisError, `${method}: a JarvisError`);
    const e = error as JarvisError;
    t.equal(e.code, 'SERVICE_UNREACHABLE');
    t.equal(e.message, `cannot log in to Redis at ${wrong.replace('not-the-password-42', '***')}: WRONGPASS invalid username-password pair or user is disabled.`);
    const printed = describeFailure(e, false);
    t.equal(printed.split('\n')[0], `error: ${e.message}`, 'the error is one line (a hint may follow)');
    t.notMatch(printed, /not-the-password-42/);
    t.notMatch(printed, new RegExp(server.password));
  }
  const good = redisDesired(server.url, storage, { method: 'logical', name: 'good' });
  const entry = await createBackup(good, good.backups[0]!, process.env);
  await t.rejects(restoreBackup(redisDesired(wrong, storage), entry.manifest.id, { force: false, env: process.env }), { code: 'SERVICE_UNREACHABLE', message: /cannot log in/ });
  const noPassword = withCredentials(server.url, '', '');
  await t.rejects(createBackup(redisDesired(noPassword, storage), good.backups[0]!, process.env), { code: 'SERVICE_UNREACHABLE', message: /NOAUTH/, hint: /needs a password/ });
});

t.test('a disk-based SYNC (a $<length> payload) is read as well as a diskless one', async (t) => {
  const server = await redisServer(t);
  await withClient(server.url, async (c) => {
    for (let i = 0; i < 200; i++) await c.set(`k${i}`, `v${i}`);
    await c.config('SET', 'repl-diskless-sync', 'no');
  });
  const desired = redisDesired(server.url, t.testdir(), { method: 'rdb' });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  t.match(entry.manifest.extra.rdb, { transfer: 'length', checksum: 'verified' });
  t.same(entry.manifest.extra.databases, { 0: { keys: 200, expires: 0 } });
});

t.test('a transfer the server cuts half-way fails the backup and publishes nothing', async (t) => {
  const server = await redisServer(t);
  await withClient(server.url, async (c) => {
    for (let i = 0; i < 40_000; i += 1000) {
      const p = c.pipeline();
      for (let j = i; j < i + 1000; j++) p.set(`key:${j}`, `value-${j}-${'x'.repeat(50)}`);
      await p.exec();
    }
    await c.config('SET', 'rdb-key-save-delay', '200'); // µs per key: a transfer of about 8 s
  });
  const storage = t.testdir();
  const desired = redisDesired(server.url, storage, { method: 'rdb' });
  const running = createBackup(desired, desired.backups[0]!, process.env);
  await new Promise((r) => setTimeout(r, 1500));
  await withClient(server.url, (c) => c.call('CLIENT', 'KILL', 'TYPE', 'replica'));
  await t.rejects(running, { code: 'BACKUP_FAILED', message: /closed the connection after \d+ bytes, before the end of the RDB \(transfer truncated\)/ });
  t.same(await listBackups(storage), [], 'nothing published');
  t.same(await hidden(storage), [], 'the partial file was removed');
  await withClient(server.url, (c) => c.config('SET', 'rdb-key-save-delay', '0'));
});

const BIN = new URL('../../../bin/jarvis-db.js', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('backup create, verify --restore-test and restore --flush through the CLI bring a wiped Redis back', async (t) => {
  const server = await redisServer(t);
  await withClient(server.url, async (c) => {
    for (let i = 0; i < 100; i++) await c.set(`session:${i}`, `data-${i}`, 'EX', 3600);
    await c.hset('user:1', { name: 'Ann' });
  });
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  redis: { url: "${JARVIS_REDIS_URL}" }', 'storage:', '  path: ./backups', 'backups:',
    '  - { name: redis-hourly, service: redis, cron: "0 * * * *", method: rdb, keep: { last: 3 } }',
    '  - { name: redis-logical, service: redis, cron: "30 * * * *", method: logical, keep: { last: 3 } }', '',
  ].join('\n'));
  const env = { JARVIS_REDIS_URL: server.url, JARVIS_DB_CONFIG: config };
  const create = cli(['backup', 'create', '--service', 'redis'], env);
  t.equal(create.code, 0, create.stderr);
  t.match(create.stdout, /\+ redis\/redis-hourly \S+: .* in 1 file,/);
  t.match(create.stdout, /\+ redis\/redis-logical \S+: .* in 1 file,/);
  const verify = cli(['backup', 'verify', '--all', '--restore-test'], env);
  t.equal(verify.code, 0, verify.stdout + verify.stderr);
  t.match(verify.stdout, /ok redis\/redis-hourly .*loaded into a throwaway redis-server: 101 keys/);
  t.match(verify.stdout, /ok redis\/redis-logical .*restored into a throwaway redis-server: 101 keys/);
  const list = JSON.parse(cli(['backup', 'list', '--json'], env).stdout) as { backups: { id: string; schedule: string }[] };
  const rdbId = list.backups.find((b) => b.schedule === 'redis-hourly')!.id;

  await withClient(server.url, async (c) => { await c.flushall(); await c.set('written-after-the-wipe', '1'); });
  const refused = cli(['restore', rdbId], env);
  t.equal(refused.code, 1, 'a key written after the wipe makes the target non-empty, though the backup does not hold it');
  t.match(refused.stderr, /^error: Redis at redis:\/\/default:\*\*\*@127\.0\.0\.1:\d+\/0 is not empty \(db 0 holds 1 key\); restoring backup \S+ would merge into it; nothing was written$/m);
  t.equal(await withClient(server.url, (c) => c.dbsize()), 1, 'nothing was written');
  const merged = cli(['restore', rdbId, '--force'], env);
  t.equal(merged.code, 0, merged.stderr);
  t.equal(await withClient(server.url, (c) => c.dbsize()), 102, '--force merges');
  const flushed = cli(['restore', rdbId, '--flush'], env);
  t.equal(flushed.code, 0, flushed.stderr);
  t.match(flushed.stdout, /restored \S+ \(rdb\) into redis:\/\/default:\*\*\*@127\.0\.0\.1:\d+\/0: 101 keys in db 0/);
  t.equal(await withClient(server.url, (c) => c.dbsize()), 101, '--flush: exactly the backup');
  t.equal(await withClient(server.url, (c) => c.get('session:7')), 'data-7');
  const again = cli(['restore', rdbId], env);
  t.equal(again.code, 1);
  t.match(again.stderr, /^error: Redis at redis:\/\/default:\*\*\*@.* is not empty \(db 0 holds 101 keys\); .*nothing was written$/m);
  t.match(again.stderr, /hint: pass --force/);

  const bad = cli(['backup', 'create', '--service', 'redis', '--schedule', 'redis-hourly'], { ...env, JARVIS_REDIS_URL: server.url.replace(server.password, 'wrong-pass-777') });
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^error: redis\/redis-hourly: cannot log in to Redis at redis:\/\/default:\*\*\*@127\.0\.0\.1:\d+\/0: WRONGPASS invalid username-password pair or user is disabled\.$/m);
  for (const out of [create, verify, refused, merged, flushed, again, bad]) {
    t.notMatch(out.stdout + out.stderr, server.password, 'the password is never printed');
    t.notMatch(out.stdout + out.stderr, 'wrong-pass-777');
  }
});

t.test('the engine plans a due Redis schedule and apply runs it, like a PostgreSQL one', async (t) => {
  const server = await redisServer(t);
  await withClient(server.url, (c) => c.set('k', 'v'));
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  redis: { url: "${JARVIS_REDIS_URL}" }', 'storage:', '  path: ./backups', 'backups:',
    '  - { name: redis-hourly, service: redis, cron: "0 * * * *", method: logical, keep: { last: 3 } }', '',
  ].join('\n'));
  const env = { JARVIS_REDIS_URL: server.url, JARVIS_DB_CONFIG: config };
  const before = cli(['plan', '--detailed-exitcode'], env);
  t.equal(before.code, 2, before.stderr);
  t.match(before.stdout, /\+ create_backup redis-hourly/);
  const apply = cli(['apply', '--auto-approve'], env);
  t.equal(apply.code, 0, apply.stdout + apply.stderr);
  const after = cli(['plan', '--detailed-exitcode'], env);
  t.equal(after.code, 0, after.stdout + after.stderr);
  t.match(after.stdout, /No changes/);
  const list = JSON.parse(cli(['backup', 'list', '--json'], env).stdout) as { backups: { service: string; schedule: string }[] };
  t.same(list.backups.map((b) => [b.service, b.schedule]), [['redis', 'redis-hourly']]);
  for (const out of [before, apply, after]) t.notMatch(out.stdout + out.stderr, server.password);
});
