/**
 * The sealed-store contract (docs/architecture.md §6), written against a store factory so that
 * every implementation runs the same cases: publish makes an item listed; a staged item is not
 * listed and is debris once its owner is dead, never while it lives; a flipped byte fails the
 * read; delete unpublishes first, so a crash before the files go leaves debris, not an item.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import type { RunOwner, SealedStore } from '../../src/storage/sealed-store.js';
import { openLocalStore } from '../../src/storage/local-store.js';
import { openS3Store, type S3Location } from '../../src/storage/s3-store.js';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client, loadS3Sdk } from '../../src/services/s3.js';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { readFile, writeFile } from 'node:fs/promises';
import { withSandbox, type SandboxState } from '../helpers/sandbox.js';

await loadS3Sdk();

interface StoreOptions { owner?: RunOwner; afterUnpublish?: (key: string) => Promise<void> }
/** A store over one repository; stores made by the same factory call see the same repository. */
type StoreFactory = (t: Test) => { open(options?: StoreOptions): SealedStore; flipByte(store: SealedStore, key: string, name: string): Promise<void> };

/** A pid that is certainly not running. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
}

const KEY = 'postgres/nightly/20261124T030000Z-1a2b';

async function publishOne(store: SealedStore, key = KEY) {
  const item = await store.begin(key);
  const file = await item.writeFile('data/a.bin', Readable.from([Buffer.from('hello '), Buffer.from('world')]));
  await item.publish(JSON.stringify({ files: [file] }));
  return file;
}

function contract(name: string, factory: StoreFactory): void {
  t.test(`${name}: a published item is listed, with its files hashed as they were written`, async (t) => {
    const repo = factory(t);
    const store = repo.open();
    const file = await publishOne(store);
    t.same(file, { name: 'data/a.bin', bytes: 11, sha256: 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9' });
    t.same(await store.list('postgres/nightly'), ['20261124T030000Z-1a2b']);
    t.same(JSON.parse((await store.readText(KEY, store.manifestName))!), { files: [file] });
    t.equal(await store.size(KEY, 'data/a.bin'), 11);
    t.equal(await text(store.read(KEY, file)), 'hello world');
    t.same(await store.findDebris('postgres/nightly'), []);
  });

  t.test(`${name}: an item staged but not published is not listed, and is debris once its owner is dead`, async (t) => {
    const repo = factory(t);
    const live = repo.open();
    const dead = repo.open({ owner: { pid: deadPid(), host: hostname() } });
    const ours = await live.begin('redis/hourly/20261124T030000Z-0001');
    await ours.writeFile('dump.rdb', Readable.from([Buffer.alloc(1000, 1)]));
    const theirs = await dead.begin('redis/hourly/20261124T030000Z-0002');
    await theirs.writeFile('dump.rdb', Readable.from([Buffer.alloc(1000, 2)]));
    t.same(await live.list('redis/hourly'), [], 'nothing staged is listed');
    const debris = await live.findDebris('redis/hourly');
    t.equal(debris.length, 1, 'only the item of the dead owner is debris: a live run\'s is left alone');
    t.match(debris[0]!.location, /20261124T030000Z-0002/);
    await live.removeDebris(debris);
    t.same(await live.findDebris('redis/hourly'), []);
    await ours.publish('{}');
    t.same(await live.list('redis/hourly'), ['20261124T030000Z-0001'], 'the live run publishes as if nothing happened');
  });

  t.test(`${name}: a flipped byte is detected on read`, async (t) => {
    const repo = factory(t);
    const store = repo.open();
    const file = await publishOne(store);
    await repo.flipByte(store, KEY, 'data/a.bin');
    await t.rejects(text(store.read(KEY, file)), { code: 'VERIFY_FAILED', message: /data\/a\.bin does not match its SHA-256/ });
    t.notSame(await store.hash(KEY, 'data/a.bin'), { sha256: file.sha256, bytes: file.bytes });
  });

  t.test(`${name}: delete unpublishes first: a crash before the files are removed leaves debris, never a listed item`, async (t) => {
    const repo = factory(t);
    await publishOne(repo.open());
    const crashing = repo.open({ owner: { pid: deadPid(), host: hostname() }, afterUnpublish: async () => { throw new Error('killed'); } });
    await t.rejects(crashing.delete(KEY), /killed/);
    const store = repo.open();
    t.same(await store.list('postgres/nightly'), [], 'the half-deleted item is not listed');
    const debris = await store.findDebris('postgres/nightly');
    t.equal(debris.length, 1, 'its files are debris');
    await store.removeDebris(debris);
    t.same(await store.findDebris('postgres/nightly'), []);
    await store.delete(KEY).then(() => t.fail('deleted twice'), () => t.pass('nothing left to delete'));
  });

  t.test(`${name}: a file added to a published item is staged until complete; removing files goes in order`, async (t) => {
    const repo = factory(t);
    const store = repo.open();
    await publishOne(store);
    const added = await store.addFile(KEY, 'chunk-000001.jsonl.gz', Readable.from([Buffer.from('rows')]));
    await store.writeRecord(KEY, 'chunk-000001.json', JSON.stringify(added));
    t.same(await store.files(KEY), ['chunk-000001.json', 'chunk-000001.jsonl.gz', store.manifestName]);
    t.same(await store.leftovers(KEY), []);
    await store.removeFiles(KEY, ['chunk-000001.json', 'chunk-000001.jsonl.gz', 'chunk-000001.committed']);
    t.same(await store.files(KEY), [store.manifestName]);
  });
}

contract('local directory', (t) => {
  const root = t.testdir();
  return {
    open: (options = {}) => openLocalStore(root, { manifestName: 'manifest.json', ...options }),
    flipByte: async (store, key, name) => {
      const path = store.location(key, name);
      const bytes = await readFile(path);
      bytes[3] ^= 0x01;
      await writeFile(path, bytes);
    },
  };
});

let sandbox: SandboxState | undefined;
t.before(async () => { sandbox = await withSandbox(t, ['s3']); });
let s3Cases = 0;

contract('S3 bucket', () => {
  const s3 = sandbox!.s3!;
  const env = sandboxEnv(sandbox!);
  const location: S3Location = { bucket: s3.bucket, prefix: `contract-${++s3Cases}/`, region: s3.region, endpoint: s3.url, forcePathStyle: true };
  return {
    open: (options = {}) => openS3Store(location, { repository: 'offsite', manifestName: 'manifest.json', env, ...options }),
    flipByte: async (store, key, name) => {
      const client = createS3Client(location, env);
      const Key = store.location(key, name).slice(`s3://${s3.bucket}/`.length);
      const out = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key }));
      const bytes = Buffer.from(await out.Body!.transformToByteArray());
      bytes[3] ^= 0x01;
      await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body: bytes }));
    },
  };
});
