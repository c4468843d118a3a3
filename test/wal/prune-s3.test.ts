/**
 * The WAL prune (src/wal/prune.ts) on an S3 repository (the sandbox's s3rver): the handler only
 * uses the sealed-store contract, and this holds it to that. The same fixture as
 * test/wal/prune-run.test.ts (fake base backups and 1 MiB segments, no PostgreSQL), with the
 * repository in a bucket: the cut-off, the WAL a remaining base backup holds, `backup prune`
 * through the CLI, and a kill -9 in the middle that leaves a contiguous chain in the bucket.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { listBackups } from '../../src/backup/catalog.js';
import { deleteBackup } from '../../src/backup/storage.js';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { openRepositories } from '../../src/storage/repositories.js';
import { pruneWal } from '../../src/wal/prune.js';
import { gapsIn } from '../../src/wal/segments.js';
import { withSandbox, type SandboxState } from '../helpers/sandbox.js';
import { archived, BIN, cli, LAST, MB1, seg, setup } from './fixture.js';

let sandbox: SandboxState;
t.before(async () => { sandbox = await withSandbox(t, ['s3']); });
let cases = 0;

/** The fixture with its one repository in the bucket, under a prefix of its own. */
async function inBucket(dir: string) {
  const repositories = [
    'repositories:',
    '  - name: offsite',
    `    s3: { bucket: "\${JARVIS_S3_BUCKET}", prefix: wal-prune-${++cases}/, region: "\${AWS_REGION}", endpoint: "\${JARVIS_S3_ENDPOINT}", forcePathStyle: true }`,
  ];
  const env = sandboxEnv(sandbox) as Record<string, string>;
  const fixture = await setup(dir, { repositories, env });
  return { ...fixture, all: { ...process.env, ...fixture.env } };
}

t.test('on S3, the handler deletes the WAL before the cut-off and never what a base backup still in the bucket needs', async (t) => {
  const { desired, bases, all } = await inBucket(t.testdir());
  t.equal((await archived(desired, all)).length, LAST + 2, 'the fixture is in the bucket');
  const held = await pruneWal(desired, { repository: 'offsite', before: seg(9), env: all });
  t.same([held.before, held.deleted], [seg(3), 2], 'only the WAL before the oldest base backup still there');
  t.match(held.held, `base backup ${bases[0]} is still in offsite and needs the WAL from ${seg(3)}`);

  for (const id of bases.slice(0, 2)) await deleteBackup((await listBackups(openRepositories(desired, all))).find((e) => e.manifest.id === id)!);
  const next = await pruneWal(desired, { repository: 'offsite', before: seg(9), env: all });
  t.same([next.before, next.deleted, next.held], [seg(9), 7, undefined]);
  t.same(await archived(desired, all), [...[9, 10, 11, 12].map(seg), '00000002.history'], 'exactly the WAL from the kept base backup on, and the history file');
});

t.test('on S3, backup prune takes the backups then their WAL; a kill -9 in the middle leaves a contiguous chain and the next prune finishes', async (t) => {
  const { env, desired, all } = await inBucket(t.testdir());
  const proc = spawn(process.execPath, [BIN, 'backup', 'prune'], { env: { ...all, JARVIS_DB_TEST_PAUSE_AT: 'wal-prune-deleted-4' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const paused = await new Promise<boolean>((resolve) => {
    proc.stderr!.on('data', (d: Buffer) => { stderr += d; if (stderr.includes('test pause at wal-prune-deleted-4')) resolve(true); });
    proc.on('exit', () => resolve(false));
  });
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
  await exited;
  t.ok(paused, `paused after the fourth delete: ${stderr}`);
  const left = (await archived(desired, all)).filter((n) => n.length === 24);
  t.same(gapsIn(left, MB1), [], 'no hole in the bucket');
  t.equal(left[0], seg(4), 'the four oldest files went first (0x01, 0x02, 0x03 and its label)');
  t.equal(left.at(-1), seg(LAST));

  const rerun = cli(['backup', 'prune'], env);
  t.equal(rerun.code, 0, rerun.stderr);
  t.same(await archived(desired, all), [...[9, 10, 11, 12].map(seg), '00000002.history'], 'the next prune finishes the job');
});
