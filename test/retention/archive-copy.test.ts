/**
 * Archives in every repository, on the sandbox (PostgreSQL and s3rver), through the compiled CLI
 * (build first): an apply that archives rows into the local repository copies the new archive
 * to S3 in the same run; a copy killed with kill -9 leaves nothing listed in S3 and the next
 * apply removes its debris and copies it whole; with the local repository gone, `archive list`
 * and `archive restore` work from S3 alone; an expired archive is pruned in both. The archives of
 * whole partitions (one per partition, all from one action) are copied in the same apply too.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { withSandbox, type SandboxState } from '../helpers/sandbox.js';
import { dailyTable, sql } from './fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const MIGRATIONS = new URL('../../migrations', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** storage ./state, repositories local (./repo) and offsite (the sandbox bucket, prefix prod/), one archive policy. */
async function project(dir: string, deleteAfter = '30d'): Promise<string> {
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./state',
    'repositories:',
    '  - { name: local, path: ./repo }',
    '  - name: offsite',
    '    s3: { bucket: "${JARVIS_S3_BUCKET}", prefix: prod/, region: "${AWS_REGION:-us-east-1}", endpoint: "${JARVIS_S3_ENDPOINT:-}", forcePathStyle: true }',
    `schema: { migrations: ${JSON.stringify(MIGRATIONS)}, target: latest, backupBefore: false }`,
    'retention:', '  policies:',
    `    - { name: cache-archive, table: cache_entries, age: { column: created_at, olderThan: 7d }, action: archive, batchSize: 100, archive: { deleteAfter: ${deleteAfter} } }`,
    '',
  ].join('\n'));
  return config;
}

function s3Client(state: SandboxState): S3Client {
  const s3 = state.s3!;
  return new S3Client({ endpoint: s3.url, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
}

async function objectsUnder(state: SandboxState, prefix: string): Promise<string[]> {
  const r = await s3Client(state).send(new ListObjectsV2Command({ Bucket: state.s3!.bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

const digest = async (url: string) => (await sql<{ n: number; d: string | null }>(url, `SELECT count(*)::int AS n, md5(string_agg(key || value::text || created_at::text, ',' ORDER BY key)) AS d FROM cache_entries`))[0]!;

interface Listed { id: string; rows: number; repositories?: string[] }
function listed(env: Record<string, string>): Listed[] {
  const r = cli(['archive', 'list', '--json'], env);
  if (r.code !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { archives: Listed[] }).archives;
}

/** Runs `apply` paused at the first chunk of the copy, kills it with SIGKILL there. */
async function applyKilledInCopy(env: Record<string, string>): Promise<void> {
  const child = spawn(process.execPath, [BIN, 'apply', '--auto-approve'], { env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: 'archive-copy-chunk' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => { err += d; if (err.includes('test pause at archive-copy-chunk')) resolve(); });
    child.on('exit', (code) => reject(new Error(`apply exited ${code} before the pause point: ${err}`)));
  });
  child.removeAllListeners('exit');
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

t.test('archives reach S3 in the same apply, survive a killed copy and the loss of the local repository', async (t) => {
  const state = await withSandbox(t, ['postgres', 's3']);
  const env0 = sandboxEnv(state);
  const pgUrl = state.postgres!.url;
  const dir = join(t.testdir(), 'project');
  const env = { ...env0, JARVIS_DB_CONFIG: await project(dir) };
  const init = cli(['init'], env);
  t.equal(init.code, 0, init.stderr);
  const insertOld = (from: number, n: number) => sql(pgUrl, `INSERT INTO cache_entries (key, value, created_at) SELECT 'k' || i, jsonb_build_object('i', i), now() - interval '10 days' - i * interval '1 minute' FROM generate_series(${from}, ${from + n - 1}) i`);
  await insertOld(1, 450);
  const original = await digest(pgUrl);

  const first = cli(['apply', '--auto-approve'], env);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /copy_archive/, 'the apply copies the archive it writes');
  t.notMatch(first.stdout + first.stderr, state.s3!.secretAccessKey, 'the secret key is never printed');
  t.equal((await digest(pgUrl)).n, 0, 'the old rows were archived and deleted');
  const afterFirst = listed(env);
  t.same(afterFirst.map((a) => [a.rows, a.repositories]), [[450, ['local', 'offsite']]]);

  // A second archive run whose copy is killed mid-way: S3 lists nothing of it, the next apply finishes it.
  await insertOld(1001, 230);
  await applyKilledInCopy(env);
  const listedAfterKill = listed(env);
  t.same(listedAfterKill.map((a) => [a.rows, a.repositories]), [[450, ['local', 'offsite']], [230, ['local']]], 'the killed copy is not listed in offsite');
  const second = listedAfterKill[1]!.id;
  t.ok((await objectsUnder(state, `prod/archives/cache-archive/${second}/`)).length > 0, 'the killed copy left staged objects');
  const plan = cli(['plan'], env);
  t.match(plan.stdout, new RegExp(`copy_archive.*cache-archive/${second} to offsite`), 'plan copies the archive the killed run did not');
  const again = cli(['apply', '--auto-approve'], env);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout + again.stderr, /left by a killed archive run or copy/, 'the debris of the killed copy was removed');
  t.same(listed(env).map((a) => [a.rows, a.repositories]), [[450, ['local', 'offsite']], [230, ['local', 'offsite']]]);
  const objects = await objectsUnder(state, `prod/archives/cache-archive/${second}/`);
  t.notOk(objects.some((k) => k.includes('.staged') || k.includes('.tmp')), `no staged object is left: ${objects.join(', ')}`);

  // The host is lost: a new project directory with the same config, S3 alone.
  await rm(dir, { recursive: true });
  const env2 = { ...env0, JARVIS_DB_CONFIG: await project(join(t.testdir(), 'new-host')) };
  t.same(listed(env2).map((a) => [a.rows, a.repositories]), [[450, ['offsite']], [230, ['offsite']]], 'archive list works from S3 alone');
  for (const a of listed(env2)) {
    const verify = cli(['archive', 'verify', a.id], env2);
    t.equal(verify.code, 0, verify.stderr);
    const restore = cli(['archive', 'restore', a.id], env2);
    t.equal(restore.code, 0, restore.stderr);
  }
  const back = await digest(pgUrl);
  t.equal(back.n, 680, 'every archived row is back');
  await sql(pgUrl, `DELETE FROM cache_entries WHERE key::text ~ '^k1[0-9]{3}$'`);
  t.same(await digest(pgUrl), original, 'the first archive restores the original rows exactly');

  // Expired (deleteAfter 1d, cut-offs more than a week old): pruned in offsite, the only holder now.
  const env3 = { ...env0, JARVIS_DB_CONFIG: await project(join(t.testdir(), 'expiring'), '1d') };
  await sql(pgUrl, 'DELETE FROM cache_entries');
  const prune = cli(['apply', '--auto-approve'], env3);
  t.equal(prune.code, 0, prune.stderr);
  t.match(prune.stdout + prune.stderr, /deleted from offsite/);
  t.same(listed(env3), [], 'no archive is left anywhere');
  t.same(await objectsUnder(state, 'prod/archives/cache-archive/'), [], 'nothing of them is left in the bucket');
});

t.test('each archive of a policy\'s whole partitions, written by one action, is copied to S3 in the same apply', async (t) => {
  const state = await withSandbox(t, ['postgres', 's3']);
  const pgUrl = state.postgres!.url;
  await dailyTable(pgUrl, 'metrics');
  const dir = join(t.testdir(), 'project');
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./state',
    'repositories:', '  - { name: local, path: ./repo }', '  - name: offsite',
    '    s3: { bucket: "${JARVIS_S3_BUCKET}", prefix: prod/, region: "${AWS_REGION:-us-east-1}", endpoint: "${JARVIS_S3_ENDPOINT:-}", forcePathStyle: true }',
    'retention:', '  policies:',
    '    - { name: metrics-archive, table: metrics, age: { column: recorded_at, olderThan: 5d }, action: archive, batchSize: 300 }', '',
  ].join('\n'));
  const env = { ...sandboxEnv(state), JARVIS_DB_CONFIG: config };
  const apply = cli(['apply', '--auto-approve'], env);
  t.equal(apply.code, 0, apply.stderr);
  t.match(apply.stdout + apply.stderr, /5 partitions of public\.metrics dropped, \d+ rows archived first \(5 archives/);
  t.match(apply.stdout + apply.stderr, /5 archives of metrics-archive copied from local to offsite/, 'one copy action copies all five');
  const archives = listed(env);
  t.ok(archives.length >= 5, `the five partitions' archives, and the straddling day's batches' if it had old rows (${archives.length})`);
  t.same(archives.map((a) => a.repositories), archives.map(() => ['local', 'offsite']), 'every one is in both repositories');
});
