/**
 * wal push / wal fetch through the compiled CLI (build first: npm run build), as archive_command
 * and restore_command call them: a round trip is byte-identical, a second push of the same file
 * writes nothing, a different file of the same name is refused, a damaged copy is never handed
 * to PostgreSQL, kill -9 in the middle of a push leaves the whole segment or nothing. Then several
 * repositories (a local one that fails after the first, an S3 bucket on the sandbox's s3rver).
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import type { Desired, RepositoryConfig } from '../../src/config/types.js';
import { fetchWalFile, pushWalFile, removeWalDebris } from '../../src/wal/archive.js';
import { withSandbox } from '../helpers/sandbox.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A WAL-like file: random bytes, with runs of zeros as a real segment has (it compresses). */
function fakeSegment(bytes = 2 * 1024 * 1024): Buffer {
  const b = Buffer.alloc(bytes);
  randomBytes(bytes / 2).copy(b, 0);
  return b;
}

async function setup(dir: string, extra: string[] = []): Promise<{ env: Record<string, string>; storage: string; pgWal: string }> {
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, ['version: 1', 'project: jarvis', 'services:', '  postgres: { url: "postgres://jarvis@127.0.0.1:1/jarvis" }', 'storage:', '  path: ./backups', ...extra, ''].join('\n'));
  const pgWal = join(dir, 'pg_wal');
  await mkdir(pgWal);
  return { env: { JARVIS_DB_CONFIG: config }, storage: join(dir, 'backups'), pgWal };
}

const SEG = '000000010000000000000003';
const itemDir = (storage: string, name: string) => join(storage, 'wal', name.slice(0, 8), name);

t.test('a pushed segment fetches back byte-identical, compressed in the repository', async (t) => {
  const dir = t.testdir();
  const { env, storage, pgWal } = await setup(dir);
  const data = fakeSegment();
  await writeFile(join(pgWal, SEG), data);
  const push = cli(['wal', 'push', join(pgWal, SEG)], env);
  t.equal(push.code, 0, push.stderr);
  t.equal(push.stdout + push.stderr, '', 'archive_command output stays quiet');
  const files = await readdir(itemDir(storage, SEG));
  t.ok(files.includes('segment.json'));
  const stored = files.find((f) => f.startsWith('segment.') && f !== 'segment.json')!;
  t.ok((await stat(join(itemDir(storage, SEG), stored))).size < data.length * 0.7, `${stored} is compressed`);
  const manifest = JSON.parse(await readFile(join(itemDir(storage, SEG), 'segment.json'), 'utf8')) as { bytes: number; sha256: string };
  t.equal(manifest.bytes, data.length, 'the manifest records the raw size');
  const dest = join(dir, 'RECOVERYXLOG');
  const fetch = cli(['wal', 'fetch', SEG, dest], env);
  t.equal(fetch.code, 0, fetch.stderr);
  t.ok((await readFile(dest)).equals(data), 'byte-identical');
  t.same((await readdir(dir)).filter((f) => f.startsWith('.')), [], 'no temporary file left beside DEST');
});

t.test('pushing an identical segment again succeeds and writes nothing; a different one of the same name is refused', async (t) => {
  const dir = t.testdir();
  const { env, storage, pgWal } = await setup(dir);
  const data = fakeSegment();
  await writeFile(join(pgWal, SEG), data);
  t.equal(cli(['wal', 'push', join(pgWal, SEG)], env).code, 0);
  const before = await stat(join(itemDir(storage, SEG), 'segment.json'));
  const again = cli(['wal', 'push', join(pgWal, SEG), '--json'], env);
  t.equal(again.code, 0, again.stderr);
  t.equal((JSON.parse(again.stdout) as { repositories: { outcome: string }[] }).repositories[0]!.outcome, 'already-archived');
  const after = await stat(join(itemDir(storage, SEG), 'segment.json'));
  t.equal(after.mtimeMs, before.mtimeMs, 'the manifest is not rewritten');
  t.equal(after.ino, before.ino);

  const other = fakeSegment();
  await writeFile(join(pgWal, SEG), other);
  const refused = cli(['wal', 'push', join(pgWal, SEG)], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, new RegExp(`error: repository local already holds a different ${SEG}`));
  t.notMatch(refused.stderr, /\n\s+at /, 'no stack trace');
  const dest = join(dir, 'out');
  t.equal(cli(['wal', 'fetch', SEG, dest], env).code, 0);
  t.ok((await readFile(dest)).equals(data), 'the archived segment is the first one, not overwritten');
});

t.test('timeline history and backup label files are archived and fetched too', async (t) => {
  const dir = t.testdir();
  const { env, pgWal } = await setup(dir);
  const files = { '00000002.history': Buffer.from('1\t0/3000000\tno recovery target specified\n'), '000000010000000000000002.00000028.backup': Buffer.from('START WAL LOCATION: 0/2000028\n') };
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(pgWal, name), content);
    const push = cli(['wal', 'push', join(pgWal, name)], env);
    t.equal(push.code, 0, push.stderr);
    const dest = join(dir, `got-${name}`);
    t.equal(cli(['wal', 'fetch', name, dest], env).code, 0);
    t.ok((await readFile(dest)).equals(content), name);
  }
  await writeFile(join(pgWal, `${SEG}.partial`), 'x');
  const partial = cli(['wal', 'push', join(pgWal, `${SEG}.partial`)], env);
  t.equal(partial.code, 1, 'a .partial segment is not archived');
  t.match(partial.stderr, /still being written/);
});

t.test('fetch of a file no repository has exits 1 with one line and writes nothing', async (t) => {
  const dir = t.testdir();
  const { env } = await setup(dir);
  const dest = join(dir, 'out');
  const r = cli(['wal', 'fetch', '00000002.history', dest], env);
  t.equal(r.code, 1);
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.match(r.stderr, /00000002\.history is not archived in local/);
  await t.rejects(stat(dest));
});

t.test('a flipped byte in an archived segment: fetch fails naming it and writes nothing to DEST', async (t) => {
  const dir = t.testdir();
  const { env, storage, pgWal } = await setup(dir);
  await writeFile(join(pgWal, SEG), fakeSegment());
  t.equal(cli(['wal', 'push', join(pgWal, SEG)], env).code, 0);
  const stored = (await readdir(itemDir(storage, SEG))).find((f) => f !== 'segment.json')!;
  const path = join(itemDir(storage, SEG), stored);
  const bytes = await readFile(path);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  await writeFile(path, bytes);
  const out = join(dir, 'restore');
  await mkdir(out);
  const r = cli(['wal', 'fetch', SEG, join(out, 'RECOVERYXLOG')], env);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`${SEG} in repository local is damaged`));
  t.same(await readdir(out), [], 'nothing written, no temporary file left');
});

t.test('an encrypted repository: the stored segment is not the raw bytes, and it fetches back', async (t) => {
  const dir = t.testdir();
  const { env, storage, pgWal } = await setup(dir, ['  encryption: { passphraseEnv: WAL_TEST_PASS }']);
  env.WAL_TEST_PASS = 'correct horse battery staple';
  const data = Buffer.from('a'.repeat(1 << 20));
  await writeFile(join(pgWal, SEG), data);
  const push = cli(['wal', 'push', join(pgWal, SEG)], env);
  t.equal(push.code, 0, push.stderr);
  const stored = (await readdir(itemDir(storage, SEG))).find((f) => f !== 'segment.json')!;
  t.match(stored, /\.enc$/);
  t.notOk((await readFile(join(itemDir(storage, SEG), stored))).includes(Buffer.from('aaaaaaaa')), 'no plain text stored');
  const dest = join(dir, 'out');
  t.equal(cli(['wal', 'fetch', SEG, dest], env).code, 0);
  t.ok((await readFile(dest)).equals(data));
  const noPass = cli(['wal', 'fetch', SEG, join(dir, 'out2')], { ...env, WAL_TEST_PASS: '' });
  t.equal(noPass.code, 1);
  t.match(noPass.stderr, /WAL_TEST_PASS is not set/);
});

/** Starts `wal push`, waits until it pauses at `point`, kills it and its children with SIGKILL. */
async function killPushAt(path: string, env: Record<string, string>, point: string): Promise<boolean> {
  const proc = spawn(process.execPath, [BIN, 'wal', 'push', path], {
    env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: point }, stdio: ['ignore', 'ignore', 'pipe'], detached: true,
  });
  let stderr = '';
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const paused = await new Promise<boolean>((resolve) => {
    proc.stderr!.on('data', (d: Buffer) => { stderr += d; if (stderr.includes(`test pause at ${point}`)) resolve(true); });
    proc.on('exit', () => resolve(false));
  });
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
  await exited;
  return paused;
}

t.test('kill -9 during a push: the repository has the whole segment or nothing under its name, and the next push succeeds', async (t) => {
  for (const point of ['wal-push-staged', 'before-manifest', 'manifest-written', 'manifest-renamed', 'dir-renamed']) {
    const dir = await mkdtemp(join(tmpdir(), `jarvis-db-wal-kill-${point}-`));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const { env, storage, pgWal } = await setup(dir);
    const data = fakeSegment();
    await writeFile(join(pgWal, SEG), data);
    t.ok(await killPushAt(join(pgWal, SEG), env, point), `paused at ${point}`);
    const listed = (await readdir(join(storage, 'wal', '00000001')).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
    const dest = join(pgWal, 'fetched');
    if (listed.includes(SEG)) {
      t.equal(point, 'dir-renamed', `only a publish that finished lists the segment (${point})`);
      t.equal(cli(['wal', 'fetch', SEG, dest], env).code, 0);
      t.ok((await readFile(dest)).equals(data), 'and it is whole');
    } else {
      t.equal(cli(['wal', 'fetch', SEG, dest], env).code, 1, `nothing under its name after a kill at ${point}`);
    }
    const again = cli(['wal', 'push', join(pgWal, SEG)], env);
    t.equal(again.code, 0, `the next push succeeds after a kill at ${point}: ${again.stderr}`);
    t.equal(cli(['wal', 'fetch', SEG, dest], env).code, 0);
    t.ok((await readFile(dest)).equals(data), `byte-identical after a kill at ${point}`);
    const desired = await loadConfig(env.JARVIS_DB_CONFIG!);
    await removeWalDebris(desired, process.env, () => undefined);
    t.same((await readdir(join(storage, 'wal', '00000001'))).filter((n) => n.startsWith('.')), [], `the debris of the kill at ${point} is removed`);
  }
});

t.test('several repositories: durable in the first, copied to the others; a failing later one is a warning; S3 round trip', async (t) => {
  const state = await withSandbox(t, ['s3']);
  const s3 = state.s3!;
  const dir = t.testdir();
  const base = await loadConfig(await (async () => {
    const f = join(dir, 'jarvis-db.yaml');
    await writeFile(f, 'version: 1\nproject: jarvis\nservices:\n  postgres: { url: "postgres://jarvis@127.0.0.1:1/jarvis" }\nstorage:\n  path: ./backups\n');
    return f;
  })());
  await writeFile(join(dir, 'not-a-dir'), 'a file where a repository directory should be');
  const repositories: RepositoryConfig[] = [
    { name: 'first', kind: 'local', dir: join(dir, 'first'), path: 'repositories[0]' },
    { name: 'offsite', kind: 's3', s3: { bucket: s3.bucket, prefix: 'wal-test/', region: s3.region, endpoint: s3.url, forcePathStyle: true }, path: 'repositories[1]' },
    { name: 'broken', kind: 'local', dir: join(dir, 'not-a-dir'), path: 'repositories[2]' },
  ];
  const desired: Desired = { ...base, repositories };
  const env = { ...process.env, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region };
  const data = fakeSegment();
  const path = join(dir, SEG);
  await writeFile(path, data);
  const warnings: string[] = [];
  const result = await pushWalFile(desired, path, { env, warn: (l) => warnings.push(l) });
  t.same(result.repositories.map((r) => [r.name, r.outcome]), [['first', 'archived'], ['offsite', 'archived'], ['broken', 'failed']]);
  t.equal(warnings.length, 1);
  t.match(warnings[0], new RegExp(`${SEG} is archived in first but not in repository broken`));
  t.notMatch(warnings.join('\n'), s3.secretAccessKey, 'no secret in a warning');

  const onlyS3: Desired = { ...base, repositories: [repositories[1]!] };
  const dest = join(dir, 'from-s3');
  const fetched = await fetchWalFile(onlyS3, SEG, dest, { env });
  t.equal(fetched.repository, 'offsite');
  t.ok((await readFile(dest)).equals(data), 'the S3 copy is byte-identical');
  const again = await pushWalFile({ ...base, repositories: repositories.slice(0, 2) }, path, { env });
  t.same(again.repositories.map((r) => r.outcome), ['already-archived', 'already-archived']);

  // A damaged copy in the first repository: the fetch takes the next one's, and says so.
  const firstItem = join(dir, 'first', 'wal', '00000001', SEG);
  const stored = (await readdir(firstItem)).find((f) => f !== 'segment.json')!;
  const bytes = await readFile(join(firstItem, stored));
  bytes[100]! ^= 0x40;
  await writeFile(join(firstItem, stored), bytes);
  const fetchWarnings: string[] = [];
  const second = await fetchWalFile({ ...base, repositories: repositories.slice(0, 2) }, SEG, join(dir, 'from-second'), { env, warn: (l) => fetchWarnings.push(l) });
  t.equal(second.repository, 'offsite', 'the damaged first copy is skipped');
  t.ok((await readFile(join(dir, 'from-second'))).equals(data));
  t.match(fetchWarnings.join('\n'), new RegExp(`${SEG} in repository first is damaged`));

  const wrongKey = { ...env, AWS_ACCESS_KEY_ID: 'UNKNOWNKEY' };
  await t.rejects(pushWalFile({ ...base, repositories: [repositories[1]!] }, join(dir, SEG), { env: wrongKey }), 'an unknown access key fails the push (exit 1 from the CLI)');
});
