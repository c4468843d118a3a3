/**
 * The sandbox starts real servers that answer, stops them leaving no process and no port
 * behind, brings a single service back, and cleans up after an owner that was killed.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isAlive, waitForExit } from '../../src/platform/processes.js';
import {
  readSandbox, sandboxEnv, startService, startSandbox, stopSandbox, stopService, type SandboxState,
} from '../../src/sandbox/index.js';
import { connectChroma } from '../../src/services/chroma.js';
import { connectPostgres } from '../../src/services/postgres.js';
import { connectRedis } from '../../src/services/redis.js';

const run = promisify(execFile);
const CLI = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

type Teardownable = { teardown(fn: () => unknown): void };

async function tempDir(t: Teardownable): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-sandbox-test-'));
  await chmod(dir, 0o755);
  t.teardown(async () => {
    await stopSandbox(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function answers(state: SandboxState): Promise<{ pg: number; redis: string; chroma: boolean }> {
  const pg = await connectPostgres(state.postgres!.url);
  const one = (await pg.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one;
  await pg.end();
  const redis = await connectRedis(state.redis!.url);
  const pong = await redis.ping();
  redis.disconnect();
  const chroma = await connectChroma({ url: state.chroma!.url });
  return { pg: one, redis: pong, chroma: typeof (await chroma.heartbeat()) === 'number' };
}

t.test('up answers on every service; down leaves no process and frees every port', async (t) => {
  const dir = await tempDir(t);
  const state = await startSandbox({ dir });
  t.not(state.postgres!.port, 5432, 'not the machine\'s PostgreSQL port');
  t.not(state.redis!.port, 6379, 'not the machine\'s Redis port');
  t.same(await answers(state), { pg: 1, redis: 'PONG', chroma: true }, 'SELECT 1, PING and the heartbeat answer');
  const pids = [state.postgres!.pid, state.redis!.pid, state.chroma!.pid];
  const ports = [state.postgres!.port, state.redis!.port, state.chroma!.port];
  await stopSandbox(dir);
  for (const pid of pids) t.notOk(isAlive(pid), `process ${pid} is gone`);
  for (const port of ports) t.ok(await portIsFree(port), `port ${port} is free again`);
  const { stdout } = await run('ps', ['-eo', 'args']);
  t.notMatch(stdout, dir, 'no process mentions the sandbox directory');
  t.equal(await readSandbox(dir), null, 'the state file is gone');
});

t.test('a stopped service comes back on the same port with its data', async (t) => {
  const dir = await tempDir(t);
  const state = await startSandbox({ dir, services: ['postgres', 'redis'] });
  const pg = await connectPostgres(state.postgres!.url);
  await pg.query('CREATE TABLE kept (v text); INSERT INTO kept VALUES (\'still here\')');
  await pg.end();

  await stopService(dir, 'redis');
  t.notOk(isAlive(state.redis!.pid), 'redis is stopped');
  await t.rejects(connectRedis(state.redis!.url, { connectTimeoutMs: 1000 }), { code: 'SERVICE_UNREACHABLE' }, 'a stopped redis is unreachable');
  const again = await startService(dir, 'redis');
  t.equal(again.redis!.port, state.redis!.port, 'same port');
  const redis = await connectRedis(again.redis!.url);
  t.equal(await redis.ping(), 'PONG', 'redis answers again');
  redis.disconnect();

  await stopService(dir, 'postgres');
  await t.rejects(connectPostgres(state.postgres!.url, { connectTimeoutMs: 1000 }), { code: 'SERVICE_UNREACHABLE' }, 'a stopped postgres is unreachable');
  const back = await startService(dir, 'postgres');
  const pg2 = await connectPostgres(back.postgres!.url);
  t.same((await pg2.query('SELECT v FROM kept')).rows, [{ v: 'still here' }], 'postgres kept its data');
  await pg2.end();
});

t.test('the watchdog stops every server when the owning process is killed with kill -9', async (t) => {
  const dir = await tempDir(t);
  const module = new URL('../../src/sandbox/index.ts', import.meta.url).pathname;
  // The owner is a separate node process (run through tap's TypeScript loader, as this test is).
  const owner = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', `
    const { startSandbox } = await import(${JSON.stringify(module)});
    await startSandbox({ dir: ${JSON.stringify(dir)}, services: ['postgres', 'redis'], ownerPid: process.pid });
    process.stdout.write('up\\n');
    setInterval(() => {}, 1000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    owner.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('up')) resolve(); });
    owner.on('exit', (code) => reject(new Error(`owner exited with ${code}`)));
  });
  const state = (await readSandbox(dir))!;
  t.ok(isAlive(state.postgres!.pid) && isAlive(state.redis!.pid), 'servers run while the owner lives');
  owner.kill('SIGKILL');
  t.ok(await waitForExit(state.postgres!.pid, 15_000), 'postgres is stopped by the watchdog');
  t.ok(await waitForExit(state.redis!.pid, 15_000), 'redis is stopped by the watchdog');
  t.ok(await waitForExit(state.watchdogPid!, 10_000), 'the watchdog exits too');
});

t.test('the CLI: up, status and env for eval print no password; down stops everything', async (t) => {
  const dir = await tempDir(t);
  const up = await run(process.execPath, [CLI, 'sandbox', 'up', '--dir', dir, '--services', 'postgres,redis']);
  const state = (await readSandbox(dir))!;
  const secrets = [state.postgres!.password, state.redis!.password];
  const status = await run(process.execPath, [CLI, 'sandbox', 'status', '--dir', dir]);
  const env = await run(process.execPath, [CLI, 'sandbox', 'env', '--dir', dir]);
  for (const out of [up.stdout, up.stderr, status.stdout, env.stdout]) {
    for (const secret of secrets) t.notOk(out.includes(secret), 'no password in the output');
  }
  t.match(status.stdout, /postgres\s+running/);
  t.match(env.stdout, /^export JARVIS_PG_URL=/m);
  const viaEval = await run('bash', ['-c', `eval "$(${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} sandbox env --dir ${JSON.stringify(dir)})"; printf '%s\\n%s' "$JARVIS_PG_URL" "$JARVIS_REDIS_URL"`]);
  t.same(viaEval.stdout.split('\n'), [sandboxEnv(state).JARVIS_PG_URL, sandboxEnv(state).JARVIS_REDIS_URL], 'eval sets the URLs the servers answer on');
  const down = await run(process.execPath, [CLI, 'sandbox', 'down', '--dir', dir]);
  t.match(down.stdout, /stopped/);
  t.notOk(isAlive(state.postgres!.pid) || isAlive(state.redis!.pid), 'no server left');
  await t.rejects(readFile(join(dir, 'sandbox.json')), 'no state left');
});

t.test('down removes the storage/ the demo keeps in the sandbox, and says precisely what it keeps', async (t) => {
  const dir = await tempDir(t);
  await startSandbox({ dir, services: ['redis'] });
  await mkdir(join(dir, 'storage', 'backups'), { recursive: true });
  await writeFile(join(dir, 'storage', 'backups', 'manifest.json'), '{}');
  await writeFile(join(dir, 'notes.txt'), 'mine');
  const down = await run(process.execPath, [CLI, 'sandbox', 'down', '--dir', dir]);
  t.match(down.stdout, /stopped; its servers' data and storage\/ are removed\. Kept \(not made by the sandbox\): notes\.txt\.$/m);
  t.same(await readdir(dir), ['notes.txt'], 'storage/ is gone, the file that is not the sandbox\'s stays');

  await rm(join(dir, 'notes.txt'));
  await startSandbox({ dir, services: ['redis'] });
  await mkdir(join(dir, 'storage'));
  const again = await run(process.execPath, [CLI, 'sandbox', 'down', '--dir', dir]);
  t.match(again.stdout, /stopped; its servers' data, storage\/ and the directory are removed\.$/m);
  await t.rejects(stat(dir), { code: 'ENOENT' }, 'nothing left: the directory is gone');
});

t.test('up refuses to start a second sandbox over a running one', async (t) => {
  const dir = await tempDir(t);
  await startSandbox({ dir, services: ['redis'] });
  await t.rejects(startSandbox({ dir, services: ['redis'] }), { code: 'SANDBOX', message: /already running/ });
});

t.test('a lone throwaway redis-server with an owner dies with its owner (kill -9)', async (t) => {
  const dir = await tempDir(t);
  const module = new URL('../../src/scratch/servers.ts', import.meta.url).pathname;
  const owner = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', `
    const { startRedisServer } = await import(${JSON.stringify(module)});
    const server = await startRedisServer({ dir: ${JSON.stringify(join(dir, 'lone'))}, ownerPid: process.pid });
    process.stdout.write('pid ' + server.pid + '\\n');
    setInterval(() => {}, 1000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    owner.stdout!.on('data', (d: Buffer) => { const m = /pid (\d+)/.exec(d.toString()); if (m) resolve(Number(m[1])); });
    owner.on('exit', (code) => reject(new Error(`owner exited with ${code}`)));
  });
  t.ok(isAlive(pid), 'the server runs while its owner lives');
  owner.kill('SIGKILL');
  t.ok(await waitForExit(pid, 10_000), 'the server is killed once its owner is gone');
});

t.test('the S3 service: a bucket that takes objects with the key pair the env exports, an unknown key id refused, no secret printed', async (t) => {
  const dir = await tempDir(t);
  const up = await run(process.execPath, [CLI, 'sandbox', 'up', '--dir', dir, '--services', 's3']);
  const state = (await readSandbox(dir))!;
  const s3 = state.s3!;
  t.match(up.stdout, /\+ s3\s+http:\/\/127\.0\.0\.1:\d+/);
  const env = await run('bash', ['-c', `eval "$(${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} sandbox env --dir ${JSON.stringify(dir)})"; printf '%s\\n' "$JARVIS_S3_ENDPOINT" "$JARVIS_S3_BUCKET" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_REGION"`]);
  t.same(env.stdout.trim().split('\n'), [s3.url, s3.bucket, s3.accessKeyId, s3.secretAccessKey, 'us-east-1'], 'eval exports the endpoint, the bucket and the key pair');
  const status = await run(process.execPath, [CLI, 'sandbox', 'status', '--dir', dir]);
  const printed = await run(process.execPath, [CLI, 'sandbox', 'env', '--dir', dir]);
  for (const out of [up.stdout, up.stderr, status.stdout, printed.stdout]) t.notOk(out.includes(s3.secretAccessKey), 'the secret key is never printed');
  t.notOk(s3.accessKeyId === 'S3RVER', 'a fresh key pair, not the server\'s well-known one');

  const { S3Client, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const client = (accessKeyId: string) => new S3Client({ endpoint: s3.url, region: s3.region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey: s3.secretAccessKey } });
  const good = client(s3.accessKeyId);
  t.teardown(() => good.destroy());
  await good.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'probe/hello.txt', Body: 'hello' }));
  const got = await good.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'probe/hello.txt' }));
  t.equal(await got.Body!.transformToString(), 'hello', 'the bucket exists and round-trips an object');
  const stranger = client('AKIAUNKNOWNKEY000000');
  t.teardown(() => stranger.destroy());
  await t.rejects(stranger.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'probe/x', Body: 'x' })), { name: 'InvalidAccessKeyId' }, 'an unknown access key id is refused');

  await run(process.execPath, [CLI, 'sandbox', 'down', '--dir', dir]);
  t.notOk(isAlive(s3.pid), 'down stops the S3 server');
  t.ok(await portIsFree(s3.port), 'and frees its port');
});
