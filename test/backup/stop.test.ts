/**
 * SIGTERM in the middle of `jarvis-db backup create` (a real pg_dump on the sandbox PostgreSQL):
 * the backup stops within --stop-timeout, its tool is killed, what it staged is removed, nothing is
 * published, the run is journaled as cancelled, and the command exits 0. A backup that cannot stop
 * in time makes the command exit 1 at the timeout. The child runs the compiled CLI (build first).
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups } from '../../src/backup/catalog.js';
import { readJournal } from '../../src/engine/journal.js';
import { hiddenDirs } from '../helpers/kill.js';
import { freshDatabase, sql } from './fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

/** Runs `backup create`, sends SIGTERM once `when` shows on stderr; resolves with the exit, its time after the signal and the output. */
function createAndSignal(config: string, args: string[], when: RegExp, env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [BIN, '-c', config, 'backup', 'create', '--service', 'postgres', ...args], { env: { ...process.env, ...env, JARVIS_DB_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let signalledAt = 0;
  child.stdout.on('data', (d: Buffer) => { stdout += d; });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
    if (!signalledAt && when.test(stderr)) { signalledAt = Date.now(); child.kill('SIGTERM'); }
  });
  return new Promise<{ code: number | null; afterSignalMs: number; signalled: boolean; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code) => resolve({ code, afterSignalMs: signalledAt ? Date.now() - signalledAt : -1, signalled: signalledAt > 0, stdout, stderr }));
  });
}

const pgDumpsOf = (database: string) => spawnSync('pgrep', ['-f', `pg_dump.*${database}`], { encoding: 'utf8' }).stdout.trim();

t.test('SIGTERM mid pg_dump: the backup stops, its tool is killed, its staged files removed, nothing published; exit 0', async (t) => {
  const db = await freshDatabase(t, 'stop');
  // Big enough that pg_dump -Z1 runs for a few seconds on a loaded machine.
  await sql(db.url, `CREATE TABLE big (id int, v text); INSERT INTO big SELECT i, md5(i::text) || md5((i * 7)::text) || repeat('y', 200) FROM generate_series(1, 1500000) i;`);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  const storage = join(dir, 'backups');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', `  postgres: { url: "${db.url}" }`, 'storage:', `  path: ${storage}`,
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 }, compression: 1 }', '',
  ].join('\n'));

  const r = await createAndSignal(config, ['--stop-timeout', '20s'], /dumping public\.big/);
  t.ok(r.signalled, `SIGTERM was sent while pg_dump dumped (stderr: ${r.stderr})`);
  t.equal(r.code, 0, `a clean stop exits 0 (stderr: ${r.stderr})`);
  t.ok(r.afterSignalMs < 20_000, `stopped within --stop-timeout (${r.afterSignalMs} ms)`);
  t.match(r.stderr, /SIGTERM: stopping the backups \(up to 20s\); nothing half-written is published/);
  t.match(r.stdout, /^- stopped postgres\/nightly: backup of nightly stopped \(SIGTERM\): nothing was published, its staged files are removed$/m);
  t.notMatch(r.stdout + r.stderr, /\n\s+at /, 'no stack trace');
  t.same(await hiddenDirs(storage, 'postgres', 'nightly'), [], 'no staged work dir left');
  t.equal((await listBackups(storage)).length, 0, 'nothing published');
  t.equal(pgDumpsOf(db.name), '', 'no pg_dump left running');

  const journals = (await readdir(join(storage, 'journal'))).filter((n) => n.endsWith('.jsonl'));
  t.equal(journals.length, 1);
  const events = await readJournal(join(storage, 'journal', journals[0]!));
  t.match(events.find((e) => e.event === 'action_failed'), { error: { code: 'INTERRUPTED' } });
  t.match(events.find((e) => e.event === 'run_finished'), { status: 'cancelled' });

  const next = spawnSync(process.execPath, [BIN, '-c', config, 'backup', 'create', '--service', 'postgres'], { encoding: 'utf8', env: { ...process.env, JARVIS_DB_CONFIG: '' } });
  t.equal(next.status, 0, `the next backup runs (stderr: ${next.stderr})`);
  t.equal((await listBackups(storage)).length, 1);
});

t.test('a backup that does not stop within --stop-timeout makes the command exit 1 at the timeout', async (t) => {
  const db = await freshDatabase(t, 'stopto');
  await sql(db.url, `CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 1000);`);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', `  postgres: { url: "${db.url}" }`, 'storage:', `  path: ${join(dir, 'backups')}`,
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }', '',
  ].join('\n'));
  // The test pause point holds the backup for good after pg_dump started: it cannot stop.
  const r = await createAndSignal(config, ['--stop-timeout', '2s'], /test pause at dump-running/, { JARVIS_DB_TEST_PAUSE_AT: 'dump-running' });
  t.ok(r.signalled);
  t.equal(r.code, 1, r.stderr);
  t.ok(r.afterSignalMs >= 1900 && r.afterSignalMs < 15_000, `exited at the timeout (${r.afterSignalMs} ms)`);
  t.match(r.stderr, /the backups did not stop within 2s: exiting; what they staged is removed by the next run/);
  t.equal(pgDumpsOf(db.name), '', 'pg_dump does not outlive it');
});
