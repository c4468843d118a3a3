/**
 * The repository lock (src/engine/repository-lock.ts) on an S3 repository: the same behaviour as
 * on a shared directory (repository-lock.test.ts), on the sandbox's S3 server (s3rver). The
 * child processes need the compiled engine (`npm run build`).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RepositoryConfig } from '../../src/config/types.js';
import { acquireRepositoryLock, acquireRepositoryLocks, LOCK_MANIFEST, LOCKS_PREFIX, type RepositoryLockRecord } from '../../src/engine/repository-lock.js';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { openRepository } from '../../src/storage/repositories.js';
import { withSandbox } from '../helpers/sandbox.js';
import { MARKER_MODULE, writeConfig } from './fixtures/cli.js';

const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));

t.test('on S3', async (t) => {
  const state = await withSandbox(t, ['s3']);
  const env = { ...process.env, ...sandboxEnv(state) };
  let n = 0;
  /** A fresh prefix per test: one bucket, no test sees another's locks. */
  const offsite = (over: Partial<{ bucket: string; endpoint: string }> = {}): RepositoryConfig => ({
    name: 'offsite', kind: 's3', path: 'repositories[1]',
    s3: { bucket: state.s3!.bucket, prefix: `lock-${++n}/`, region: state.s3!.region, endpoint: state.s3!.url, forcePathStyle: true, ...over },
  });
  const lockNames = (config: RepositoryConfig) => openRepository(config, env).store(LOCKS_PREFIX, LOCK_MANIFEST).list('');

  t.test('a second taker times out naming the holder and the bucket; it takes the lock once released', async (t) => {
    const config = offsite();
    const repository = openRepository(config, env);
    const first = await acquireRepositoryLock(repository, { runId: 'run-1', deadline: Date.now(), timeoutMs: 0, command: 'jarvis-db apply' });
    t.same(await lockNames(config), ['run-1']);
    await t.rejects(acquireRepositoryLock(repository, { runId: 'run-2', deadline: Date.now() + 700, timeoutMs: 700 }), {
      code: 'LOCK_TIMEOUT',
      message: new RegExp(`^repository offsite \\(s3://${state.s3!.bucket}/lock-\\d+/\\): another apply holds it \\(host ${hostname()}, pid ${process.pid}, since [^,]+, \`jarvis-db apply\`\\); waited 1s: retry later or raise --lock-timeout$`),
    });
    t.same(await lockNames(config), ['run-1'], 'the one that gave up withdrew');
    await first.release();
    t.same(await lockNames(config), []);
    const second = await acquireRepositoryLock(repository, { runId: 'run-2', deadline: Date.now(), timeoutMs: 0 });
    await second.release();
  });

  t.test('takers racing for one bucket hold it one at a time', async (t) => {
    const repository = openRepository(offsite(), env);
    let inside = 0;
    let most = 0;
    let done = 0;
    await Promise.all(['run-a', 'run-b', 'run-c'].map(async (runId) => {
      const held = await acquireRepositoryLock(repository, { runId, deadline: Date.now() + 60_000, timeoutMs: 60_000 });
      most = Math.max(most, ++inside);
      await new Promise((r) => setTimeout(r, 50));
      inside--;
      done++;
      await held.release();
    }));
    t.equal(most, 1, 'never two holders at once');
    t.equal(done, 3);
  });

  t.test('stale locks in the bucket (a dead pid of this host, a machine without a heartbeat for longer than the lease) are taken over', async (t) => {
    const config = offsite();
    const repository = openRepository(config, env);
    const store = repository.store(LOCKS_PREFIX, LOCK_MANIFEST);
    const dead = spawn(process.execPath, ['-e', '']);
    const deadPid = await new Promise<number>((resolve) => dead.on('exit', () => resolve(dead.pid!)));
    const longAgo = new Date(Date.now() - 3600_000).toISOString();
    const put = async (r: RepositoryLockRecord) => { const item = await store.begin(r.runId); await item.publish(JSON.stringify(r)); };
    await put({ runId: 'run-dead-pid', host: hostname(), pid: deadPid, command: 'jarvis-db apply', since: longAgo, heartbeat: new Date().toISOString() });
    await put({ runId: 'run-dead-host', host: 'gone.example', pid: 1, command: 'jarvis-db apply', since: longAgo, heartbeat: longAgo });
    const held = await acquireRepositoryLock(repository, { runId: 'run-new', deadline: Date.now(), timeoutMs: 0 });
    t.same(await lockNames(config), ['run-new']);
    await held.release();
  });

  t.test('an S3 endpoint that is down is skipped by the lock, not fatal, and no secret is in the reason', async (t) => {
    const locks = await acquireRepositoryLocks([openRepository(offsite({ endpoint: 'http://127.0.0.1:9' }), env)], '/nonexistent-storage', { runId: 'run-1', deadline: Date.now(), timeoutMs: 0 });
    t.same(locks.held, []);
    t.same(locks.skipped.map((s) => s.repository), ['offsite']);
    t.notMatch(locks.skipped[0]!.reason, state.s3!.secretAccessKey);
    await locks.release();
  });

  t.test('two machines sharing a bucket: the second waits for --lock-timeout and fails clearly; after kill -9 of the holder the next apply proceeds', async (t) => {
    const dir = t.testdir();
    const repositories = JSON.stringify([offsite()]);
    const child = join(dir, 'apply-child.mjs');
    await writeFile(child, `
      const { loadConfig } = await import(${JSON.stringify(join(DIST, 'config/load.js'))});
      const { apply } = await import(${JSON.stringify(join(DIST, 'engine/index.js'))});
      const { reportFailure } = await import(${JSON.stringify(join(DIST, 'cli/failure.js'))});
      try {
        const desired = await loadConfig(process.env.JARVIS_DB_CONFIG);
        desired.repositories = JSON.parse(process.env.TEST_REPOSITORIES);
        const run = await apply({ desired, lockTimeoutMs: Number(process.env.TEST_LOCK_TIMEOUT_MS) });
        process.stdout.write('status: ' + run.status + '\\n');
        process.exitCode = run.status === 'failed' ? 1 : 0;
      } catch (e) {
        process.exitCode = reportFailure(e, false);
      }
    `);
    const machine = async (name: string) => {
      const home = join(dir, name);
      await mkdir(home);
      const config = await writeConfig(home, ['version: 1', 'services:', '  postgres: { url: "postgres://nobody@127.0.0.1:1/none" }', 'storage: { path: ./backups }']);
      return { ...sandboxEnv(state), JARVIS_DB_CONFIG: config, MARKER_FILE: join(home, 'marker'), JARVIS_DB_TEST_MODULE: MARKER_MODULE, TEST_REPOSITORIES: repositories };
    };
    const a = await machine('a');
    const b = await machine('b');
    const run = (extra: Record<string, string>) => {
      const proc = spawn(process.execPath, [child], { env: { ...process.env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      proc.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
      proc.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => proc.on('exit', (code) => resolve({ code, stdout, stderr })));
      const paused = new Promise<void>((resolve, reject) => {
        proc.stderr.on('data', () => { if (stderr.includes('test pause at repository-locks-held')) resolve(); });
        proc.on('exit', () => reject(new Error(`exited before the pause: ${stderr}`)));
      });
      paused.catch(() => undefined);
      return { proc, result, paused };
    };
    const holder = run({ ...a, TEST_LOCK_TIMEOUT_MS: '10000', JARVIS_DB_TEST_PAUSE_AT: 'repository-locks-held' });
    t.teardown(() => { holder.proc.kill('SIGKILL'); });
    await holder.paused;
    const impatient = await run({ ...b, TEST_LOCK_TIMEOUT_MS: '1000' }).result;
    t.equal(impatient.code, 1, impatient.stderr);
    t.match(impatient.stderr, new RegExp(`^error: repository offsite \\(s3://${state.s3!.bucket}/lock-\\d+/\\): another apply holds it \\(host ${hostname()}, pid ${holder.proc.pid}, since [^,]+, \`apply-child\`\\); waited 1s: retry later or raise --lock-timeout\\n$`));
    t.notMatch(impatient.stderr + impatient.stdout, state.s3!.secretAccessKey, 'no secret in any output');
    holder.proc.kill('SIGKILL');
    await holder.result;
    const next = await run({ ...b, TEST_LOCK_TIMEOUT_MS: '0' }).result;
    t.equal(next.code, 0, next.stderr);
    t.match(next.stdout, 'status: succeeded');
    t.same(await lockNames(JSON.parse(repositories)[0] as RepositoryConfig), [], 'the killed holder\'s lock was removed, ours released');
  });
});
