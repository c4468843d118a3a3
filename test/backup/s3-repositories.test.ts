/**
 * A local and an S3 repository on the sandbox (s3rver), end to end through the compiled CLI (build
 * first with `npm run build`): PostgreSQL, Redis and Chroma backed up to both; the local repository
 * and the storage path deleted; each restored from S3 alone with a fresh config directory: identical
 * data. A flipped byte in an S3 object: `backup verify` fails naming the object, restore refuses it.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { withSandbox, type SandboxState } from '../helpers/sandbox.js';
import { client as chromaClient, seedCollections, snapshot } from './chroma/fixture.js';
import { populateRich, walk, withClient } from './redis/fixture.js';
import { sql } from './fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const OPERATIONS = new URL('../../dist/backup/operations.js', import.meta.url).pathname;
const LOAD = new URL('../../dist/config/load.js', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface ListedBackup { id: string; service: string; repositories: string[]; copies: { repository: string; dir: string }[] }
function listed(env: Record<string, string>): ListedBackup[] {
  const r = cli(['backup', 'list', '--json'], env);
  if (r.code !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { backups: ListedBackup[] }).backups;
}

/** A config dir: storage ./state, repositories local (./repo) and offsite (the sandbox bucket, prefix prod/). */
async function project(dir: string, services: string[], schedules: string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', ...services, 'storage:', '  path: ./state',
    'repositories:',
    '  - { name: local, path: ./repo }',
    '  - name: offsite',
    '    s3: { bucket: "${JARVIS_S3_BUCKET}", prefix: prod/, region: "${AWS_REGION:-us-east-1}", endpoint: "${JARVIS_S3_ENDPOINT:-}", forcePathStyle: true }',
    'backups:', ...schedules, '',
  ].join('\n'));
  return config;
}

function s3Client(state: SandboxState): S3Client {
  const s3 = state.s3!;
  return new S3Client({ endpoint: s3.url, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
}

/** The object key of a file of a backup copy listed at `s3://bucket/<prefix>...`. */
function objectKey(dir: string, bucket: string, name: string): string {
  return `${dir.slice(`s3://${bucket}/`.length)}/${name}`;
}

t.test('PostgreSQL, Redis and Chroma backed up to local + S3; local repository and storage path gone; each restored from S3 alone: identical data', async (t) => {
  const state = await withSandbox(t, ['postgres', 'redis', 'chroma', 's3']);
  const env0 = sandboxEnv(state);
  const pgUrl = state.postgres!.url;
  await sql(pgUrl, `CREATE TABLE dr_items (id int primary key, v text); INSERT INTO dr_items SELECT i, md5(i::text) FROM generate_series(1, 5000) i;`);
  const digest = async (url: string) => (await sql(url, `SELECT count(*)::int AS n, md5(string_agg(id::text || ':' || v, ',' ORDER BY id)) AS d FROM dr_items`))[0]!.rows[0] as { n: number; d: string };
  const pgBefore = await digest(pgUrl);
  await populateRich(state.redis!.url);
  const redisBefore = [await walk(state.redis!.url, 0), await walk(state.redis!.url, 1)];
  const names = await seedCollections(state.chroma!.url, 120);
  const chromaBefore = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await snapshot(state.chroma!.url, n)] as const)));

  const services = ['  postgres: { url: "${JARVIS_PG_URL}" }', '  redis: { url: "${JARVIS_REDIS_URL}" }', '  chroma: { url: "${JARVIS_CHROMA_URL}" }'];
  const schedules = [
    '  - { name: postgres-nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }',
    '  - { name: redis-hourly, service: redis, cron: "0 * * * *", method: rdb, keep: { last: 3 } }',
    '  - { name: chroma-daily, service: chroma, cron: "30 3 * * *", keep: { last: 3 } }',
  ];
  const first = join(t.testdir(), 'machine-1');
  const env = { ...env0, JARVIS_DB_CONFIG: await project(first, services, schedules) };
  const create = cli(['backup', 'create', '--service', 'all'], env);
  t.equal(create.code, 0, create.stderr);
  t.notMatch(create.stdout + create.stderr, state.s3!.secretAccessKey, 'the secret key is never printed');
  const backups = listed(env);
  t.same(backups.map((b) => [b.service, b.repositories]).sort(), [['chroma', ['local', 'offsite']], ['postgres', ['local', 'offsite']], ['redis', ['local', 'offsite']]]);

  // A new machine: only the config, an empty storage path, no local repository.
  await rm(first, { recursive: true });
  const second = join(t.testdir(), 'machine-2');
  const env2 = { ...env0, JARVIS_DB_CONFIG: await project(second, services, schedules) };
  const after = listed(env2);
  t.same(after.map((b) => [b.id, b.repositories]).sort(), backups.map((b) => [b.id, ['offsite']]).sort(), 'backup list works from S3 alone');
  const byService = new Map(after.map((b) => [b.service, b.id]));

  const pg = cli(['restore', byService.get('postgres')!, '--target-db', 'dr_restored'], env2);
  t.equal(pg.code, 0, pg.stderr);
  const restoredUrl = new URL(pgUrl);
  restoredUrl.pathname = '/dr_restored';
  t.same(await digest(restoredUrl.toString()), pgBefore, 'postgres: same row count and digest');

  await withClient(state.redis!.url, (c) => c.flushall());
  const redis = cli(['restore', byService.get('redis')!, '--flush'], env2);
  t.equal(redis.code, 0, redis.stderr);
  t.same([await walk(state.redis!.url, 0), await walk(state.redis!.url, 1)], redisBefore, 'redis: every key, type, value and expiry identical');

  for (const n of names) await chromaClient(state.chroma!.url).deleteCollection({ name: n });
  const chroma = cli(['restore', byService.get('chroma')!], env2);
  t.equal(chroma.code, 0, chroma.stderr);
  for (const n of names) {
    const s = await snapshot(state.chroma!.url, n);
    t.same(s.records, chromaBefore[n]!.records, `chroma ${n}: ids, embeddings, documents and metadata identical`);
  }
  for (const r of [pg, redis, chroma]) t.notMatch(r.stdout + r.stderr, state.s3!.secretAccessKey);
});

t.test('a flipped byte in an S3 object: backup verify fails naming the object; restore from S3 refuses it', async (t) => {
  const state = await withSandbox(t, ['postgres', 's3']);
  const env0 = sandboxEnv(state);
  await sql(state.postgres!.url, `CREATE TABLE flip (id int primary key); INSERT INTO flip SELECT generate_series(1, 1000);`);
  const dir = join(t.testdir(), 'p');
  const env = { ...env0, JARVIS_DB_CONFIG: await project(dir, ['  postgres: { url: "${JARVIS_PG_URL}" }'], ['  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }']) };
  t.equal(cli(['backup', 'create', '--service', 'postgres'], env).code, 0);
  const [backup] = listed(env);
  const offsite = backup!.copies.find((c) => c.repository === 'offsite')!;
  const manifest = JSON.parse(await readFile(join(backup!.copies[0]!.dir, 'manifest.json'), 'utf8')) as { files: { name: string; bytes: number }[] };
  const file = [...manifest.files].sort((a, b) => b.bytes - a.bytes)[0]!;
  const s3 = s3Client(state);
  t.teardown(() => s3.destroy());
  const Key = objectKey(offsite.dir, state.s3!.bucket, file.name);
  const got = await s3.send(new GetObjectCommand({ Bucket: state.s3!.bucket, Key }));
  const bytes = Buffer.from(await got.Body!.transformToByteArray());
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  await s3.send(new PutObjectCommand({ Bucket: state.s3!.bucket, Key, Body: bytes }));

  const verify = cli(['backup', 'verify', backup!.id, '--repository', 'offsite'], env);
  t.equal(verify.code, 1);
  t.match(verify.stdout + verify.stderr, file.name, 'names the object');
  t.match(verify.stdout + verify.stderr, /in offsite \(s3:\/\//);
  t.notMatch(verify.stderr, /\n\s+at /, 'no stack trace');
  const refused = cli(['restore', backup!.id, '--repository', 'offsite', '--target-db', 'flip_restored'], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /damaged: .* in offsite/);
  t.equal(cli(['backup', 'verify', backup!.id, '--repository', 'local'], env).code, 0, 'the local copy is intact');
  for (const r of [verify, refused]) t.notMatch(r.stdout + r.stderr, state.s3!.secretAccessKey);
});

t.test('wrong S3 credentials: list names the repository and bucket in one line, exit 1; apply backs up to local and holds back only the copy', async (t) => {
  const state = await withSandbox(t, ['postgres', 's3']);
  const env0 = { ...sandboxEnv(state), AWS_ACCESS_KEY_ID: 'AKIAUNKNOWN000000000' };
  await sql(state.postgres!.url, `CREATE TABLE creds (id int primary key); INSERT INTO creds SELECT generate_series(1, 10);`);
  const dir = join(t.testdir(), 'p');
  const env = { ...env0, JARVIS_DB_CONFIG: await project(dir, ['  postgres: { url: "${JARVIS_PG_URL}" }'], ['  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }']) };
  const list = cli(['backup', 'list'], env);
  t.equal(list.code, 1);
  t.match(list.stderr, new RegExp(`^error: repository offsite \\(s3://${state.s3!.bucket}/prod/\\) cannot be read: .*${state.s3!.bucket}`, 'm'));
  t.notMatch(list.stderr, /\n\s+at /, 'no stack trace');
  const apply = cli(['apply', '--auto-approve', '--target', 'backup'], env);
  t.equal(apply.code, 1);
  t.match(apply.stdout + apply.stderr, /repository offsite .* cannot be read/);
  const local = JSON.parse(cli(['backup', 'list', '--json', '--repository', 'local'], env).stdout) as { backups: ListedBackup[] };
  t.same(local.backups.map((b) => b.repositories), [['local']], 'the backup to local went on');
  for (const r of [list, apply]) t.notMatch(r.stdout + r.stderr, state.s3!.secretAccessKey, 'the secret key is in no output');
});

t.test('kill -9 during a copy to S3 (after a file, before the manifest): S3 lists nothing of it; the next apply removes the debris and copies again', async (t) => {
  const state = await withSandbox(t, ['postgres', 's3']);
  await sql(state.postgres!.url, `CREATE TABLE k1 (id int primary key); INSERT INTO k1 SELECT generate_series(1, 3000); CREATE TABLE k2 (id int primary key); INSERT INTO k2 SELECT generate_series(1, 3000);`);
  const dir = join(t.testdir(), 'p');
  const env = { ...sandboxEnv(state), JARVIS_DB_CONFIG: await project(dir, ['  postgres: { url: "${JARVIS_PG_URL}" }'], ['  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }']) };
  const create = cli(['backup', 'create', '--service', 'postgres'], env);
  t.equal(create.code, 0, create.stderr);
  const [backup] = listed(env);
  const s3 = s3Client(state);
  t.teardown(() => s3.destroy());
  // The offsite copy removed object by object: the next copy is the one killed.
  const offsite = backup!.copies.find((c) => c.repository === 'offsite')!;
  const { DeleteObjectCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const objects = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: state.s3!.bucket, Prefix: offsite.dir.slice(`s3://${state.s3!.bucket}/`.length) }))).Contents ?? []).map((o) => o.Key!);
  for (const Key of await objects()) await s3.send(new DeleteObjectCommand({ Bucket: state.s3!.bucket, Key }));
  t.same(listed(env)[0]!.repositories, ['local'], 'the offsite copy is gone');
  const child = join(dir, 'copy-child.mjs');
  await writeFile(child, `
    import { copyBackup } from ${JSON.stringify(OPERATIONS)};
    import { loadConfig } from ${JSON.stringify(LOAD)};
    const desired = await loadConfig(process.env.JARVIS_DB_CONFIG, process.env);
    await copyBackup(desired, { id: ${JSON.stringify(backup!.id)}, from: 'local', to: 'offsite', env: process.env });
    process.stderr.write('jarvis-db: done\\n');
  `);
  for (const pause of ['copy-file-written', 'copy-before-manifest']) {
    const proc = spawn(process.execPath, [child], { env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: pause }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    await new Promise<void>((resolve) => {
      proc.stderr!.on('data', (d: Buffer) => { stderr += d; if (stderr.includes(`test pause at ${pause}`)) resolve(); });
      proc.on('exit', () => resolve());
    });
    process.kill(-proc.pid!, 'SIGKILL');
    await exited;
    t.match(stderr, `test pause at ${pause}`, `the copy paused at ${pause}`);
    t.same(listed(env)[0]!.repositories, ['local'], `killed at ${pause}: S3 lists nothing of it`);
    t.ok((await objects()).length > 0, 'objects of the staged copy are there (debris)');
  }
  const apply = cli(['apply', '--auto-approve', '--target', 'backup'], env);
  t.equal(apply.code, 0, apply.stdout + apply.stderr);
  t.same(listed(env)[0]!.repositories, ['local', 'offsite'], 'copied again');
  t.notOk((await objects()).some((k) => k.endsWith('/.staged')), 'no staged marker is left');
  t.equal(cli(['backup', 'verify', backup!.id, '--repository', 'offsite'], env).code, 0, 'the copy verifies');
  t.notMatch(apply.stdout + apply.stderr, state.s3!.secretAccessKey);
});
