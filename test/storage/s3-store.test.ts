/**
 * The S3 sealed store (src/storage/s3-store.ts, docs/architecture.md §6) on a real S3-compatible
 * server (the sandbox's s3rver): multipart uploads round-trip with bounded memory, a damaged
 * object fails its read, staged items are neither listed nor (while their owner lives) debris,
 * debris with its incomplete multipart uploads is removed, and failures are one REPOSITORY line.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { spawn, spawnSync } from 'node:child_process';
import { inspect } from 'node:util';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command, UploadPartCommand } from '@aws-sdk/client-s3';
import { openS3Store, PART_SIZE, type S3Location, type S3SealedStore, type S3StoreOptions } from '../../src/storage/s3-store.js';
import { createS3Client, loadS3Sdk } from '../../src/services/s3.js';
import { sandboxEnv, freePort } from '../../src/sandbox/index.js';
import { describeFailure } from '../../src/cli/failure.js';
import { JarvisError } from '../../src/errors.js';
import { stagedPaths } from '../../src/storage/staging.js';
import { withSandbox, type SandboxState } from '../helpers/sandbox.js';

await loadS3Sdk();

let sandbox: SandboxState;
t.before(async () => { sandbox = await withSandbox(t, ['s3']); });
let cases = 0;

function locationFor(prefix = `s3-store-${++cases}/`): S3Location {
  const s3 = sandbox.s3!;
  return { bucket: s3.bucket, prefix, region: s3.region, endpoint: s3.url, forcePathStyle: true };
}

function open(location: S3Location, options: Partial<S3StoreOptions> = {}): S3SealedStore {
  return openS3Store(location, { repository: 'offsite', manifestName: 'manifest.json', env: sandboxEnv(sandbox), ...options }) as S3SealedStore;
}

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
}

/** `total` bytes of a repeatable pattern, 1 MiB at a time, hashed as they are generated. */
function generated(total: number): { source: Readable; expected: () => string } {
  const hash = createHash('sha256');
  function* chunks(): Generator<Buffer> {
    for (let sent = 0, n = 0; sent < total; n++) {
      const size = Math.min(1 << 20, total - sent);
      const chunk = Buffer.alloc(size, n % 251);
      chunk.writeUInt32BE(n, 0);
      hash.update(chunk);
      sent += size;
      yield chunk;
    }
  }
  // One chunk read ahead, as a file stream would (Readable.from buffers 16 by default).
  return { source: Readable.from(chunks(), { highWaterMark: 1 }), expected: () => hash.digest("hex") };
}

/** Every object key and multipart upload under a location's prefix. */
async function everything(location: S3Location): Promise<{ keys: string[]; uploads: string[] }> {
  const client = createS3Client(location, sandboxEnv(sandbox));
  const keys = ((await client.send(new ListObjectsV2Command({ Bucket: location.bucket, Prefix: location.prefix }))).Contents ?? []).map((o) => o.Key!.slice(location.prefix.length));
  const uploads = ((await client.send(new ListMultipartUploadsCommand({ Bucket: location.bucket, Prefix: location.prefix }))).Uploads ?? []).map((u) => u.Key!.slice(location.prefix.length));
  return { keys: keys.sort(), uploads: uploads.sort() };
}

t.test('a 20 MB file goes up in several parts and reads back whole, its SHA-256 the one computed while uploading', async (t) => {
  const location = locationFor();
  const store = open(location);
  const commands: string[] = [];
  store.client.middlewareStack.add((next, context) => async (args) => {
    commands.push(context.commandName!);
    return next(args);
  }, { step: 'initialize' });
  const item = await store.begin('postgres/nightly/big');
  const { source, expected } = generated(20 * 1024 * 1024);
  const file = await item.writeFile('data/big.bin', source);
  await item.publish(JSON.stringify({ files: [file] }));
  t.equal(file.bytes, 20 * 1024 * 1024);
  t.equal(file.sha256, expected());
  t.equal(commands.filter((c) => c === 'UploadPartCommand').length, 3, 'three parts of at most 8 MiB');
  t.same(commands.filter((c) => /Multipart/.test(c)), ['CreateMultipartUploadCommand', 'CompleteMultipartUploadCommand']);
  t.ok(commands.indexOf('PutObjectCommand', commands.indexOf('CompleteMultipartUploadCommand')) > 0, 'the manifest is PUT after the upload completed');
  const read = createHash('sha256');
  for await (const chunk of store.read('postgres/nightly/big', file)) read.update(chunk as Buffer);
  t.equal(read.digest('hex'), file.sha256, 'read() streams the same bytes and verifies them');
  t.same(await store.hash('postgres/nightly/big', 'data/big.bin'), { sha256: file.sha256, bytes: file.bytes });
  t.same(await store.list('postgres/nightly'), ['big']);
  await t.rejects(store.begin('postgres/nightly/big'), { code: 'REPOSITORY', message: /postgres\/nightly\/big already exists/ }, 'an item is not staged over a published one');
  t.same(await everything(location), { keys: ['postgres/nightly/big/data/big.bin', 'postgres/nightly/big/manifest.json'], uploads: [] }, 'the marker is gone once published');
});

t.test('a source that fails mid-upload fails the write with its own error, and leaves no multipart upload behind', async (t) => {
  const location = locationFor();
  const store = open(location);
  const item = await store.begin('postgres/nightly/broken');
  function* failing(): Generator<Buffer> {
    for (let i = 0; i < 12; i++) yield Buffer.alloc(1 << 20, i);
    throw new Error('pg_dump exited with status 1');
  }
  await t.rejects(item.writeFile('dump.pgc', Readable.from(failing(), { highWaterMark: 1 })), { message: 'pg_dump exited with status 1' });
  t.same((await everything(location)).uploads, [], 'the parts already sent were aborted');
  await item.abort();
  t.same(await everything(location), { keys: [], uploads: [] }, 'abort removes the marker');
});

t.test('uploading 200 MB from a generated stream keeps the process memory bounded', async (t) => {
  const store = open(locationFor());
  const item = await store.begin('redis/hourly/huge');
  const { source, expected } = generated(200 * 1024 * 1024);
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  try {
    const file = await item.writeFile('dump.rdb', source);
    t.equal(file.sha256, expected());
    t.equal(file.bytes, 200 * 1024 * 1024);
  } finally {
    clearInterval(sampler);
  }
  const grewMb = (peak - before) / (1 << 20);
  t.ok(grewMb < 100, `RSS grew by ${grewMb.toFixed(0)} MB while 200 MB went up (8 MiB parts from a pool of 4)`);
  await item.abort();
});

t.test('a flipped byte in a stored object fails the read with VERIFY_FAILED naming the object', async (t) => {
  const location = locationFor();
  const store = open(location);
  const item = await store.begin('chroma/daily/one');
  const file = await item.writeFile('collections.tar', Readable.from([Buffer.from('the stored bytes of a chroma backup')]));
  await item.publish(JSON.stringify({ files: [file] }));
  // s3rver keeps the object as a plain file: damage it there, as a failing disk would.
  const onDisk = join(sandbox.s3!.dataDir, location.bucket, `${location.prefix}chroma/daily/one/collections.tar._S3rver_object`);
  const bytes = await readFile(onDisk);
  bytes[5] ^= 0x20;
  await writeFile(onDisk, bytes);
  const url = `s3://${location.bucket}/${location.prefix}chroma/daily/one/collections.tar`;
  const failure = await (async () => {
    try {
      for await (const _ of store.read('chroma/daily/one', file)) { /* drain */ }
    } catch (e) {
      return e as JarvisError;
    }
    return undefined;
  })();
  t.equal(failure?.code, 'VERIFY_FAILED');
  t.equal(failure?.message, `${url} does not match its SHA-256`);
  t.match(failure?.hint, /is damaged: use another backup or archive/);
  t.notSame(await store.hash('chroma/daily/one', 'collections.tar'), { sha256: file.sha256, bytes: file.bytes });
});

t.test('listing shows published items and folders only: a staged item, a half-deleted one and stray files are not listed', async (t) => {
  const location = locationFor();
  const store = open(location);
  const done = await store.begin('postgres/nightly/a-published');
  await done.writeFile('dump.pgc', Readable.from([Buffer.from('x')]));
  await done.publish('{}');
  const staged = await store.begin('postgres/nightly/b-staged');
  await staged.writeFile('dump.pgc', Readable.from([Buffer.from('y')]));
  const deleting = await store.begin('postgres/nightly/c-deleting');
  await deleting.publish('{}');
  await store.putText(`${location.prefix}postgres/nightly/c-deleting/.deleting`, JSON.stringify(store.newMarker('r', new Date().toISOString())));
  await store.putText(`${location.prefix}postgres/nightly/d-no-manifest/dump.pgc`, 'z');
  t.same(await store.list('postgres/nightly'), ['a-published']);
  t.same(await store.list('postgres'), ['nightly'], 'a folder of items is listed');
  t.same(await store.list(''), ['postgres']);
  t.same(await store.files('postgres/nightly/a-published'), ['dump.pgc', 'manifest.json']);
  await staged.publish('{}');
  t.same(await store.list('postgres/nightly'), ['a-published', 'b-staged'], 'listed once published');
});

t.test('debris of a dead run is found and removed with its incomplete multipart upload; a live run\'s staged item is not debris', async (t) => {
  const location = locationFor();
  const store = open(location);
  const live = await store.begin('redis/hourly/live');
  await live.writeFile('dump.rdb', Readable.from([Buffer.alloc(100, 1)]));
  const dead = open(location, { owner: { pid: deadPid(), host: hostname() } });
  const killed = await dead.begin('redis/hourly/killed');
  await killed.writeFile('small.bin', Readable.from([Buffer.alloc(100, 2)]));
  // The killed run was in the middle of a multipart upload: one part sent, never completed.
  const key = `${location.prefix}redis/hourly/killed/dump.rdb`;
  const { UploadId } = await store.client.send(new CreateMultipartUploadCommand({ Bucket: location.bucket, Key: key }));
  await store.client.send(new UploadPartCommand({ Bucket: location.bucket, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(PART_SIZE, 3) }));
  t.same((await everything(location)).uploads, ['redis/hourly/killed/dump.rdb']);

  const debris = await store.findDebris('redis/hourly');
  t.same(debris.map((d) => d.key), ['redis/hourly/killed'], 'only the dead run\'s item');
  t.equal(debris[0]!.location, `s3://${location.bucket}/${location.prefix}redis/hourly/killed`);
  await store.removeDebris(debris);
  t.same(await everything(location), { keys: ['redis/hourly/live/.staged', 'redis/hourly/live/dump.rdb'], uploads: [] }, 'its objects and its upload are gone, the live run\'s are there');
  const uploadsDir = join(sandbox.s3!.dataDir, location.bucket, '._S3rver_uploads');
  t.same(await readdir(uploadsDir).catch(() => []), [], 'the server holds no part of the aborted upload');
  t.same(await store.findDebris('redis/hourly'), []);
  await live.publish('{}');
  t.same(await store.list('redis/hourly'), ['live']);
});

t.test('a marker from another host is its owner\'s while the heartbeat is fresh, and debris once it is older than the lease', async (t) => {
  const location = locationFor();
  const beating = open(location, { owner: { pid: 1, host: 'elsewhere' }, heartbeatMs: 200 });
  const silent = open(location, { owner: { pid: 1, host: 'elsewhere' }, heartbeatMs: 3_600_000 });
  const cleaner = open(location, { leaseMs: 1500 });
  const a = await beating.begin('archives/p/beating');
  const b = await silent.begin('archives/p/silent');
  await new Promise((resolve) => setTimeout(resolve, 2000));
  t.same((await cleaner.findDebris('archives/p')).map((d) => d.key), ['archives/p/silent'], 'the item whose marker stopped beating is debris, the other is not');
  const marker = JSON.parse((await cleaner.readText('archives/p/beating', '.staged'))!) as { heartbeat: string; startedAt: string; host: string; runId: string };
  t.ok(Date.parse(marker.heartbeat) > Date.parse(marker.startedAt) + 1000, 'the heartbeat was rewritten while staged');
  t.equal(marker.host, 'elsewhere');
  t.match(marker.runId, /^[0-9a-f-]{36}$/);
  await a.publish('{}');
  await b.abort();
  t.same(await cleaner.findDebris('archives/p'), []);
  t.same(await cleaner.list('archives/p'), ['beating']);
});

t.test('a run whose staged item was removed as debris meanwhile does not publish it', async (t) => {
  const location = locationFor();
  const store = open(location);
  const item = await store.begin('postgres/nightly/stalled');
  const file = await item.writeFile('dump.pgc', Readable.from([Buffer.from('a dump')]));
  await open(location).removeDebris([{ key: 'postgres/nightly/stalled', location: store.location('postgres/nightly/stalled') }]);
  await t.rejects(item.publish(JSON.stringify({ files: [file] })), { code: 'REPOSITORY', message: /removed before it was published/ });
  t.same(await store.list('postgres/nightly'), []);
  t.same(await everything(location), { keys: [], uploads: [] }, 'no manifest was written');
});

t.test('files a killed run was adding to a published item are leftovers whose owner is dead, an incomplete upload included', async (t) => {
  const location = locationFor();
  const store = open(location, { manifestName: 'archive.json' });
  const item = await store.begin('policy/a1');
  await item.publish('{}');
  const dead = open(location, { manifestName: 'archive.json', owner: { pid: deadPid(), host: hostname() } });
  const stagedObject = dead.stagedFileName('chunk-000001.jsonl.gz');
  await dead.putText(dead.objectKey('policy/a1', stagedObject), 'rows');
  const stagedUpload = dead.stagedFileName('chunk-000003.jsonl.gz');
  const key = dead.objectKey('policy/a1', stagedUpload);
  const { UploadId } = await store.client.send(new CreateMultipartUploadCommand({ Bucket: location.bucket, Key: key }));
  await store.client.send(new UploadPartCommand({ Bucket: location.bucket, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(PART_SIZE, 3) }));
  const ours = store.stagedFileName('chunk-000004.jsonl.gz');
  await store.putText(store.objectKey('policy/a1', ours), 'being written');
  const added = await store.addFile('policy/a1', 'chunk-000002.jsonl.gz', Readable.from([Buffer.from('rows')]));
  t.same(added, { name: 'chunk-000002.jsonl.gz', bytes: 4, sha256: createHash('sha256').update('rows').digest('hex') });
  const leftovers = await store.leftovers('policy/a1');
  t.same(leftovers.map((l) => [l.name, l.ownerAlive]).sort(), [[stagedObject, false], [stagedUpload, false], [ours, true]].sort());
  await store.removeDebris(leftovers.filter((l) => !l.ownerAlive));
  t.same(await store.files('policy/a1'), [ours, 'archive.json', 'chunk-000002.jsonl.gz'].sort());
  t.same((await everything(location)).uploads, [], 'the incomplete upload was aborted');
});

t.test('files a tool wrote into a staged local directory are uploaded, and a published item opens as a verified local download', async (t) => {
  const location = locationFor();
  const store = open(location);
  const item = await store.begin('postgres/nightly/dir');
  const staged = await item.stageLocalDirectory('data');
  t.ok(stagedPaths().includes(staged.path), 'a forced exit would remove the local directory');
  await mkdir(join(staged.path, 'sub'), { recursive: true });
  await writeFile(join(staged.path, 'toc.dat'), 'table of contents');
  await writeFile(join(staged.path, 'sub', '3001.dat'), 'rows of a table');
  const files = [
    await item.adoptLocalFile(join(staged.path, 'toc.dat'), 'data/toc.dat'),
    await item.adoptLocalFile(join(staged.path, 'sub', '3001.dat'), 'data/sub/3001.dat'),
  ];
  await t.rejects(item.adoptLocalFile('/etc/hostname', 'data/x'), /is not in a staged local directory/);
  await staged.release();
  t.notOk(existsSync(staged.path), 'release removes the local directory');
  await item.publish(JSON.stringify({ files }));

  const local = await store.openLocalDirectory('postgres/nightly/dir');
  t.equal(await readFile(join(local.path, 'data', 'sub', '3001.dat'), 'utf8'), 'rows of a table');
  t.equal(await readFile(join(local.path, 'data', 'toc.dat'), 'utf8'), 'table of contents');
  t.notOk(existsSync(join(local.path, '.staged')));
  await local.release();
  t.notOk(existsSync(local.path), 'release removes the download');

  const onDisk = join(sandbox.s3!.dataDir, location.bucket, `${location.prefix}postgres/nightly/dir/data/toc.dat._S3rver_object`);
  await writeFile(onDisk, 'table of contentz');
  await t.rejects(store.openLocalDirectory('postgres/nightly/dir'), { code: 'VERIFY_FAILED', message: /data\/toc\.dat does not match its SHA-256/ }, 'a damaged file fails the download');
  t.notOk(stagedPaths().some((p) => p.includes('jarvis-db-s3-open-dir')), 'the failed download left no local directory');

  const scratch = await store.scratchDirectory('postgres/nightly/dir');
  t.ok(existsSync(scratch.path));
  await scratch.release();
  t.notOk(existsSync(scratch.path));
});

/** Every text a failure shows or carries: message, hint, causes, and the whole object inspected. */
function allTextOf(e: unknown): string {
  const parts = [describeFailure(e, true), inspect(e, { depth: 10 })];
  for (let c: unknown = e; c instanceof Error; c = c.cause) parts.push(c.message, String((c as JarvisError).hint ?? ''));
  return parts.join('\n');
}

async function failureOf(store: S3SealedStore): Promise<{ error: JarvisError; ms: number }> {
  const started = Date.now();
  try {
    await store.list('postgres');
  } catch (e) {
    return { error: e as JarvisError, ms: Date.now() - started };
  }
  throw new Error('the listing did not fail');
}

t.test('an unknown access key id is one REPOSITORY line naming the repository and bucket, without the secret', async (t) => {
  const location = locationFor('errors/');
  const secret = sandbox.s3!.secretAccessKey;
  const store = open(location, { env: { ...sandboxEnv(sandbox), AWS_ACCESS_KEY_ID: 'AKIAUNKNOWNKEY000000' } });
  const { error, ms } = await failureOf(store);
  t.equal(error.code, 'REPOSITORY');
  t.equal(error.message, `repository offsite (s3://${location.bucket}/errors/): the access key id is not known to the server`);
  t.match(error.hint, /AWS_ACCESS_KEY_ID/);
  t.ok(ms < 10_000, `failed in ${ms} ms`);
  t.notOk(allTextOf(error).includes(secret), 'the secret key appears nowhere');
});

t.test('a missing bucket is one REPOSITORY line saying to create it', async (t) => {
  const location = { ...locationFor('errors/'), bucket: 'no-such-bucket' };
  const { error, ms } = await failureOf(open(location));
  t.equal(error.code, 'REPOSITORY');
  t.equal(error.message, 'repository offsite (s3://no-such-bucket/errors/): the bucket no-such-bucket does not exist');
  t.match(error.hint, /create bucket no-such-bucket/);
  t.ok(ms < 10_000, `failed in ${ms} ms`);
  t.notOk(allTextOf(error).includes(sandbox.s3!.secretAccessKey));
});

t.test('an endpoint that is down fails in seconds with one REPOSITORY line saying to check the endpoint', async (t) => {
  const port = await freePort();
  const location = { ...locationFor('errors/'), endpoint: `http://127.0.0.1:${port}` };
  const { error, ms } = await failureOf(open(location));
  t.equal(error.code, 'REPOSITORY');
  t.equal(error.message, `repository offsite (s3://${location.bucket}/errors/): http://127.0.0.1:${port} is unreachable (ECONNREFUSED)`);
  t.match(error.hint, /check `endpoint`/);
  t.ok(ms < 10_000, `failed in ${ms} ms`);
  t.notOk(allTextOf(error).includes(sandbox.s3!.secretAccessKey));
  t.equal(describeFailure(error, false).split('\n').length, 2, 'one error line and its hint, no stack');
});

t.test('local directories a killed run left in the temp folder (a staged dump, a download) are removed by the next one made here; a live run\'s stay', async (t) => {
  const store = open(locationFor());
  const dead = join(tmpdir(), `jarvis-db-s3-stage-dump-${deadPid()}-AbC123`);
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => { sleeper.kill('SIGKILL'); });
  const live = join(tmpdir(), `jarvis-db-s3-open-item-${sleeper.pid}-XyZ789`);
  await mkdir(join(dead, 'dump'), { recursive: true });
  await writeFile(join(dead, 'dump', 'toc.dat'), 'left by a kill -9');
  await mkdir(live, { recursive: true });
  t.teardown(() => rm(live, { recursive: true, force: true }));
  const scratch = await store.scratchDirectory('postgres/nightly/20261203T000000Z-abcd');
  t.teardown(() => scratch.release());
  t.notOk(existsSync(dead), 'the dead run\'s directory is gone');
  t.ok(existsSync(live), 'the live run\'s directory is untouched');
  t.ok(existsSync(scratch.path), 'and the new one is made');
});
