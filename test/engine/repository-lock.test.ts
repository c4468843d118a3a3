/**
 * The repository lock (src/engine/repository-lock.ts, docs/architecture.md §4 rule 6): two applies
 * with two storage paths ("two machines") that share a repository. The decisions are pure and
 * tested without I/O; the rest with real processes on a real shared directory (a local
 * repository; the sealed-store contract is the same for S3).
 * The child processes need the compiled engine (`npm run build`). They run the engine's apply
 * (dist/) on a config whose `repositories` the child sets, with the test-only marker module
 * (test/engine/fixtures/marker-module.mjs) in file mode, so no server is needed.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RepositoryConfig } from '../../src/config/types.js';
import {
  acquireRepositoryLock, acquireRepositoryLocks, decideLock, describeCommand, LOCK_MANIFEST, LOCKS_PREFIX, staleness,
  type LockView, type RepositoryLockRecord,
} from '../../src/engine/repository-lock.js';
import { openRepository } from '../../src/storage/repositories.js';
import { MARKER_MODULE, writeConfig } from './fixtures/cli.js';

const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const NOW = Date.parse('2026-12-03T08:00:00Z');
const view: LockView = { now: NOW, host: 'here', leaseMs: 120_000, isAlive: (pid) => pid !== 666 };

function lock(runId: string, fields: Partial<RepositoryLockRecord> = {}): RepositoryLockRecord {
  return { runId, host: 'there', pid: 10, command: 'jarvis-db apply', since: '2026-12-03T07:59:00.000Z', heartbeat: '2026-12-03T07:59:50.000Z', ...fields };
}
const locks = (...records: (RepositoryLockRecord | [string, null])[]) => new Map(records.map((r) => (Array.isArray(r) ? r : [r.runId, r] as const)));

t.test('decideLock: alone it holds; an older live lock makes it withdraw; only younger ones make it wait', async (t) => {
  const mine = lock('r-mine', { host: 'here', pid: 1, since: '2026-12-03T07:59:30.000Z' });
  t.same(decideLock('r-mine', locks(mine), view), { outcome: 'held', blocker: null, stale: [] });
  const older = lock('r-old', { since: '2026-12-03T07:59:00.000Z' });
  t.same(decideLock('r-mine', locks(mine, older), view), { outcome: 'withdraw', blocker: older, stale: [] });
  const younger = lock('r-young', { since: '2026-12-03T07:59:40.000Z' });
  t.same(decideLock('r-mine', locks(mine, younger), view), { outcome: 'wait', blocker: younger, stale: [] }, 'a younger one either withdraws or holds: keep ours and look again');
  // same `since`: the run id decides, the same way for both takers
  const twin = lock('r-a', { since: mine.since });
  t.equal(decideLock('r-mine', locks(mine, twin), view).outcome, 'withdraw');
  t.equal(decideLock('r-a', locks({ ...mine }, twin), view).outcome, 'wait');
  t.equal(decideLock('r-mine', locks(older), view).outcome, 'withdraw', 'our own record not listed: start over');
});

t.test('decideLock: a dead machine\'s lock (no heartbeat within the lease), a dead pid of this host and an unreadable record are stale', async (t) => {
  const mine = lock('r-mine', { host: 'here', pid: 1, since: '2026-12-03T07:59:30.000Z' });
  const deadMachine = lock('r-1', { since: '2026-12-03T06:00:00.000Z', heartbeat: '2026-12-03T07:57:59.000Z' });
  const deadPid = lock('r-2', { host: 'here', pid: 666 });
  const otherHostSamePid = lock('r-3', { host: 'there', pid: 666, since: '2026-12-03T07:59:40.000Z' });
  const decision = decideLock('r-mine', locks(mine, deadMachine, deadPid, ['r-4', null], otherHostSamePid), view);
  t.same(decision.stale, ['r-1', 'r-2', 'r-4']);
  t.same(decision, { outcome: 'wait', blocker: otherHostSamePid, stale: ['r-1', 'r-2', 'r-4'] }, 'a pid is only checked on its own host');
  t.match(staleness(deadMachine, view), /no heartbeat for 2m 01s/);
  t.match(staleness(deadPid, view), /pid 666 of this host is gone/);
  t.equal(staleness(lock('r-5', { heartbeat: '2026-12-03T07:58:01.000Z' }), view), null, 'within the lease: live');
  t.match(staleness(lock('r-6', { heartbeat: 'soon' }), view), /not a time/);
});

t.test('describeCommand keeps the command words and leaves out flags, paths, ids and URLs', async (t) => {
  t.equal(describeCommand(['node', '/usr/lib/jarvis-db/bin/jarvis-db.js', 'apply', '--auto-approve']), 'jarvis-db apply');
  t.equal(describeCommand(['node', 'jarvis-db', '-c', 'prod.yaml', 'backup', 'create', '--service', 'postgres']), 'jarvis-db backup create');
  t.equal(describeCommand(['node', 'bin/jarvis-db.js', 'restore', '20261203T030000Z-1a2b', '--target-db', 'postgres://u:secret@h/db']), 'jarvis-db restore');
});

function sharedRepository(dir: string, name = 'shared'): RepositoryConfig {
  return { name, kind: 'local', dir, path: 'repositories[0]' };
}

async function lockFiles(shared: string): Promise<string[]> {
  return (await readdir(join(shared, 'locks')).catch(() => [] as string[])).sort();
}

t.test('in one process: a second taker times out naming the holder, takes it once released; the lock is gone after release', async (t) => {
  const shared = t.testdir();
  const repository = openRepository(sharedRepository(shared));
  const first = await acquireRepositoryLock(repository, { runId: 'run-1', deadline: Date.now(), timeoutMs: 0, command: 'jarvis-db apply' });
  t.same(await lockFiles(shared), ['run-1']);
  const record = JSON.parse(await readFile(join(shared, 'locks', 'run-1', LOCK_MANIFEST), 'utf8')) as RepositoryLockRecord;
  t.match(record, { runId: 'run-1', host: hostname(), pid: process.pid, command: 'jarvis-db apply' });
  const started = Date.now();
  await t.rejects(acquireRepositoryLock(repository, { runId: 'run-2', deadline: Date.now() + 600, timeoutMs: 600 }), {
    code: 'LOCK_TIMEOUT',
    message: `repository shared (${shared}): another apply holds it (host ${hostname()}, pid ${process.pid}, since ${record.since}, \`jarvis-db apply\`); waited 1s: retry later or raise --lock-timeout`,
  });
  t.ok(Date.now() - started >= 600, 'it waited');
  t.same(await lockFiles(shared), ['run-1'], 'the one that gave up withdrew its lock');
  await first.release();
  t.same(await lockFiles(shared), []);
  const second = await acquireRepositoryLock(repository, { runId: 'run-2', deadline: Date.now(), timeoutMs: 0 });
  await second.release();
});

t.test('takers racing for one repository hold it one at a time, each in turn', async (t) => {
  const shared = t.testdir();
  const repository = openRepository(sharedRepository(shared));
  let inside = 0;
  let most = 0;
  const order: string[] = [];
  await Promise.all(['run-a', 'run-b', 'run-c', 'run-d', 'run-e'].map(async (runId) => {
    const held = await acquireRepositoryLock(repository, { runId, deadline: Date.now() + 30_000, timeoutMs: 30_000 });
    inside++;
    most = Math.max(most, inside);
    order.push(runId);
    await new Promise((r) => setTimeout(r, 40));
    inside--;
    await held.release();
  }));
  t.equal(most, 1, 'never two holders at once');
  t.equal(order.length, 5, `all five held it in turn (${order.join(', ')})`);
  t.same(await lockFiles(shared), []);
});

t.test('a stale lock (a dead pid of this host; another host whose heartbeat is older than the lease) is taken over and removed', async (t) => {
  const shared = t.testdir();
  const repository = openRepository(sharedRepository(shared));
  const store = repository.store(LOCKS_PREFIX, LOCK_MANIFEST);
  const dead = spawn(process.execPath, ['-e', '']);
  const deadPid = await new Promise<number>((resolve) => dead.on('exit', () => resolve(dead.pid!)));
  const put = async (r: RepositoryLockRecord) => { const item = await store.begin(r.runId); await item.publish(JSON.stringify(r)); };
  const longAgo = new Date(Date.now() - 3600_000).toISOString();
  await put({ runId: 'run-dead-pid', host: hostname(), pid: deadPid, command: 'jarvis-db apply', since: longAgo, heartbeat: new Date().toISOString() });
  await put({ runId: 'run-dead-host', host: 'gone.example', pid: 1, command: 'jarvis-db apply', since: longAgo, heartbeat: longAgo });
  const held = await acquireRepositoryLock(repository, { runId: 'run-new', deadline: Date.now(), timeoutMs: 0 });
  t.same(await lockFiles(shared), ['run-new'], 'both stale locks removed, ours held');
  await held.release();
  // A live lock of another host, beating within the lease, is not stale: it is waited for.
  await put({ runId: 'run-live', host: 'busy.example', pid: 1, command: 'jarvis-db backup create', since: longAgo, heartbeat: new Date().toISOString() });
  await t.rejects(acquireRepositoryLock(repository, { runId: 'run-late', deadline: Date.now() + 200, timeoutMs: 200 }), {
    code: 'LOCK_TIMEOUT', message: /another apply holds it \(host busy\.example, pid 1, since .*, `jarvis-db backup create`\)/,
  });
});

t.test('the heartbeat is rewritten while the lock is held', async (t) => {
  const shared = t.testdir();
  const repository = openRepository(sharedRepository(shared));
  const held = await acquireRepositoryLock(repository, { runId: 'run-1', deadline: Date.now(), timeoutMs: 0, heartbeatMs: 50 });
  t.teardown(() => held.release());
  const read = async () => JSON.parse(await readFile(join(shared, 'locks', 'run-1', LOCK_MANIFEST), 'utf8')) as RepositoryLockRecord;
  const before = await read();
  await new Promise((r) => setTimeout(r, 200));
  const after = await read();
  t.equal(after.since, before.since);
  t.ok(after.heartbeat > before.heartbeat, `heartbeat ${before.heartbeat} → ${after.heartbeat}`);
});

t.test('the storage path is not locked twice; an unreachable repository is skipped, not fatal', async (t) => {
  const dir = t.testdir({ 'a-file': '' });
  const storage = join(dir, 'backups');
  const repositories = [
    openRepository({ name: 'local', kind: 'local', dir: storage, path: 'storage.path' }),
    openRepository(sharedRepository(join(dir, 'a-file', 'repo'), 'broken')),
    openRepository(sharedRepository(join(dir, 'shared'))),
  ];
  const locks = await acquireRepositoryLocks(repositories, storage, { runId: 'run-1', deadline: Date.now(), timeoutMs: 0 });
  t.same(locks.held.map((l) => l.repository), ['shared']);
  t.same(locks.skipped.map((s) => s.repository), ['broken']);
  t.match(locks.skipped[0]!.reason, /a-file/);
  t.same(await lockFiles(storage), [], 'the storage path has its own kernel lock');
  t.same(await lockFiles(join(dir, 'shared')), ['run-1']);
  await locks.release();
  t.same(await lockFiles(join(dir, 'shared')), []);
});

/** One "machine": its own storage path and marker file, the shared repository. */
async function machine(dir: string, name: string, shared: string) {
  const home = join(dir, name);
  await mkdir(home, { recursive: true });
  const config = await writeConfig(home, ['version: 1', 'services:', '  postgres: { url: "postgres://nobody@127.0.0.1:1/none" }', 'storage: { path: ./backups }']);
  return {
    JARVIS_DB_CONFIG: config, MARKER_FILE: join(home, 'marker'), JARVIS_DB_TEST_MODULE: MARKER_MODULE, NO_COLOR: '1',
    TEST_REPOSITORIES: JSON.stringify([sharedRepository(shared)]),
  };
}

/** The engine's apply with the config's repositories set, reporting failures as the CLI does. */
async function writeApplyChild(dir: string): Promise<string> {
  const file = join(dir, 'apply-child.mjs');
  await writeFile(file, `
    const { loadConfig } = await import(${JSON.stringify(join(DIST, 'config/load.js'))});
    const { apply } = await import(${JSON.stringify(join(DIST, 'engine/index.js'))});
    const { reportFailure } = await import(${JSON.stringify(join(DIST, 'cli/failure.js'))});
    try {
      const desired = await loadConfig(process.env.JARVIS_DB_CONFIG);
      desired.repositories = JSON.parse(process.env.TEST_REPOSITORIES);
      const run = await apply({
        desired, lockTimeoutMs: Number(process.env.TEST_LOCK_TIMEOUT_MS),
        reporter: { waitingForRepositoryLock: (r, h) => process.stderr.write('waiting for the lock of repository ' + r + ' (pid ' + (h && h.pid) + ')\\n') },
      });
      process.stdout.write('status: ' + run.status + ', ' + run.results.filter((r) => r.status === 'done').length + ' done\\n');
      process.exitCode = run.status === 'failed' ? 1 : 0;
    } catch (e) {
      process.exitCode = reportFailure(e, false);
    }
  `);
  return file;
}

interface ChildResult { code: number | null; stdout: string; stderr: string; ms: number }

function runChild(file: string, env: Record<string, string>) {
  const started = Date.now();
  const child = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const result = new Promise<ChildResult>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })));
  const waitFor = (re: RegExp, timeoutMs = 30_000) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stderr: ${stderr}`)), timeoutMs);
    const check = () => { if (re.test(stderr)) { clearTimeout(timer); resolve(); } };
    child.stderr.on('data', check);
    child.on('exit', () => { clearTimeout(timer); if (!re.test(stderr)) reject(new Error(`exited before ${re}; stderr: ${stderr}`)); });
    check();
  });
  return { child, result, waitFor };
}

t.test('two machines sharing a repository: the second waits for --lock-timeout and fails clearly while the first runs; a patient one runs after', async (t) => {
  const dir = t.testdir();
  const shared = join(dir, 'shared');
  const child = await writeApplyChild(dir);
  const a = await machine(dir, 'a', shared);
  const b = await machine(dir, 'b', shared);
  const release = join(dir, 'release');
  const first = runChild(child, { ...a, TEST_LOCK_TIMEOUT_MS: '5000', MARKER_HOLD: '120000', MARKER_RELEASE: release });
  t.teardown(() => { first.child.kill('SIGKILL'); });
  await first.waitFor(/marker: holding the apply lock/);
  const [held] = await lockFiles(shared);
  const record = JSON.parse(await readFile(join(shared, 'locks', held!, LOCK_MANIFEST), 'utf8')) as RepositoryLockRecord;

  const impatient = await runChild(child, { ...b, TEST_LOCK_TIMEOUT_MS: '1000' }).result;
  t.equal(impatient.code, 1, impatient.stderr);
  t.match(impatient.stderr, `error: repository shared (${shared}): another apply holds it (host ${hostname()}, pid ${first.child.pid}, since ${record.since}, \`apply-child\`); waited 1s: retry later or raise --lock-timeout\n`);
  t.match(impatient.stderr, `waiting for the lock of repository shared (pid ${first.child.pid})`);
  t.ok(impatient.ms >= 1000, `it waited (${impatient.ms} ms)`);
  t.notMatch(impatient.stderr, /\n\s+at /, 'no stack trace');
  t.equal(await readFile(b.MARKER_FILE, 'utf8').catch(() => null), null, 'the second applied nothing');
  t.same(await lockFiles(shared), [held], 'only the holder\'s lock is left');

  const patient = runChild(child, { ...b, TEST_LOCK_TIMEOUT_MS: '60000' });
  await patient.waitFor(/waiting for the lock of repository shared/);
  await writeFile(release, '');
  const [one, two] = await Promise.all([first.result, patient.result]);
  t.equal(one.code, 0, one.stderr);
  t.match(one.stdout, 'status: succeeded, 1 done');
  t.equal(two.code, 0, two.stderr);
  t.match(two.stdout, 'status: succeeded, 1 done', 'it ran once the first had finished');
  t.same(await lockFiles(shared), [], 'both released their lock');
});

t.test('kill -9 of the holder of a repository lock: the next apply proceeds at once', async (t) => {
  const dir = t.testdir();
  const shared = join(dir, 'shared');
  const child = await writeApplyChild(dir);
  const a = await machine(dir, 'a', shared);
  const b = await machine(dir, 'b', shared);
  const victim = runChild(child, { ...a, TEST_LOCK_TIMEOUT_MS: '5000', JARVIS_DB_TEST_PAUSE_AT: 'repository-locks-held' });
  t.teardown(() => { victim.child.kill('SIGKILL'); });
  await victim.waitFor(/test pause at repository-locks-held/);
  t.equal((await lockFiles(shared)).length, 1);
  victim.child.kill('SIGKILL');
  t.equal((await victim.result).code, null, 'killed');
  const next = await runChild(child, { ...b, TEST_LOCK_TIMEOUT_MS: '0' }).result;
  t.equal(next.code, 0, next.stderr);
  t.notMatch(next.stderr, /waiting for the lock/, 'the dead holder\'s lock did not count');
  t.match(next.stdout, 'status: succeeded, 1 done');
  t.same(await lockFiles(shared), [], 'the dead lock was removed, ours released');
});
