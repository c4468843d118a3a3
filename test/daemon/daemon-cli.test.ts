/**
 * `jarvis-db daemon` as a real process (compiled CLI: build first with npx tsc) against a sandbox
 * PostgreSQL and the real engine: a `* * * * *` schedule makes backups appear (at start, then
 * when the cron fires), /metrics shows them, the log is JSON lines with run ids, and SIGTERM in
 * the middle of a backup lets it finish and exits 0, leaving only valid backups.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { withSandbox } from '../helpers/sandbox.js';
import { freePort, sandboxEnv } from '../../src/sandbox/index.js';
import { scanStorage } from '../../src/backup/catalog.js';
import { findDebris } from '../../src/backup/storage.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
type Line = Record<string, unknown> & { event?: string };

t.test('the daemon applies a * * * * * schedule, shows it on /metrics, and stops cleanly on SIGTERM', async (t) => {
  const state = await withSandbox(t, ['postgres']);
  // Enough data that a backup takes a second or more, so that the SIGTERM below lands while it runs.
  const db = new pg.Client({ connectionString: state.postgres!.url });
  await db.connect();
  await db.query(`CREATE TABLE filler AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body FROM generate_series(1, 600000) g`);
  await db.end();
  const dir = t.testdir();
  const storage = join(dir, 'backups');
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./backups }',
    'backups:', '  - { name: minutely, service: postgres, cron: "* * * * *", keep: { last: 5 } }',
    'health: { interval: 2s }', '',
  ].join('\n'));
  const port = await freePort();
  const daemon = spawn(process.execPath, [BIN, '-c', config, 'daemon', '--listen', `127.0.0.1:${port}`], {
    env: { ...process.env, ...sandboxEnv(state) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Line[] = [];
  let stdout = '';
  let stderr = '';
  // The start-up run's id, set by the log reader as soon as that run finishes (not later: the cron
  // may fire while the test still reads /metrics): the first action of any later run gets SIGTERM at once.
  let stopAtNextAction: string | null = null;
  let stopSent = false;
  daemon.stdout.on('data', (c: Buffer) => {
    stdout += c;
    const parts = stdout.split('\n');
    stdout = parts.pop()!;
    for (const p of parts) {
      if (!p.trim()) continue;
      const line = JSON.parse(p) as Line;
      lines.push(line);
      if (line.event === 'apply_finished' && stopAtNextAction === null) stopAtNextAction = line.runId as string;
      if (!stopSent && stopAtNextAction && line.event === 'action_started' && line.runId !== stopAtNextAction) {
        stopSent = true;
        daemon.kill('SIGTERM');
      }
    }
  });
  daemon.stderr.on('data', (c: Buffer) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => daemon.on('exit', (code) => resolve(code)));
  t.teardown(() => { if (daemon.exitCode === null) daemon.kill('SIGKILL'); });
  const until = async (what: string, test: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!test()) {
      if (Date.now() > end || daemon.exitCode !== null) throw new Error(`waiting for ${what}: exit ${daemon.exitCode}; ${stderr}; log: ${JSON.stringify(lines.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  await until('the start-up apply', () => lines.some((l) => l.event === 'apply_finished'), 60_000);
  const first = lines.find((l) => l.event === 'apply_finished')!;
  t.match(first, { status: 'succeeded', runId: /^\d{8}T\d{6}Z-[0-9a-f]{4}$/, actions: [{ action: 'backup.create.minutely', status: 'done' }] });
  t.ok(lines.some((l) => l.event === 'action_started' && l.runId === first.runId), 'action lines carry the run id');
  t.equal((await scanStorage(storage)).valid.length, 1, 'a backup appeared');

  await until('a health check after the apply', () => lines.some((l) => l.event === 'health_checked' && l.trigger === 'after apply'), 30_000);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const families = new Map(parsePrometheusTextFormat(metrics).map((f) => [f.name, f]));
  t.same(families.get('jarvis_db_backups_valid')?.metrics, [{ labels: { schedule: 'minutely' }, value: '1' }], '/metrics shows the backup');
  t.ok(Number(families.get('jarvis_db_backups_age_seconds')?.metrics[0]?.value) < 120);
  t.same(families.get('jarvis_db_daemon_runs_total')?.metrics, [{ labels: { status: 'succeeded' }, value: '1' }]);
  t.equal(families.get('jarvis_db_postgres_up')?.metrics[0]?.value, '1');
  const live = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(live.status, 200);

  // The cron fires at the next minute: SIGTERM as soon as its backup starts (sent from the log reader).
  await until('the cron-triggered backup', () => lines.some((l) => l.event === 'action_started' && l.runId !== first.runId), 75_000);
  const code = await exited;
  const cronRun = lines.find((l) => l.event === 'apply_started' && l.trigger === 'cron');
  t.ok(cronRun, 'the second apply came from the cron');
  t.equal(code, 0, `exit code (stderr: ${stderr})`);
  const events = lines.map((l) => l.event);
  t.ok(events.indexOf('daemon_stopping') < events.lastIndexOf('action_finished'), 'the running backup finished after the stop was asked');
  t.match(lines.find((l) => l.event === 'daemon_stopping'), { reason: 'SIGTERM', applying: true });
  t.equal(events.at(-1), 'daemon_stopped');
  const scan = await scanStorage(storage);
  t.equal(scan.invalid.length, 0, 'no damaged backup');
  t.same(await findDebris(storage), [], 'no half-written backup left behind');
  t.equal(scan.valid.length, 2, 'the interrupted run\'s backup was finished, not abandoned half-way');
  for (const l of lines) t.type(l.time, 'string');
  t.notMatch(JSON.stringify(lines), state.postgres!.password, 'no password in the log');
});
