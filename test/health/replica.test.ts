/**
 * Replication lag on a real streaming replica of a sandbox PostgreSQL (pg_basebackup -R): absent
 * on the primary, measured on the replica, WARNING while replay is paused behind new writes,
 * HEALTHY again once it catches up.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { withSandbox } from '../helpers/sandbox.js';
import { freePort } from '../../src/sandbox/index.js';
import { observeHealth } from '../../src/health/check.js';
import { evaluate } from '../../src/health/evaluate.js';
import { desiredFor } from './fixture.js';

const run = promisify(execFile);
const root = process.getuid?.() === 0;
/** Server commands run as `postgres` when we are root, as the sandbox does. */
const asServer = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
  root ? run('runuser', ['-u', 'postgres', '--', cmd, ...args], { env }) : run(cmd, args, { env });

t.test('replication lag is measured on a replica and judged against its threshold', async (t) => {
  const state = await withSandbox(t, ['postgres']);
  const primary = state.postgres!;
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-replica-'));
  await chmod(dir, 0o700);
  if (root) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout), Number(gid));
  }
  const data = join(dir, 'data');
  const port = await freePort();
  t.teardown(async () => {
    await asServer(join(primary.binDir, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  // --checkpoint=fast: with the default spread checkpoint pg_basebackup waits minutes.
  await asServer(join(primary.binDir, 'pg_basebackup'), ['-D', data, '-R', '-X', 'stream', '--checkpoint=fast', '-h', '127.0.0.1', '-p', String(primary.port), '-U', primary.user],
    { ...process.env, PGPASSWORD: primary.password });
  await asServer(join(primary.binDir, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-o', `-p ${port}`, 'start']);
  const replicaUrl = primary.url.replace(`:${primary.port}/`, `:${port}/`);

  const thresholds = { 'postgres.replication_lag_seconds': { warning: 2, lowerIsWorse: false } };
  const lagOf = async (url: string) => {
    const observed = await observeHealth(desiredFor({ services: { postgres: { url } }, storage: { path: dir }, health: { thresholds, intervalSeconds: 60, historySeconds: 86400 } }), { services: ['postgres'] });
    const sample = observed.samples.find((s) => s.check === 'postgres.replication_lag_seconds');
    return { sample, finding: evaluate(observed.samples, thresholds).find((f) => f.check === 'postgres.replication_lag_seconds') };
  };
  t.equal((await lagOf(primary.url)).sample, undefined, 'a primary has no replication lag sample');
  const writer = new pg.Client({ connectionString: primary.url });
  const standby = new pg.Client({ connectionString: replicaUrl });
  await writer.connect();
  await standby.connect();
  t.teardown(() => Promise.all([writer.end(), standby.end()]));
  await writer.query('CREATE TABLE ticks (at timestamptz)');
  await writer.query('INSERT INTO ticks VALUES (now())');
  // Wait for the replica to replay the insert.
  for (let i = 0; i < 100 && Number((await standby.query('SELECT count(*) FROM pg_class WHERE relname = $1', ['ticks'])).rows[0].count) === 0; i++) await new Promise((r) => setTimeout(r, 100));
  const caughtUp = await lagOf(replicaUrl);
  t.match(caughtUp.finding, { status: 'HEALTHY' });
  t.ok(caughtUp.sample!.value! < 2, `caught up: ${caughtUp.sample!.value} s`);

  await standby.query('SELECT pg_wal_replay_pause()');
  await new Promise((r) => setTimeout(r, 2500));
  await writer.query('INSERT INTO ticks VALUES (now())');
  await new Promise((r) => setTimeout(r, 300));
  const behind = await lagOf(replicaUrl);
  t.match(behind.finding, { status: 'WARNING' });
  t.ok(behind.sample!.value! >= 2, `paused behind a write: ${behind.sample!.value} s`);

  await standby.query('SELECT pg_wal_replay_resume()');
  for (let i = 0; i < 50; i++) {
    const r = await standby.query('SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AS done');
    if (r.rows[0].done) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  t.match((await lagOf(replicaUrl)).finding, { status: 'HEALTHY' }, 'caught up again');
});
