/**
 * The WAL prune and the WAL verification on the sandbox PostgreSQL, through the compiled CLI
 * (build first): two physical base backups with WAL archived between and after them (`wal push`
 * of every segment and backup label in pg_wal, as archive_command does); keep 1 → plan shows prune_backup
 * then prune_wal up to the kept base backup's start; an apply killed -9 in the middle of the
 * prune_wal leaves no hole, the next apply removes exactly the WAL before the kept base's start;
 * backup verify checks the WAL from there; a point-in-time restore to a time after the kept base
 * still works; then a flipped byte in an archived segment is caught by backup verify (naming the
 * segment and the repository) and a restore --to-time that needs it fails clearly.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Plan, PruneWal } from '../../src/engine/types.js';
import { freePort } from '../../src/scratch/servers.js';
import { gapsIn, parseLsn, segmentNumber, segmentOfLsn } from '../../src/wal/segments.js';
import { freshDatabase, sql } from '../backup/fixture.js';
import { cli, eventsDigest, onPort, sleep, stopOnTeardown } from './pitr-fixture.js';
import { BIN } from './fixture.js';

const MB16 = 16 * 1024 * 1024;



t.test('base backups pruned take the WAL only they needed; a kill -9 mid prune leaves no hole; PITR after the kept base still works; a flipped byte is caught', async (t) => {
  const db = await freshDatabase(t, 'walprune');
  await sql(db.serverUrl, `ALTER SYSTEM SET wal_keep_size = '4GB'`);
  await sql(db.serverUrl, 'SELECT pg_reload_conf()');
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-wal-prune-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'jarvis-db.yaml');
  const storage = join(dir, 'backups');
  const writeConfig = (keep: string, more = '') => writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "${JARVIS_PG_URL}", pitr: { enabled: true } }', 'storage:', `  path: ${storage}`,
    'backups:', `  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", timezone: UTC, compression: 1, keep: ${keep}${more} }`, '',
  ].join('\n'));
  await writeConfig('{ last: 3 }');
  const env = { JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
  const [info] = await sql(db.serverUrl, `SELECT current_setting('data_directory') AS data`);
  const pgWal = join((info!.rows[0] as { data: string }).data, 'pg_wal');
  /** What archive_command would have done by now: every completed segment and backup label pushed. */
  const pushAll = async () => {
    const [r] = await sql(db.serverUrl, 'SELECT pg_walfile_name(pg_switch_wal()) AS last');
    const last = (r!.rows[0] as { last: string }).last;
    for (const name of (await readdir(pgWal)).filter((n) => (/^[0-9A-F]{24}$/.test(n) && n <= last) || /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/.test(n)).sort()) {
      const push = cli(['wal', 'push', join(pgWal, name)], env);
      t.equal(push.code, 0, `push ${name}: ${push.stderr}`);
    }
  };
  const archived = async () => (await readdir(join(storage, 'wal', '00000001'))).filter((n) => !n.startsWith('.')).sort();
  const manifestOf = async (id: string) => JSON.parse(await readFile(join(storage, 'postgres', 'base', id, 'manifest.json'), 'utf8')) as { extra: { startLsn: string } };

  await sql(db.url, `CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), v text)`);
  await sql(db.url, `INSERT INTO events (id, v) SELECT i, md5(i::text) FROM generate_series(1, 200) i`);
  t.equal(cli(['backup', 'create', '--service', 'postgres'], env).code, 0, 'base backup A');
  for (let i = 0; i < 3; i++) {
    await sql(db.url, `INSERT INTO events (id, v) SELECT i, md5(i::text) FROM generate_series(${1000 + i * 100}, ${1099 + i * 100}) i`);
    await pushAll();
  }
  t.equal(cli(['backup', 'create', '--service', 'postgres'], env).code, 0, 'base backup B');
  await sql(db.url, `INSERT INTO events (id, v) SELECT i, md5(i::text) FROM generate_series(5000, 5100) i`);
  await sleep(1100);
  const [now] = await sql(db.url, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`);
  const T = (now!.rows[0] as { t: string }).t;
  const atT = await eventsDigest(db.url);
  await sleep(1100);
  await sql(db.url, `INSERT INTO events (id, v) SELECT i, 'after T' FROM generate_series(6000, 6100) i`);
  await pushAll();

  const list = JSON.parse(cli(['backup', 'list', '--json'], env).stdout) as { backups: { id: string; startedAt: string }[] };
  const [b, a] = list.backups.map((x) => x.id);
  const cutoff = segmentOfLsn(1, parseLsn((await manifestOf(b!)).extra.startLsn), MB16);
  const before = await archived();
  const segno = (n: string) => segmentNumber(n.slice(0, 24), MB16);
  const expectedGone = before.filter((n) => segno(n) < segno(cutoff));
  t.ok(expectedGone.length >= 3, `WAL between A and B (${expectedGone.length} files)`);

  await writeConfig('{ last: 1 }');
  const planned = cli(['plan', '--json'], env);
  t.equal(planned.code, 0, planned.stderr);
  const plan = JSON.parse(planned.stdout) as Plan;
  t.same(plan.actions.map((x) => [x.type, x.id]), [['prune_backup', `backup.prune.${a}`], ['prune_wal', 'backup.prune.wal.local']]);
  const wal = plan.actions[1] as PruneWal;
  t.same(wal.params, { repository: 'local', before: cutoff, files: expectedGone.length, bytes: expectedGone.filter((n) => n.length === 24).length * MB16 });
  t.same(wal.requires, [`backup.prune.${a}`]);
  t.match(cli(['plan'], env).stdout, new RegExp(`- prune_wal local: ${expectedGone.length} WAL files before ${cutoff} DESTRUCTIVE`));

  // An apply killed -9 after the second WAL file is deleted: the chain left has no hole.
  const proc = spawn(process.execPath, [BIN, 'apply', '--auto-approve'], { env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: 'wal-prune-deleted-2' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const paused = await new Promise<boolean>((resolve) => {
    proc.stderr!.on('data', (d: Buffer) => { stderr += d; if (stderr.includes('test pause at wal-prune-deleted-2')) resolve(true); });
    proc.on('exit', () => resolve(false));
  });
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
  await exited;
  t.ok(paused, `the apply paused in the prune_wal: ${stderr}`);
  const killed = await archived();
  t.same(killed, before.filter((n) => !expectedGone.slice(0, 2).includes(n)), 'the two oldest went first, nothing else');
  t.same(gapsIn(killed.filter((n) => n.length === 24), MB16), [], 'no hole');

  const applied = cli(['apply', '--auto-approve'], env);
  t.equal(applied.code, 0, applied.stdout + applied.stderr);
  t.match(applied.stdout + applied.stderr, new RegExp(`${expectedGone.length - 2} WAL files? before ${cutoff} deleted from local \\(\\S+ \\S+ stored\\)`));
  t.same(await archived(), before.filter((n) => !expectedGone.includes(n)), 'exactly the WAL before the kept base backup\'s start is gone');
  t.equal((await archived())[0], cutoff, 'the chain now starts where B starts');
  t.same((await readdir(join(storage, 'wal', '00000001'))).filter((n) => n.startsWith('.')), [], 'the debris of the killed delete is removed');
  const replan = JSON.parse(cli(['plan', '--json'], env).stdout) as Plan;
  t.same(replan.actions, [], 'converged: nothing left to prune');

  const verify = cli(['backup', 'verify', b!], env);
  t.equal(verify.code, 0, verify.stdout + verify.stderr);
  t.match(verify.stdout, new RegExp(`^ok WAL in local: \\d+ files from ${cutoff} to the end of the chain, .*: checksums match$`, 'm'));

  const shown = cli(['backup', 'list'], env);
  t.match(shown.stdout, /^postgres PITR window \(local\): \S+ \S+ → \S+ \S+, timeline 1$/m);

  const port = await freePort();
  const target = join(dir, 'recovered');
  stopOnTeardown(t, target);
  const restored = cli(['restore', 'latest', '--to-time', T, '--target-dir', target, '--start', '--port', String(port)], env);
  t.equal(restored.code, 0, restored.stderr);
  const recovered = onPort(db.url, port);
  t.equal(await eventsDigest(recovered), atT, 'the pruned archive still recovers exactly the rows committed before T');

  // A flipped byte in a segment after B's start.
  const victim = (await archived()).filter((n) => n.length === 24).at(-1)!;
  const item = join(storage, 'wal', '00000001', victim);
  const stored = (await readdir(item)).find((f) => f !== 'segment.json')!;
  const bytes = await readFile(join(item, stored));
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  await writeFile(join(item, stored), bytes);
  const caught = cli(['backup', 'verify', b!], env);
  t.equal(caught.code, 1);
  t.match(caught.stdout, new RegExp(`^FAILED WAL in local: ${victim} in repository local is damaged`, 'm'));
  t.match(caught.stderr, new RegExp(`^error: the archived WAL of backup ${b} failed verification: ${victim} in repository local is damaged`, 'm'));
  t.notMatch(caught.stderr, /\n\s+at /, 'no stack trace');
  const all = cli(['backup', 'verify', '--all', '--json'], env);
  t.equal(all.code, 1);
  t.same((JSON.parse(all.stdout) as { wal: { damaged: { name: string }[] }[] }).wal[0]!.damaged.map((d) => d.name), [victim]);
  const refused = cli(['restore', 'latest', '--to-time', T, '--target-dir', join(dir, 'refused')], env);
  t.equal(refused.code, 1, 'a restore that needs the damaged segment fails');
  t.match(refused.stderr, new RegExp(`${victim} in repository local is damaged`));
  t.notMatch(refused.stderr, /\n\s+at /);
  // With --start the server replays while the WAL is fetched: the damaged segment stops it, and is named.
  const startedTarget = join(dir, 'refused-started');
  stopOnTeardown(t, startedTarget);
  const refusedStart = cli(['restore', 'latest', '--to-time', T, '--target-dir', startedTarget, '--start', '--port', String(await freePort())], env);
  t.equal(refusedStart.code, 1, 'a restore --start that needs the damaged segment fails');
  t.match(refusedStart.stderr, new RegExp(`${victim} in repository local is damaged`));
  await t.rejects(stat(join(startedTarget, 'postmaster.pid')), 'and the server it started is stopped');

  // A scheduled restore test (verify: restore) of the base backup checks its WAL too.
  await writeConfig('{ last: 1 }', ', verify: restore');
  const verifyPlan = JSON.parse(cli(['plan', '--json'], env).stdout) as Plan;
  t.ok(verifyPlan.actions.some((x) => x.id === `backup.verify.${b}`), 'the newest base backup is due for its restore test');
  const scheduled = cli(['apply', '--auto-approve', '--target', `backup.verify.${b}`], env);
  t.equal(scheduled.code, 1, scheduled.stdout + scheduled.stderr);
  t.match(scheduled.stdout + scheduled.stderr, new RegExp(`the archived WAL of backup ${b} failed verification: ${victim} in repository local is damaged`));
  t.notMatch(scheduled.stderr, /\n\s+at /);
});
