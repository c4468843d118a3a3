/**
 * The logical Chroma backup on a sandbox Chroma: round trip, restore safety (--force, --as,
 * a failed restore changes nothing), verify and its restore test, encryption, subsets.
 */
import t from 'tap';
import { hostname } from 'node:os';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBackup, listBackups } from '../../../src/backup/catalog.js';
import { createBackup, restoreBackup, verifyBackup } from '../../../src/backup/operations.js';
import { sealManifest, MANIFEST, type BackupManifest } from '../../../src/backup/storage.js';
import { ChromaClient } from 'chromadb';
import { chromaSandbox, client, makeChromaDesired, seedCollections, snapshot, vectors, type CollectionSnapshot } from './fixture.js';

async function collectionNames(url: string): Promise<string[]> {
  return (await client(url).listCollections()).map((c) => c.name).sort();
}

async function snapshots(url: string, names: string[]): Promise<Record<string, CollectionSnapshot>> {
  const out: Record<string, CollectionSnapshot> = {};
  for (const n of names) out[n] = await snapshot(url, n);
  return out;
}

t.test('collections in l2, cosine and ip spaces round-trip float32-exact, with metadata types, configuration and nearest neighbours', async (t) => {
  const { chroma } = await chromaSandbox(t);
  const names = await seedCollections(chroma.url);
  const before = await snapshots(chroma.url, names);
  t.equal(before['memories-cosine']!.records.find((r) => r.id === 'typed-1')!.metadata, '{"big":9007199254740993,"f":3.0,"neg":-1.5e-7,"s":"ß","t":true}', 'the seed has a float 3.0 and an int beyond 2^53');
  t.same((before['memories-cosine']!.configuration as { hnsw: { space: string; ef_search: number } }).hnsw.ef_search, 55);

  const desired = makeChromaDesired(chroma.url, join(t.testdir(), 'storage'));
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  t.equal(entry.manifest.method, 'logical');
  const summaries = entry.manifest.extra.collections as { name: string; count: number; space: string; dimension: number }[];
  t.same(summaries.map((s) => [s.name, s.count, s.space]), [['empty-one', 0, 'l2'], ['memories-cosine', 304, 'cosine'], ['memories-l2', 300, 'l2'], ['notes-ip', 300, 'ip']]);
  t.ok(entry.manifest.totalBytes < 1.2 * 904 * 384 * 4, `archive ${entry.manifest.totalBytes} bytes is under 1.2x the raw float32 data`);

  for (const n of names) await client(chroma.url).deleteCollection({ name: n });
  t.same(await collectionNames(chroma.url), [], 'every collection is gone');
  const result = await restoreBackup(desired, entry.manifest.id, { force: false, env: process.env });
  t.match(result.summary, /4 collections .*904 records; counts and checksums match/);
  t.same(await collectionNames(chroma.url), names, 'no temporary collection is left');
  const after = await snapshots(chroma.url, names);
  for (const n of names) {
    t.same(after[n]!.records, before[n]!.records, `${n}: ids, float32 embeddings, documents, uris and metadata identical`);
    t.same(after[n]!.configuration, before[n]!.configuration, `${n}: configuration identical`);
    t.equal(after[n]!.metadata, before[n]!.metadata, `${n}: collection metadata identical`);
    t.same(after[n]!.nearest.ids, before[n]!.nearest.ids, `${n}: a query returns the same nearest neighbours`);
    if (n === 'memories-cosine') {
      // Chroma keeps a cosine vector as (normalised vector, length); the API shows only their
      // product, which the restore reproduces exactly; distances come from the normalised part.
      const close = after[n]!.nearest.distances.flat().every((d, i) => Math.abs(d - before[n]!.nearest.distances.flat()[i]!) <= 1e-6);
      t.ok(close, `${n}: the same distances to within float32 rounding`);
    } else {
      t.same(after[n]!.nearest.distances, before[n]!.nearest.distances, `${n}: the same distances`);
    }
  }
});

t.test('restore onto an existing collection needs --force; --as restores beside it; a failed restore changes nothing', async (t) => {
  const { chroma } = await chromaSandbox(t);
  await seedCollections(chroma.url, 60);
  const storage = join(t.testdir(), 'storage');
  const desired = makeChromaDesired(chroma.url, storage, { collections: ['memories-l2', 'notes-ip'] });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  t.same((entry.manifest.extra.collections as { name: string }[]).map((c) => c.name), ['memories-l2', 'notes-ip'], 'only the configured collections');
  const original = await snapshot(chroma.url, 'memories-l2');

  // the live collection moves on after the backup
  const live = await client(chroma.url).getCollection({ name: 'memories-l2' });
  await live.add({ ids: ['added-later'], embeddings: vectors(1, 7) });
  await live.delete({ ids: ['l2-00000'] });

  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: process.env }), { code: 'RESTORE_REFUSED', message: /"memories-l2", "notes-ip" already exist/ });
  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, as: 'x-copy' }), { code: 'USAGE', message: /--as names one collection/ });
  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, collection: 'memories-l2', as: 'no' }), { code: 'USAGE', message: /not a valid Chroma collection name/ });
  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, collection: 'nope' }), { code: 'USAGE', message: /no collection "nope"/ });

  const copy = await restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, collection: 'memories-l2', as: 'memories-l2-copy' });
  t.match(copy.summary, /memories-l2 as memories-l2-copy/);
  t.same((await snapshot(chroma.url, 'memories-l2-copy')).records, original.records, 'the copy holds the backed-up records');
  t.equal(await live.count(), 60, 'the live collection is untouched (60 - 1 + 1)');

  // a backup whose file disagrees with its manifest (checksums still valid): --force must not touch the live collection
  const damaged = await findBackup(storage, entry.manifest.id);
  const { manifestSha256: _old, ...rest } = damaged.manifest;
  const lying = structuredClone(rest) as Omit<BackupManifest, 'manifestSha256'>;
  (lying.extra.collections as { name: string; count: number }[]).find((c) => c.name === 'memories-l2')!.count = 61;
  await writeFile(join(damaged.dir, MANIFEST), JSON.stringify(sealManifest(lying), null, 2));
  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: true, env: process.env, collection: 'memories-l2' }), { code: 'BACKUP_INVALID', message: /count 60 records, the manifest 61/ });
  t.equal(await live.count(), 60, 'the live collection survived the failed forced restore');
  t.ok((await live.get({ ids: ['added-later'] })).ids.length === 1, 'with its newer record');
  t.notOk((await collectionNames(chroma.url)).some((n) => n.startsWith('jarvis-db-tmp-')), 'no temporary collection is left');
  await writeFile(join(damaged.dir, MANIFEST), JSON.stringify(damaged.manifest, null, 2));

  const forced = await restoreBackup(desired, entry.manifest.id, { force: true, env: process.env, collection: 'memories-l2' });
  t.match(forced.summary, /1 collection \(memories-l2\), 60 records/);
  t.same((await snapshot(chroma.url, 'memories-l2')).records, original.records, '--force replaced it with the backed-up state');
});

t.test('verify checks every file and, with --restore-test, restores into scratch collections; a flipped byte fails both', async (t) => {
  const { chroma } = await chromaSandbox(t);
  await seedCollections(chroma.url, 50);
  const storage = join(t.testdir(), 'storage');
  const desired = makeChromaDesired(chroma.url, storage);
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  const names = await collectionNames(chroma.url);
  const ok = await verifyBackup(desired, entry, { restoreTest: true, env: process.env });
  t.ok(ok.ok, ok.message);
  t.match(ok.message, /4 collections, 154 records restored into scratch collections: counts and checksums match/);
  t.same(await collectionNames(chroma.url), names, 'scratch collections are removed');
  t.equal((await listBackups(storage))[0]!.manifest.verification?.how, 'restore');

  // a server whose cosine rounding is not the one compensated for: accepted within Chroma's rounding, and said
  process.env.JARVIS_DB_TEST_COSINE_AS_IS = '1';
  const drifted = await verifyBackup(desired, entry, { restoreTest: true, env: process.env }).finally(() => { delete process.env.JARVIS_DB_TEST_COSINE_AS_IS; });
  t.ok(drifted.ok, drifted.message);
  t.match(drifted.message, /memories-cosine: \d+ of 54 embeddings differ from the backup by at most 1 float32 step/);
  t.same(await collectionNames(chroma.url), names, 'scratch collections are removed');

  const file = join(entry.dir, (entry.manifest.extra.collections as { file: string }[])[1]!.file);
  const bytes = await readFile(file);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  await writeFile(file, bytes);
  const bad = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: true, env: process.env });
  t.notOk(bad.ok);
  t.same(bad.badFiles, ['collections/0002.jsonl.br']);
  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, collection: 'memories-cosine', as: 'whatever' }), { code: 'RESTORE_REFUSED', message: /damaged: collections\/0002\.jsonl\.br/ });
});

t.test('an encrypted Chroma backup restores with its key and not without it', async (t) => {
  const { chroma } = await chromaSandbox(t);
  await seedCollections(chroma.url, 40);
  const storage = join(t.testdir(), 'storage');
  const env = { ...process.env, JARVIS_TEST_CHROMA_KEY: 'correct horse battery staple' };
  const desired = makeChromaDesired(chroma.url, storage, { encryption: 'JARVIS_TEST_CHROMA_KEY', collections: ['notes-ip'] });
  const entry = await createBackup(desired, desired.backups[0]!, env);
  t.same(entry.manifest.files.map((f) => f.name), ['collections/0001.jsonl.br.enc']);
  const raw = await readFile(join(entry.dir, 'collections/0001.jsonl.br.enc'));
  t.notOk(raw.includes(Buffer.from('s3://bucket')), 'no plain text in the file');
  const original = await snapshot(chroma.url, 'notes-ip');
  await t.rejects(restoreBackup(desired, entry.manifest.id, { force: false, env: { ...process.env, JARVIS_TEST_CHROMA_KEY: 'wrong' }, collection: 'notes-ip', as: 'notes-ip-copy' }), { code: 'DECRYPT_FAILED' });
  t.same(await collectionNames(chroma.url), ['empty-one', 'memories-cosine', 'memories-l2', 'notes-ip'], 'nothing half-restored');
  await restoreBackup(desired, entry.manifest.id, { force: false, env, collection: 'notes-ip', as: 'notes-ip-copy' });
  t.same((await snapshot(chroma.url, 'notes-ip-copy')).records, original.records);
});

t.test('a configured collection that does not exist fails the backup clearly, and the server being down is one line', async (t) => {
  const { chroma } = await chromaSandbox(t);
  await seedCollections(chroma.url, 5);
  const storage = join(t.testdir(), 'storage');
  const desired = makeChromaDesired(chroma.url, storage, { collections: ['memories-l2', 'forgotten'] });
  await t.rejects(createBackup(desired, desired.backups[0]!, process.env), { code: 'BACKUP_FAILED', message: /collection "forgotten" \(services\.chroma\.collections\) not found in tenant default_tenant, database default_database/ });
  t.same(await listBackups(storage), [], 'nothing published');
  const down = makeChromaDesired('http://user:s3cret@127.0.0.1:1', storage);
  const e = await createBackup(down, down.backups[0]!, process.env).catch((x: unknown) => x as Error & { code: string });
  t.equal((e as { code: string }).code, 'SERVICE_UNREACHABLE');
  t.match((e as Error).message, /cannot reach Chroma at http:\/\/user:\*\*\*@127\.0\.0\.1:1/);
  t.notMatch((e as Error).message, /s3cret/, 'the password is not shown');
});

t.test('a restore into a tenant and database the server lacks creates them (disaster recovery on a new server), and removes leftovers of killed restores', async (t) => {
  const { chroma } = await chromaSandbox(t);
  await seedCollections(chroma.url, 20);
  const storage = join(t.testdir(), 'storage');
  const desired = makeChromaDesired(chroma.url, storage, { collections: ['notes-ip'] });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  // leftovers of a killed restore on this host (pid 999999 is dead) go; another host's stay
  const host = hostname().replace(/[^a-zA-Z0-9]/g, '').slice(0, 40);
  for (const name of [`jarvis-db-tmp-${host}-999999-deadbeef`, 'jarvis-db-tmp-otherhost-999999-deadbeef']) await client(chroma.url).createCollection({ name, embeddingFunction: null });
  await restoreBackup(desired, entry.manifest.id, { force: false, env: process.env, collection: 'notes-ip', as: 'notes-ip-2' });
  t.same((await collectionNames(chroma.url)).filter((n) => n.startsWith('jarvis-db-tmp-')), ['jarvis-db-tmp-otherhost-999999-deadbeef'], 'only this host\'s dead leftovers are removed');
  const elsewhere = makeChromaDesired(chroma.url, storage);
  elsewhere.services.chroma = { url: chroma.url, tenant: 'jarvis-dr', database: 'memories' };
  const result = await restoreBackup(elsewhere, entry.manifest.id, { force: false, env: process.env });
  t.match(result.summary, /\(jarvis-dr\/memories, created: tenant jarvis-dr, database memories\)/);
  const u = new URL(chroma.url);
  const there = new ChromaClient({ host: u.hostname, port: Number(u.port), tenant: 'jarvis-dr', database: 'memories' });
  t.same((await there.listCollections()).map((c) => c.name), ['notes-ip']);
  t.equal(await (await there.getCollection({ name: 'notes-ip' })).count(), 20);
});
