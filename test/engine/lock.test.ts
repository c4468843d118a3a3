/**
 * The apply lock (docs/architecture.md §4 rule 6), with real processes: a child holds it; a second apply
 * waits up to --lock-timeout and then fails naming the holder, or runs once the first is done;
 * an apply killed with kill -9 leaves no lock behind.
 * Needs the compiled CLI (`npm run build`): the children run dist/ and bin/jarvis-db.js, with
 * the test-only marker module (test/engine/fixtures/marker-module.mjs) in file mode, so no
 * server is needed.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireApplyLock } from '../../src/engine/lock.js';
import { waitForExit } from '../../src/platform/processes.js';
import { cli, cliBackground, writeConfig } from './fixtures/cli.js';

const LOCK_JS = fileURLToPath(new URL('../../dist/engine/lock.js', import.meta.url));

/** A child process that takes the lock through the compiled engine and keeps it until killed. */
async function childHoldingLock(storage: string) {
  const script = `const { acquireApplyLock } = await import(${JSON.stringify(LOCK_JS)});
await acquireApplyLock(${JSON.stringify(storage)}, { timeoutMs: 5000, runId: 'child-run' });
process.stdout.write('locked\\n');
setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('locked')) resolve(); });
    child.on('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  return child;
}

t.test('a second taker waits up to its timeout, then fails naming the holder; after kill -9 of the holder the lock is free', async (t) => {
  const storage = t.testdir();
  const holder = await childHoldingLock(storage);
  t.teardown(() => { holder.kill('SIGKILL'); });
  const started = Date.now();
  await t.rejects(acquireApplyLock(storage, { timeoutMs: 700, runId: 'me' }), {
    code: 'LOCK_TIMEOUT',
    message: new RegExp(`another apply holds the lock on .* \\(pid ${holder.pid} on .*, run child-run, since .*\\); gave up after 1s`),
    hint: /--lock-timeout/,
  });
  t.ok(Date.now() - started >= 700, 'it waited for the timeout');
  const interrupted = new AbortController();
  setTimeout(() => interrupted.abort(), 300);
  const waitStart = Date.now();
  await t.rejects(acquireApplyLock(storage, { timeoutMs: 30_000, runId: 'me', signal: interrupted.signal }), { code: 'APPLY_FAILED', message: /interrupted while waiting for the apply lock/ });
  t.ok(Date.now() - waitStart < 5000, 'an interruption ends the wait');
  holder.kill('SIGKILL');
  await waitForExit(holder.pid!, 5000);
  const lock = await acquireApplyLock(storage, { timeoutMs: 0, runId: 'me' });
  await lock.release();
  const again = await acquireApplyLock(storage, { timeoutMs: 0, runId: 'me-again' });
  await again.release();
});

/** A config with no backup schedule: only the marker module (file mode) has something to do. */
async function writeMarkerConfig(dir: string) {
  const config = await writeConfig(dir, ['version: 1', 'services:', '  postgres: { url: "postgres://nobody@127.0.0.1:1/none" }', 'storage: { path: ./backups }']);
  return { env: { JARVIS_DB_CONFIG: config, MARKER_FILE: join(dir, 'marker') } };
}

t.test('two applies at once: one runs, the other waits for --lock-timeout and fails clearly; a patient one runs after', async (t) => {
  const dir = t.testdir();
  const { env } = await writeMarkerConfig(dir);
  const release = join(dir, 'release');
  const first = cliBackground(['apply', '--auto-approve'], { ...env, MARKER_HOLD: '120000', MARKER_RELEASE: release });
  t.teardown(() => { first.child.kill('SIGKILL'); });
  await first.waitFor(/marker: holding the apply lock/);

  const impatient = cli(['apply', '--auto-approve', '--lock-timeout', '1s'], env);
  t.equal(impatient.code, 1);
  t.match(impatient.stderr, new RegExp(`error: another apply holds the lock on ${dir}/backups \\(pid ${first.child.pid} on [^,]+, run \\d{8}T\\d{6}Z-[0-9a-f]{4}, since [^)]+\\); gave up after 1s`));
  t.match(impatient.stderr, /hint: wait for it to finish/);
  t.match(impatient.stderr, /waiting up to 1\.0s for the apply lock/);
  t.ok(impatient.ms >= 1000, `it waited (${impatient.ms} ms)`);
  t.notMatch(impatient.stderr, /\n\s+at /, 'no stack trace');

  const patient = cliBackground(['apply', '--auto-approve', '--lock-timeout', '60s'], env);
  await patient.waitFor(/waiting up to/);
  await writeFile(release, '');
  const [a, b] = await Promise.all([first.result, patient.result]);
  t.equal(a.code, 0, a.stderr);
  t.match(a.stdout, /Apply complete: 1 action done/);
  t.equal(b.code, 0, b.stderr);
  t.match(b.stdout, /No changes\. Observed state matches jarvis-db\.yaml\. Nothing to apply\./, 'it planned after the first apply finished');
  t.equal((await readFile(env.MARKER_FILE!, 'utf8')).trim(), 'jarvis-db-convergence');
});

t.test('an apply killed with kill -9 while it holds the lock leaves no lock behind', async (t) => {
  const dir = t.testdir();
  const { env } = await writeMarkerConfig(dir);
  const victim = cliBackground(['apply', '--auto-approve'], { ...env, MARKER_HOLD: '600000' });
  t.teardown(() => { victim.child.kill('SIGKILL'); });
  await victim.waitFor(/marker: holding the apply lock/);
  victim.child.kill('SIGKILL');
  t.equal((await victim.result).code, null, 'killed');
  const next = cli(['apply', '--auto-approve', '--lock-timeout', '0'], env);
  t.equal(next.code, 0, next.stderr);
  t.notMatch(next.stderr, /waiting up to/, 'it did not have to wait');
  t.match(next.stdout, /Apply complete: 1 action done/);
  // The killed run's journal ends where it died: its action started and never finished.
  const journals = (await import('../../src/engine/journal.js'));
  const files = await journals.listJournals(join(dir, 'backups'));
  t.equal(files.length, 2);
  const nextJournal = /Journal: (\S+)/.exec(next.stdout)![1];
  const killed = await journals.readJournal(files.find((f) => f !== nextJournal)!);
  t.same(killed.map((e) => e.event).slice(-1), ['action_started']);
});
