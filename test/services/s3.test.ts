/**
 * The S3 edge (src/services/s3.ts): on Node 20 the AWS SDK warns that later versions will need
 * Node 22 the first time a client is built; jarvis-db drops that one warning, and only it. An S3
 * refusal (from the sandbox's s3rver) without a mapping of its own keeps its S3 code.
 * Real processes (the compiled code, build first: `npm run build`) against the sandbox's s3rver.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createS3Client, s3Failure, loadS3Sdk } from '../../src/services/s3.js';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { withSandbox } from '../helpers/sandbox.js';

await loadS3Sdk();

const dist = (path: string) => new URL(`../../dist/${path}`, import.meta.url).pathname;
const nodeMajor = Number(process.versions.node.split('.')[0]);

t.test('a process that lists an S3 repository prints no NodeVersionSupportWarning, while other warnings still show', async (t) => {
  const sandbox = await withSandbox(t, ['s3']);
  const s3 = sandbox.s3!;
  const dir = t.testdir();
  const location = { bucket: s3.bucket, prefix: 'warnings/', region: s3.region, endpoint: s3.url, forcePathStyle: true };
  const script = join(dir, 'list.mjs');
  await writeFile(script, `
    import { openS3Store } from ${JSON.stringify(dist('storage/s3-store.js'))};
    const store = openS3Store(${JSON.stringify(location)}, { repository: 'offsite', manifestName: 'manifest.json', env: process.env });
    console.log(JSON.stringify(await store.list('')));
    process.emitWarning('a warning of our own');
  `);
  const run = spawnSync(process.execPath, [script], { env: { ...process.env, ...sandboxEnv(sandbox) }, encoding: 'utf8' });
  t.equal(run.status, 0, 'the script ran');
  if (run.status !== 0) t.comment(run.stderr);
  t.equal(run.stdout.trim(), '[]', 'it reached the bucket');
  t.notMatch(run.stderr, /NodeVersionSupportWarning/);
  t.match(run.stderr, /a warning of our own/, 'other warnings are not swallowed');

  // The control: the SDK itself, without jarvis-db's client factory, does warn on this Node.
  const bare = join(dir, 'bare.mjs');
  await writeFile(bare, `
    import { createRequire } from 'node:module';
    const require = createRequire(${JSON.stringify(dist('storage/s3-store.js'))});
    const { S3Client } = require('@aws-sdk/client-s3');
    new S3Client({ region: 'us-east-1' });
  `);
  const control = spawnSync(process.execPath, [bare], { env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '' }, encoding: 'utf8' });
  if (nodeMajor < 22) t.match(control.stderr, /NodeVersionSupportWarning/, 'the SDK warns when nothing filters it');
  else t.pass('this Node is supported by the SDK: no warning to filter');
});

t.test('an S3 refusal without a mapping of its own is one REPOSITORY line naming the S3 code', async (t) => {
  const sandbox = await withSandbox(t, ['s3']);
  const s3 = sandbox.s3!;
  const env = sandboxEnv(sandbox);
  const target = { repository: 'offsite', bucket: s3.bucket, prefix: 'p/', endpoint: s3.url };
  const client = createS3Client({ region: s3.region, endpoint: s3.url, forcePathStyle: true }, env);
  const invalid = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, MaxKeys: -1 })).then(() => undefined, (e: unknown) => e);
  const generic = s3Failure(invalid, target, 'listing the bucket', env);
  t.equal(generic.code, 'REPOSITORY');
  t.equal(generic.message, `repository offsite (s3://${s3.bucket}/p/): S3 error InvalidArgument (HTTP 400) while listing the bucket`);
  t.match(generic.hint, /check the repository's S3 settings/);
  t.match((generic.cause as Error).message, /^InvalidArgument: /, 'the cause keeps the S3 code and message');
  t.notOk(`${generic.message}${generic.hint}${(generic.cause as Error).message}`.includes(s3.secretAccessKey));
});
