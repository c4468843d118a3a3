/**
 * Verification of Redis backups on the sandbox: the content check (an RDB's CRC64 and walk,
 * redis-check-rdb; a logical file's records) and the restore test in a throwaway redis-server.
 * Damage is simulated where SHA-256 cannot see it (the file changed, its manifest resealed):
 * what a server sending a bad RDB, or a disk corrupting before the hash, would produce.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBackup } from '../../../src/backup/catalog.js';
import { createBackup, verifyBackup } from '../../../src/backup/operations.js';
import { MANIFEST, hashFile, sealManifest, type CatalogEntry } from '../../../src/backup/storage.js';
import { populateRich, redisDesired, redisServer, withClient } from './fixture.js';

/** Replaces a backup file's bytes and reseals the manifest so that its SHA-256 matches. */
async function tamper(entry: CatalogEntry, change: (data: Buffer) => Buffer, extra?: Record<string, unknown>): Promise<void> {
  const f = entry.manifest.files[0]!;
  const path = join(entry.dir, f.name);
  await writeFile(path, change(await readFile(path)));
  const { manifestSha256: _s, ...rest } = entry.manifest;
  const sealed = sealManifest({ ...rest, files: [{ name: f.name, ...(await hashFile(path)) }], extra: { ...rest.extra, ...extra } });
  await writeFile(join(entry.dir, MANIFEST), JSON.stringify(sealed, null, 2));
}

function flipped(at: number) {
  return (d: Buffer) => { const c = Buffer.from(d); c[Math.floor(c.length * at)]! ^= 0x04; return c; };
}

t.test('verify re-checks an RDB backup\'s CRC64 and runs redis-check-rdb; --restore-test loads it and compares key counts', async (t) => {
  const source = await redisServer(t);
  await populateRich(source.url);
  const storage = t.testdir();
  for (const compression of [0, 1]) {
    const desired = redisDesired(source.url, storage, { method: 'rdb', compression, name: `rdb${compression}` });
    const entry = await createBackup(desired, desired.backups[0]!, process.env);
    const v = await verifyBackup(desired, entry, { restoreTest: false, env: process.env });
    t.ok(v.ok, v.message);
    t.match(v.message, /CRC64 [0-9a-f]{16} verified, 23 keys walked; redis-check-rdb: RDB looks OK \(23 keys read\)/);
    const r = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: true, env: process.env });
    t.ok(r.ok, r.message);
    t.equal(r.how, 'restore');
    t.match(r.message, /loaded into a throwaway redis-server: 23 keys, per-database counts match/);
    t.same((await findBackup(storage, entry.manifest.id)).manifest.verification?.ok, true, 'the outcome is recorded in the manifest');
  }
});

t.test('a flipped or truncated RDB fails verification even when its SHA-256 was taken after the damage', async (t) => {
  const source = await redisServer(t);
  await populateRich(source.url);
  const storage = t.testdir();
  const cases: [string, (d: Buffer) => Buffer, RegExp][] = [
    ['one bit flipped in the middle', flipped(0.5), /CRC64 mismatch|corrupt/],
    ['one bit flipped near the start', flipped(0.001), /CRC64 mismatch|corrupt/],
    ['truncated by a third', (d) => d.subarray(0, Math.floor(d.length * 2 / 3)), /truncated|CRC64 mismatch/],
    ['the last byte missing', (d) => d.subarray(0, d.length - 1), /truncated|CRC64 mismatch/],
  ];
  for (const [label, change, pattern] of cases) {
    const desired = redisDesired(source.url, storage, { method: 'rdb' });
    const entry = await createBackup(desired, desired.backups[0]!, process.env);
    await tamper(entry, change);
    const v = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: false, env: process.env });
    t.notOk(v.ok, `${label}: verification fails`);
    t.match(v.message, /^content check failed: /, label);
    t.match(v.message, pattern, `${label}: ${v.message}`);
  }
  const desired = redisDesired(source.url, storage, { method: 'rdb', compression: 1, name: 'gz' });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  await tamper(entry, (d) => d.subarray(0, d.length - 100));
  const v = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: false, env: process.env });
  t.notOk(v.ok, `a truncated gzip'd RDB fails too: ${v.message}`);
});

t.test('restore-test fails when the loaded key counts differ from the manifest\'s', async (t) => {
  const source = await redisServer(t);
  await withClient(source.url, async (c) => { for (let i = 0; i < 20; i++) await c.set(`k${i}`, 'v'); });
  const storage = t.testdir();
  for (const method of ['rdb', 'logical']) {
    const desired = redisDesired(source.url, storage, { method, name: method });
    const entry = await createBackup(desired, desired.backups[0]!, process.env);
    await tamper(entry, (d) => d, { databases: { 0: { keys: 21, expires: 0 } }, keys: 21 });
    const fresh = await findBackup(storage, entry.manifest.id);
    const v = await verifyBackup(desired, fresh, { restoreTest: true, env: process.env });
    t.notOk(v.ok, `${method}: ${v.message}`);
    t.match(v.message, method === 'rdb' ? /db 0: 20 keys, the backup recorded 21/ : /db 0 holds 20 keys, the manifest recorded 21/);
  }
});

t.test('verify reads every record of a logical backup; --restore-test restores it into a throwaway server with every count accounted for', async (t) => {
  const source = await redisServer(t);
  await populateRich(source.url);
  await withClient(source.url, (c) => c.set('short', 'x', 'PX', 1200));
  const storage = t.testdir();
  const desired = redisDesired(source.url, storage, { method: 'logical' });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  const v = await verifyBackup(desired, entry, { restoreTest: false, env: process.env });
  t.ok(v.ok, v.message);
  t.match(v.message, /24 key records read, end record and counts match/);
  await new Promise((r) => setTimeout(r, 1500));
  const r = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: true, env: process.env });
  t.ok(r.ok, r.message);
  t.match(r.message, /restored into a throwaway redis-server: 23 keys in db 0, 1; 1 already expired, skipped; per-database counts match/);

  const damaged = await createBackup(desired, desired.backups[0]!, process.env);
  await tamper(damaged, flipped(0.5));
  const bad = await verifyBackup(desired, await findBackup(storage, damaged.manifest.id), { restoreTest: false, env: process.env });
  t.notOk(bad.ok, bad.message);
  t.match(bad.message, /content check failed/);
});
