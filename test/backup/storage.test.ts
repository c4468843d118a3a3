import t from 'tap';
import { mkdir, readFile, writeFile, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { BackupWriter, cleanDebris, findDebris, manifestChecksum, deleteBackup } from '../../src/backup/storage.js';
import { findBackup, listBackups, recordVerification, scanStorage, verificationLabel, verifyChecksums } from '../../src/backup/catalog.js';

async function makeBackup(storagePath: string, schedule = 'nightly', now = new Date('2026-11-24T03:00:00Z')) {
  const w = await BackupWriter.begin({ repository: storagePath, service: 'postgres', schedule, now });
  await w.writeStream('data/a.bin', Readable.from([Buffer.from('hello '), Buffer.from('world')]));
  await w.writeStream('b.bin', Readable.from([Buffer.alloc(100000, 7)]));
  return { w, entry: await w.publish({ method: 'test', extra: {} }, new Date(now.getTime() + 1000)) };
}

t.test('a published backup is listed with checksums of every file and of its manifest', async (t) => {
  const dir = t.testdir();
  const { entry } = await makeBackup(dir);
  const list = await listBackups(dir);
  t.equal(list.length, 1);
  const m = list[0]!.manifest;
  t.equal(m.id, entry.manifest.id);
  t.same(m.files.map((f) => f.name), ['b.bin', 'data/a.bin']);
  t.equal(m.files[1]!.sha256, 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9');
  t.equal(m.totalBytes, 100011);
  t.equal(m.manifestSha256, manifestChecksum(m));
  t.same(m.verification, { at: '2026-11-24T03:00:01.000Z', how: 'checksum', ok: true, message: 'checksummed while writing: 2 files' }, 'the checksums taken while writing are its first verification, dated when it finished');
});

t.test('a backup that has not published is invisible, and its debris is cleaned once its owner is dead', async (t) => {
  const dir = t.testdir();
  const w = await BackupWriter.begin({ repository: dir, service: 'postgres', schedule: 'nightly', now: new Date() });
  await w.writeStream('x.bin', Readable.from([Buffer.from('partial')]));
  t.same(await listBackups(dir), []);
  t.same(await findDebris(dir), [], 'our own live work dir is not debris');
  // a work dir of a dead process, with even a complete manifest inside, is never listed
  const { entry } = await makeBackup(dir, 'other');
  const dead = join(dir, 'postgres', 'other', `.tmp-${entry.manifest.id}-999999`);
  await rename(entry.dir, dead);
  t.same(await listBackups(dir), []);
  t.same(await cleanDebris(dir), [dead]);
  t.same(await readdir(join(dir, 'postgres', 'other')), []);
  await w.abort();
});

t.test('a damaged manifest hides the backup from the listing and findBackup names the problem', async (t) => {
  const dir = t.testdir();
  const { entry } = await makeBackup(dir);
  const path = join(entry.dir, 'manifest.json');
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.replace('"method": "test"', '"method": "tesT"'));
  const scan = await scanStorage(dir);
  t.same(scan.valid, []);
  t.match(scan.invalid[0]!.problem, /fails its own checksum/);
  await t.rejects(findBackup(dir, entry.manifest.id.slice(0, 10)), { code: 'VERIFY_FAILED', message: /manifest\.json fails its own checksum/ });
});

t.test('a file of the wrong size hides the backup; a flipped byte is caught by verify naming the file', async (t) => {
  const dir = t.testdir();
  const { entry } = await makeBackup(dir);
  const file = join(entry.dir, 'data/a.bin');
  await writeFile(file, 'hello World');
  t.equal((await listBackups(dir)).length, 1, 'same size: the cheap listing cannot tell');
  const r = await verifyChecksums(entry);
  t.notOk(r.ok);
  t.same(r.bad, [{ name: 'data/a.bin', problem: 'SHA-256 mismatch' }]);
  await writeFile(file, 'short');
  t.equal((await listBackups(dir)).length, 0);
});

t.test('a verification is recorded in the manifest atomically and keeps it valid', async (t) => {
  const dir = t.testdir();
  const { entry } = await makeBackup(dir);
  await recordVerification(entry, { at: '2026-11-24T04:00:00.000Z', how: 'checksum', ok: true, message: 'ok' });
  const [again] = await listBackups(dir);
  t.same(again!.manifest.verification, { at: '2026-11-24T04:00:00.000Z', how: 'checksum', ok: true, message: 'ok' });
  t.equal(again!.manifest.manifestSha256, manifestChecksum(again!.manifest));
});

t.test('the VERIFIED column says how and how long ago, FAILED when it failed, never without a verification', async (t) => {
  const now = Date.parse('2026-11-24T06:00:00Z');
  t.equal(verificationLabel({ at: '2026-11-24T04:00:00Z', how: 'checksum', ok: true, message: '' }, now), 'checksum 2h ago');
  t.equal(verificationLabel({ at: '2026-11-23T06:00:00Z', how: 'restore', ok: true, message: '' }, now), 'restore 24h ago');
  t.equal(verificationLabel({ at: '2026-11-21T06:00:00Z', how: 'restore', ok: false, message: 'rows differ' }, now), 'FAILED (restore 3d ago)');
  t.equal(verificationLabel(null, now), 'never');
});

t.test('ids are found by unique prefix, listed newest first, and deleted out of view', async (t) => {
  const dir = t.testdir();
  const a = await makeBackup(dir, 'nightly', new Date('2026-11-23T03:00:00Z'));
  const b = await makeBackup(dir, 'nightly', new Date('2026-11-24T03:00:00Z'));
  t.same((await listBackups(dir)).map((e) => e.manifest.id), [b.entry.manifest.id, a.entry.manifest.id]);
  t.equal((await findBackup(dir, '20261123')).manifest.id, a.entry.manifest.id);
  await t.rejects(findBackup(dir, '2026112'), { code: 'USAGE', message: /ambiguous/ });
  await t.rejects(findBackup(dir, '1999'), { code: 'BACKUP_NOT_FOUND' });
  await deleteBackup(a.entry);
  t.same((await listBackups(dir)).map((e) => e.manifest.id), [b.entry.manifest.id]);
});

t.test('a process killed at every step of publishing leaves either nothing listed or a complete backup', async (t) => {
  const points = ['started', 'file-written', 'before-manifest', 'manifest-written', 'manifest-renamed', 'dir-renamed'];
  const base = t.testdir();
  const script = join(base, 'publish-child.mjs');
  const src = new URL('../../dist/backup/storage.js', import.meta.url).pathname; // compiled: npx tsc -p tsconfig.json
  await writeFile(script, `
    import { BackupWriter } from ${JSON.stringify(src)};
    import { Readable } from 'node:stream';
    const w = await BackupWriter.begin({ repository: process.argv[2], service: 'postgres', schedule: 'nightly', now: new Date() });
    await w.writeStream('a.bin', Readable.from([Buffer.alloc(1 << 20, 1)]));
    await w.writeStream('b.bin', Readable.from([Buffer.alloc(1 << 16, 2)]));
    await w.publish({ method: 'test', extra: {} });
    process.stderr.write('published\\n');
  `);
  for (const point of points) {
    const dir = join(base, point);
    await mkdir(dir, { recursive: true });
    const child = spawn(process.execPath, [script, dir], { env: { ...process.env, JARVIS_DB_TEST_PAUSE_AT: point }, stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr.on('data', (d: Buffer) => { err += d; if (err.includes(`test pause at ${point}`)) resolve(); });
      child.on('exit', () => reject(new Error(`child exited before pausing at ${point}: ${err}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const listed = await listBackups(dir);
    if (point === 'dir-renamed') {
      t.equal(listed.length, 1, 'renamed into view: complete and valid');
      t.equal((await verifyChecksums(listed[0]!)).ok, true);
    } else {
      t.same(listed, [], `killed at ${point}: nothing listed`);
      const cleaned = await cleanDebris(dir);
      t.equal(cleaned.length, 1, `killed at ${point}: the work dir is debris and is removed`);
    }
    t.same(await findDebris(dir), []);
  }
});
