/**
 * The physical Chroma backup on a sandbox Chroma: a copy of the data directory that a server
 * started on it serves bit for bit; restore refuses a running server and a non-empty directory
 * without --force; writes during the copy fail the backup.
 */
import t from 'tap';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBackup, listBackups } from '../../../src/backup/catalog.js';
import { createBackup, restoreBackup, verifyBackup } from '../../../src/backup/operations.js';
import { startChromaServer, stopChromaServer } from '../../../src/scratch/servers.js';
import { startService, stopService } from '../../../src/sandbox/index.js';
import { chromaSandbox, client, makeChromaDesired, seedCollections, snapshot, vectors } from './fixture.js';

const NAMES = ['empty-one', 'memories-cosine', 'memories-l2', 'notes-ip'];

t.test('a physical backup of a quiet server restores into a new directory that a server serves bit for bit', async (t) => {
  const state = await chromaSandbox(t);
  const { chroma } = state;
  await seedCollections(chroma.url, 200);
  const before = Object.fromEntries(await Promise.all(NAMES.map(async (n) => [n, await snapshot(chroma.url, n)] as const)));
  const base = t.testdir();
  const storage = join(base, 'storage');
  const desired = makeChromaDesired(chroma.url, storage, { path: chroma.dataDir, schedule: { method: 'physical' } });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  t.equal(entry.manifest.method, 'physical');
  t.same(entry.manifest.files.map((f) => f.name), ['data.tar.br']);
  t.same((entry.manifest.extra.collections as { name: string; count: number }[]).map((c) => [c.name, c.count]), [['empty-one', 0], ['memories-cosine', 204], ['memories-l2', 200], ['notes-ip', 200]]);

  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: true, env: process.env }), { code: 'RESTORE_REFUSED', message: /stop the Chroma server before restoring/ }, 'not onto the data directory of a running server, even with --force');
  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, collection: 'notes-ip' }), { code: 'USAGE', message: /restores whole/ });

  const scratch = join(base, 'scratch');
  const result = await restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, targetDir: join(scratch, 'data') });
  t.match(result.summary, /4 collections, 604 records; SQLite integrity and record counts match/);
  t.notOk((await readdir(scratch)).some((n) => n.includes('jarvis-db-')), 'no unpacked or old directory is left beside it');
  const server = await startChromaServer({ dir: scratch });
  t.teardown(() => stopChromaServer(server.pid));
  for (const n of NAMES) {
    const after = await snapshot(server.url, n);
    t.same(after, before[n], `${n}: records, configuration, metadata, nearest neighbours and distances identical`);
  }
});

t.test('restoring the configured directory needs a stopped server and --force, and brings back the backed-up state', async (t) => {
  const state = await chromaSandbox(t);
  const { chroma } = state;
  await seedCollections(chroma.url, 30);
  const desired = makeChromaDesired(chroma.url, join(t.testdir(), 'storage'), { path: chroma.dataDir, schedule: { method: 'physical' } });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  const original = await snapshot(chroma.url, 'memories-l2');
  await (await client(chroma.url).getCollection({ name: 'memories-l2' })).add({ ids: ['after-backup'], embeddings: vectors(1, 5) });

  await stopService(state.dir, 'chroma');
  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: process.env }), { code: 'RESTORE_REFUSED', message: /is not empty/ });
  const result = await restoreBackup(desired, entry.manifest.id, { force: true, env: process.env });
  t.match(result.summary, /the previous data was replaced/);
  await startService(state.dir, 'chroma');
  t.same(await snapshot(chroma.url, 'memories-l2'), original, 'the record added after the backup is gone; the rest is as backed up');
});

t.test('writes during a physical backup fail it, and nothing is published', async (t) => {
  const { chroma } = await chromaSandbox(t);
  await seedCollections(chroma.url, 2000);
  const storage = join(t.testdir(), 'storage');
  const desired = makeChromaDesired(chroma.url, storage, { path: chroma.dataDir, schedule: { method: 'physical' } });
  const col = await client(chroma.url).getCollection({ name: 'memories-l2' });
  let writing = true;
  let written = 0;
  const writer = (async () => {
    const v = vectors(1, 9);
    while (writing) await col.add({ ids: [`live-${written++}`], embeddings: v });
  })();
  const failure = await createBackup(desired, desired.backups[0]!, process.env).then(() => null, (e: unknown) => e as Error & { code: string });
  writing = false;
  await writer;
  t.ok(written > 0, `${written} records written meanwhile`);
  t.equal(failure?.code, 'BACKUP_FAILED');
  t.match(failure?.message, /Chroma wrote to .* during the physical backup/);
  t.same(await listBackups(storage), [], 'no backup listed');
});

t.test('verify --restore-test serves the unpacked copy from a scratch server; a flipped byte fails it', async (t) => {
  const { chroma } = await chromaSandbox(t);
  await seedCollections(chroma.url, 40);
  const storage = join(t.testdir(), 'storage');
  const desired = makeChromaDesired(chroma.url, storage, { path: chroma.dataDir, schedule: { method: 'physical' } });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  const ok = await verifyBackup(desired, entry, { restoreTest: true, env: process.env });
  t.ok(ok.ok, ok.message);
  t.match(ok.message, /a Chroma server on it lists 4 collections and returns all 124 records/);
  t.same((await readdir(join(storage, 'chroma', 'daily'))).filter((n) => n.startsWith('.')), [], 'the scratch directory is removed');

  const file = join(entry.dir, 'data.tar.br');
  const bytes = await readFile(file);
  bytes[Math.floor(bytes.length / 3)]! ^= 0x10;
  await writeFile(file, bytes);
  const bad = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: true, env: process.env });
  t.notOk(bad.ok);
  t.same(bad.badFiles, ['data.tar.br']);
});
