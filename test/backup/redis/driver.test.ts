/**
 * Redis backups end to end on sandbox servers: backup of a rich keyspace by both methods,
 * restore into another server, and a walk of both servers key by key.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createBackup, restoreBackup } from '../../../src/backup/operations.js';
import { LOGICAL_MAGIC } from '../../../src/backup/redis/logical.js';
import { RESTORE_MARKER_KEY } from '../../../src/backup/redis/driver.js';
import { BINARY_KEY, FIVE_MB, dbsize, populateRich, redisDesired, redisServer, walk, withClient, withUrl } from './fixture.js';

const BIN = new URL('../../../bin/jarvis-db.js', import.meta.url).pathname;
const KEY = 'JARVIS_TEST_REDIS_KEY';
process.env[KEY] = 'a passphrase for the redis tests';

t.test('a rich keyspace round-trips by method rdb and method logical: every key\'s type, value and TTL match on both servers', async (t) => {
  const source = await redisServer(t);
  const target = await redisServer(t);
  await populateRich(source.url);
  const expected = { 0: await walk(source.url, 0), 1: await walk(source.url, 1) };
  t.equal(Object.keys(expected[0]).length, 20, 'the source holds the rich keyspace');
  t.equal(expected[0][BINARY_KEY.toString('hex')]?.type, 'string', 'with a binary key');
  t.ok(expected[0][Buffer.from('session:1').toString('hex')]!.expiresAtSecond! > Date.now() / 1000, 'with TTLs');
  const storage = t.testdir();
  const variants = [
    { label: 'rdb, uncompressed', schedule: { method: 'rdb', name: 'rdb' }, file: 'dump.rdb', flush: false },
    { label: 'logical, gzip (default)', schedule: { method: 'logical', name: 'logical' }, file: 'keys.jdbr.gz', flush: true },
    { label: 'rdb, gzip 6, encrypted', schedule: { method: 'rdb', name: 'rdbgz', compression: 6 }, file: 'dump.rdb.gz.enc', flush: true, encryption: KEY },
    { label: 'logical, uncompressed, encrypted', schedule: { method: 'logical', name: 'logicalplain', compression: 0 }, file: 'keys.jdbr.enc', flush: true, encryption: KEY },
  ];
  for (const v of variants) {
    const desired = redisDesired(source.url, storage, v.schedule, { encryption: v.encryption });
    const entry = await createBackup(desired, desired.backups[0]!, process.env);
    const m = entry.manifest;
    t.same(m.files.map((f) => f.name), [v.file], `${v.label}: stored as ${v.file}`);
    t.equal(m.method, v.schedule.method);
    t.match(m.serverVersion, /^\d+\.\d+\.\d+$/, `${v.label}: server version recorded`);
    t.same(m.extra.databases, { 0: { keys: 20, expires: 4 }, 1: { keys: 3, expires: 1 } }, `${v.label}: key counts per database recorded`);
    t.equal(m.compression, v.schedule.compression ? `gzip:${v.schedule.compression}` : v.schedule.method === 'logical' && v.schedule.compression === undefined ? 'gzip:1' : 'none');
    if (v.schedule.method === 'rdb') {
      const rdb = m.extra.rdb as { bytes: number; checksum: string; transfer: string };
      t.ok(rdb.bytes > FIVE_MB, `${v.label}: the RDB size is recorded (${rdb.bytes})`);
      t.equal(rdb.checksum, 'verified', `${v.label}: CRC64 checked while streaming`);
      t.equal(rdb.transfer, 'eof-mark', 'a diskless transfer');
    }
    const r = await restoreBackup(withUrl(desired, target.url), m.id, { force: false, flush: v.flush, env: process.env });
    t.match(r.summary, /restored .* 23 keys in db 0, 1/, r.summary);
    t.same(await walk(target.url, 0), expected[0], `${v.label}: db 0 identical, key by key`);
    t.same(await walk(target.url, 1), expected[1], `${v.label}: db 1 identical, key by key`);
  }
});

t.test('services.redis.databases limits a logical backup; by default it covers every database holding keys', async (t) => {
  const source = await redisServer(t);
  await populateRich(source.url);
  await withClient(source.url, (c) => c.set('db5:key', 'v'), 5);
  const storage = t.testdir();
  const all = redisDesired(source.url, storage, { method: 'logical', name: 'all' });
  const everything = await createBackup(all, all.backups[0]!, process.env);
  t.same(everything.manifest.extra.coveredDatabases, [0, 1, 5]);
  t.same(Object.keys(everything.manifest.extra.databases as object), ['0', '1', '5']);
  const some = redisDesired(source.url, storage, { method: 'logical', name: 'some' }, { databases: [1, 7] });
  const one = await createBackup(some, some.backups[0]!, process.env);
  t.same(one.manifest.extra.coveredDatabases, [1, 7]);
  t.same(one.manifest.extra.databases, { 1: { keys: 3, expires: 1 } }, 'only db 1 (db 7 is empty)');
});

t.test('keys that expired since the backup are skipped by the restore, the others restored', async (t) => {
  const source = await redisServer(t);
  const storage = t.testdir();
  await withClient(source.url, async (c) => {
    await c.set('short', 'gone soon', 'PX', 1500);
    await c.set('long', 'stays', 'EX', 3600);
    await c.set('forever', 'stays');
  });
  for (const method of ['logical', 'rdb']) {
    const target = await redisServer(t);
    const desired = redisDesired(source.url, storage, { method, name: method });
    if (method === 'rdb') await withClient(source.url, (c) => c.set('short', 'gone soon', 'PX', 1500));
    const entry = await createBackup(desired, desired.backups[0]!, process.env);
    t.same(entry.manifest.extra.databases, { 0: { keys: 3, expires: 2 } }, `${method}: the short-lived key is in the backup`);
    await new Promise((r) => setTimeout(r, 2000));
    const r = await restoreBackup(withUrl(desired, target.url), entry.manifest.id, { force: false, env: process.env });
    t.equal(r.details.restored, 2, `${method}: two keys restored`);
    if (method === 'logical') t.equal(r.details.expired, 1, 'the expired key skipped and counted');
    t.same((await withClient(target.url, (c) => c.keys('*'))).sort(), ['forever', 'long'], `${method}: the expired key is not in the target`);
  }
});

t.test('restore refuses, before writing anything, a target holding keys; --force merges and replaces the same keys; --flush empties first', async (t) => {
  const source = await redisServer(t);
  await withClient(source.url, async (c) => {
    for (let i = 0; i < 50; i++) await c.set(`k${i}`, `source-${i}`);
    await c.hset('h', { a: '1' });
  });
  await withClient(source.url, (c) => c.set('other-db', 'x'), 2);
  const storage = t.testdir();
  for (const method of ['logical', 'rdb']) {
    const target = await redisServer(t);
    await withClient(target.url, async (c) => {
      await c.set('k7', 'target value');
      await c.set('unrelated', 'keep me');
    });
    const desired = redisDesired(source.url, storage, { method, name: method });
    const entry = await createBackup(desired, desired.backups[0]!, process.env);
    const onTarget = withUrl(desired, target.url);
    await t.rejects(restoreBackup(onTarget, entry.manifest.id, { force: false, env: process.env }), {
      code: 'RESTORE_REFUSED', message: /^Redis at redis:\/\/default:\*\*\*@127\.0\.0\.1:\d+\/0 is not empty \(db 0 holds 2 keys\); restoring backup .* would merge into it; nothing was written$/,
    }, `${method}: refused`);
    t.equal(await dbsize(target.url, 0), 2, `${method}: nothing was written to db 0`);
    t.equal(await dbsize(target.url, 2), 0, `${method}: nothing was written to db 2`);
    t.equal(await withClient(target.url, (c) => c.get('k7')), 'target value');

    const forced = await restoreBackup(onTarget, entry.manifest.id, { force: true, env: process.env });
    t.equal(forced.details.restored, 52);
    t.equal(await withClient(target.url, (c) => c.get('k7')), 'source-7', `${method}: --force replaced the existing key`);
    t.equal(await withClient(target.url, (c) => c.get('unrelated')), 'keep me', `${method}: --force leaves other keys alone`);

    const flushed = await restoreBackup(onTarget, entry.manifest.id, { force: false, flush: true, env: process.env });
    t.equal(flushed.details.restored, 52);
    t.equal(await withClient(target.url, (c) => c.get('unrelated')), null, `${method}: --flush emptied the target first`);
    t.equal(await dbsize(target.url, 0), 51);
    t.equal(await dbsize(target.url, 2), 1);
  }
});

t.test('a restore into a server holding only keys that the backup does not have is refused without --force, naming the server, db and count; --force merges', async (t) => {
  const source = await redisServer(t);
  const target = await redisServer(t);
  await withClient(source.url, (c) => c.set('from-backup', '1'));
  await withClient(target.url, (c) => c.set('already-there', '2'));
  const dir = t.testdir();
  const desired = redisDesired(source.url, join(dir, 'backups'), { method: 'logical' });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  await t.rejects(restoreBackup(withUrl(desired, target.url), entry.manifest.id, { target: 'db1', force: false, env: process.env }), { code: 'USAGE', message: /--target-db is for postgres backups; this is a redis backup/ });
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, ['version: 1', 'project: jarvis', 'services:', '  redis: { url: "${JARVIS_REDIS_URL}" }', 'storage:', '  path: ./backups', 'backups: []', ''].join('\n'));
  const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, 'restore', entry.manifest.id, ...args], { env: { ...process.env, JARVIS_DB_CONFIG: config, JARVIS_REDIS_URL: target.url }, encoding: 'utf8' });
  const refused = cli();
  t.equal(refused.status, 1, refused.stdout);
  const errors = refused.stderr.split('\n').filter((l) => l.startsWith('error: '));
  t.match(errors, [/^error: Redis at redis:\/\/default:\*\*\*@127\.0\.0\.1:\d+\/0 is not empty \(db 0 holds 1 key\); restoring backup \S+ would merge into it; nothing was written$/], 'one error line: the server (redacted), the db and the key count');
  t.match(refused.stderr, /^hint: pass --force to merge .*, or --flush to empty those databases first/m);
  t.notMatch(refused.stderr, target.password, 'the password is never printed');
  t.same(await withClient(target.url, (c) => c.keys('*')), ['already-there'], 'nothing was written');
  const merged = cli('--force');
  t.equal(merged.status, 0, merged.stderr);
  t.same((await withClient(target.url, (c) => c.keys('*'))).sort(), ['already-there', 'from-backup'], '--force merges');
});

t.test('a restore killed before it verified leaves a marked target; the re-run names the interrupted restore; --force completes it and clears the mark', async (t) => {
  const source = await redisServer(t);
  const target = await redisServer(t);
  await withClient(source.url, async (c) => { for (let i = 0; i < 20; i++) await c.set(`k${i}`, String(i)); });
  const storage = t.testdir();
  const desired = redisDesired(source.url, storage, { method: 'rdb' });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  const onTarget = withUrl(desired, target.url);
  const child = join(storage, 'restore-child.mjs');
  await writeFile(child, `import { restoreBackup } from ${JSON.stringify(new URL('../../../dist/backup/operations.js', import.meta.url).pathname)};
    const desired = JSON.parse(process.argv[2]);
    await restoreBackup(desired, process.argv[3], { force: false, env: process.env });`);
  const proc = spawn(process.execPath, [child, JSON.stringify(onTarget), entry.manifest.id], { env: { ...process.env, JARVIS_DB_TEST_PAUSE_AT: 'restore-written' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  await new Promise<void>((resolve) => {
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr += d; if (stderr.includes('test pause at restore-written')) resolve(); });
    proc.on('exit', () => resolve());
  });
  process.kill(proc.pid!, 'SIGKILL');
  await exited;
  await t.rejects(restoreBackup(onTarget, entry.manifest.id, { force: false, env: process.env }), {
    code: 'RESTORE_REFUSED', message: new RegExp(`^Redis at \\S+ is the leftover of an interrupted restore of ${entry.manifest.id} started at \\d{4}-[\\d-]+T[\\d:.]+Z; re-run with --force to replace it$`),
  });
  const forced = await restoreBackup(onTarget, entry.manifest.id, { force: true, env: process.env });
  t.equal(forced.details.restored, 20);
  t.equal(await withClient(target.url, (c) => c.get(RESTORE_MARKER_KEY)), null, 'the verified restore removed the mark');
  t.equal(await dbsize(target.url, 0), 20);
});

t.test('a restore into a server older than the backup\'s payloads says so (RESTORE refuses the RDB version)', async (t) => {
  const source = await redisServer(t);
  const target = await redisServer(t);
  await withClient(source.url, (c) => c.set('k', 'v'));
  const desired = redisDesired(source.url, join(t.testdir(), 's'), { method: 'logical', compression: 0 });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  // Rewrite the payload's RDB version (2 bytes before its CRC64) to one from the future,
  // and reseal: what a backup from a newer Redis looks like to this one.
  const { readFile, writeFile } = await import('node:fs/promises');
  const { hashFile, sealManifest, MANIFEST } = await import('../../../src/backup/storage.js');
  const file = join(entry.dir, 'keys.jdbr');
  const data = await readFile(file);
  const record = LOGICAL_MAGIC.length; // the only record: 18-byte head, the 1-byte key, the payload
  const payloadEnd = record + 18 + 1 + data.readUIntLE(record + 12, 6);
  data.writeUInt16LE(99, payloadEnd - 10);
  await writeFile(file, data);
  const { manifestSha256: _s, ...rest } = entry.manifest;
  const h = await hashFile(file);
  await writeFile(join(entry.dir, MANIFEST), JSON.stringify(sealManifest({ ...rest, files: [{ name: 'keys.jdbr', ...h }] })));
  await t.rejects(restoreBackup(withUrl(desired, target.url), entry.manifest.id, { force: false, env: process.env }), {
    code: 'RESTORE_FAILED', message: /refused RESTORE of key "k" in db 0: ERR DUMP payload version or checksum are wrong/,
  });
});
