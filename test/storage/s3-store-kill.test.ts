/**
 * kill -9 of a run writing to an S3 repository at chosen moments (docs/architecture.md §4 rule 1,
 * §6): a child process (the compiled store, build first: `npm run build`) stages an item with a
 * small file and a multipart one, publishes it, adds a file to it, writes a record, and deletes
 * an older item. After each kill, the listing shows only complete items, and the debris cleaning
 * leaves the prefix with nothing but published items' files: no marker, no staged file, no
 * incomplete multipart upload.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { openS3Store, type S3Location, type S3SealedStore } from '../../src/storage/s3-store.js';
import type { StoredFile } from '../../src/storage/sealed-store.js';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { withSandbox } from '../helpers/sandbox.js';
import { describeMoment, moments, type Moment } from '../helpers/kill.js';

const PAUSES = [
  's3.after-marker',
  's3.file-uploaded',
  's3.upload-part',
  's3.before-manifest',
  's3.after-manifest',
  'chunk-data-written',
  's3.add-file-copied',
  's3.after-deleting-marker',
  's3.after-manifest-delete',
];
const DELAYS_MS = [100, 250, 400, 550, 700];

const CHILD = `
  import { openS3Store } from ${JSON.stringify(new URL('../../dist/storage/s3-store.js', import.meta.url).pathname)};
  import { Readable } from 'node:stream';
  const location = JSON.parse(process.argv[2]);
  const store = openS3Store(location, { repository: 'offsite', manifestName: 'manifest.json', env: process.env });
  function* big() { for (let i = 0; i < 20; i++) yield Buffer.alloc(1 << 20, i); }
  const item = await store.begin('nightly/new');
  const small = await item.writeFile('small.txt', Readable.from([Buffer.from('a small file')]));
  const large = await item.writeFile('data/big.bin', Readable.from(big()));
  await item.publish(JSON.stringify({ files: [small, large] }));
  const chunk = await store.addFile('nightly/new', 'chunk-000001.jsonl.gz', Readable.from([Buffer.from('rows')]), { stagedPause: 'chunk-data-written' });
  await store.writeRecord('nightly/new', 'chunk-000001.json', JSON.stringify(chunk));
  process.stderr.write('jarvis-db: deleting nightly/old\\n');
  await store.delete('nightly/old');
  process.stderr.write('jarvis-db: done\\n');
`;

/** Runs the child until the moment, then kills its process group. */
async function killAt(script: string, location: S3Location, env: NodeJS.ProcessEnv, moment: Moment): Promise<{ paused: boolean; completed: boolean; stderr: string }> {
  const proc = spawn(process.execPath, [script, JSON.stringify(location)], {
    env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: moment.pause ?? '' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true,
  });
  let stderr = '';
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  await new Promise<void>((resolve) => {
    proc.stderr!.on('data', (d: Buffer) => {
      stderr += d;
      if (moment.pause && stderr.includes(`test pause at ${moment.pause}`)) resolve();
    });
    if (moment.delayMs !== undefined) setTimeout(resolve, moment.delayMs);
    proc.on('exit', () => resolve());
  });
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* already gone */ }
  await exited;
  return { paused: Boolean(moment.pause) && stderr.includes(`test pause at ${moment.pause}`), completed: stderr.includes('jarvis-db: done'), stderr };
}

async function remaining(store: S3SealedStore, location: S3Location): Promise<{ keys: string[]; uploads: string[] }> {
  const keys = ((await store.client.send(new ListObjectsV2Command({ Bucket: location.bucket, Prefix: location.prefix }))).Contents ?? []).map((o) => o.Key!.slice(location.prefix.length));
  const uploads = ((await store.client.send(new ListMultipartUploadsCommand({ Bucket: location.bucket, Prefix: location.prefix }))).Uploads ?? []).map((u) => u.Key!.slice(location.prefix.length));
  return { keys: keys.sort(), uploads };
}

t.test('kill -9 at any moment of an S3 write leaves only complete items listed, and debris the cleaning removes whole', async (t) => {
  const sandbox = await withSandbox(t, ['s3']);
  const s3 = sandbox.s3!;
  const env = sandboxEnv(sandbox);
  const script = join(t.testdir(), 'write-child.mjs');
  await writeFile(script, CHILD);
  let n = 0;
  for (const moment of moments(PAUSES, DELAYS_MS)) {
    await t.test(describeMoment(moment), async (t) => {
      const location: S3Location = { bucket: s3.bucket, prefix: `kill-${++n}/`, region: s3.region, endpoint: s3.url, forcePathStyle: true };
      const store = openS3Store(location, { repository: 'offsite', manifestName: 'manifest.json', env }) as S3SealedStore;
      const old = await store.begin('nightly/old');
      const oldFile = await old.writeFile('dump.pgc', Readable.from([Buffer.from('an older backup')]));
      await old.publish(JSON.stringify({ files: [oldFile] }));

      const outcome = await killAt(script, location, env, moment);
      if (moment.pause) t.ok(outcome.paused, `the child reached ${moment.pause}`);
      t.comment(outcome.completed ? 'the child had finished before the kill' : 'killed mid-write');
      t.notOk(outcome.stderr.includes('NodeVersionSupportWarning'), 'the SDK\'s Node version warning is not printed');
      if (moment.pause === 's3.upload-part') t.same((await remaining(store, location)).uploads, ['nightly/new/data/big.bin'], 'an incomplete multipart upload was left');

      const listed = await store.list('nightly');
      t.ok(listed.every((id) => id === 'new' || id === 'old'), `listed: ${listed.join(', ')}`);
      for (const id of listed) {
        const manifest = JSON.parse((await store.readText(`nightly/${id}`, 'manifest.json'))!) as { files: StoredFile[] };
        for (const f of manifest.files) t.ok((await text(store.read(`nightly/${id}`, f))).length === f.bytes, `${id}/${f.name} is whole and verifies`);
      }
      // Until the child starts deleting the older item it stays listed (a kill by delay can land mid-delete or just after it).
      if (!outcome.stderr.includes('jarvis-db: deleting nightly/old')) t.ok(listed.includes('old'), 'the older item is untouched');

      const debris = [...(await store.findDebris('nightly'))];
      for (const id of listed) debris.push(...(await store.leftovers(`nightly/${id}`)).filter((l) => !l.ownerAlive));
      await store.removeDebris(debris);

      const after = await store.list('nightly');
      t.same(after, listed, 'cleaning changes nothing that lists');
      t.same(await store.findDebris('nightly'), [], 'no debris is left');
      const left = await remaining(store, location);
      t.same(left.uploads, [], 'no multipart upload is left');
      const stray = left.keys.filter((k) => {
        const [, id, ...rest] = k.split('/');
        const name = rest.join('/');
        return !after.includes(id!) || name.startsWith('.') || name.includes('/.');
      });
      t.same(stray, [], 'every object left belongs to a listed item, and none is a marker or staged file');
    });
  }
});
