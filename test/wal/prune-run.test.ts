/**
 * Executing the WAL prune on a local repository, without a server: base backups are catalog
 * entries whose manifests carry a WAL start (as physical backups' do), the WAL is fake 1 MiB
 * segments pushed like `wal push` (the segment size is read from the archive). The handler never
 * deletes past what a base backup still there needs (a prune_backup that failed keeps its WAL);
 * `backup prune` prunes the WAL after the backups; a kill -9 in the middle leaves a contiguous
 * chain, and the next prune finishes the job and removes the debris.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups } from '../../src/backup/catalog.js';
import { deleteBackup } from '../../src/backup/storage.js';
import { openRepositories } from '../../src/storage/repositories.js';
import { pruneWal } from '../../src/wal/prune.js';
import { gapsIn } from '../../src/wal/segments.js';
import { archived, BIN, cli, LAST, MB1, seg, setup } from './fixture.js';

t.test('the handler never deletes past the WAL a base backup still there needs: a prune_backup that failed keeps its WAL', async (t) => {
  const dir = t.testdir();
  const { desired, bases } = await setup(dir);
  // Planned after pruning the bases of days 22 and 23; neither prune happened.
  const held = await pruneWal(desired, { repository: 'local', before: seg(9), env: {} });
  t.same([held.before, held.deleted], [seg(3), 2], 'only the WAL before the oldest base backup still there');
  t.match(held.held, `base backup ${bases[0]} is still in local and needs the WAL from ${seg(3)}`);
  t.ok(held.storedBytes > 0);
  t.same((await archived(desired))[0], seg(3));

  // The oldest one is gone now; the planned cut-off still bounds the prune.
  await deleteBackup((await listBackups(openRepositories(desired))).find((e) => e.manifest.id === bases[0])!);
  const next = await pruneWal(desired, { repository: 'local', before: seg(4), env: {} });
  t.same([next.before, next.deleted, next.held], [seg(4), 2, undefined], 'segment 0x03 and its label, nothing at the planned cut-off');
  const after = await archived(desired);
  t.same(after.at(-1), '00000002.history', 'the history file stays');
  t.same(after[0], seg(4));
  t.same(gapsIn(after.filter((n) => n.length === 24), MB1), [], 'no hole');

  for (const e of await listBackups(openRepositories(desired))) await deleteBackup(e);
  const none = await pruneWal(desired, { repository: 'local', before: seg(9), env: {} });
  t.same([none.deleted, none.held], [0, 'no physical base backup is in local now: its WAL is kept']);
});

t.test('backup prune: --dry-run says what WAL would go; then the backups go, then the WAL before the kept base backup', async (t) => {
  const dir = t.testdir();
  const { env, desired, bases } = await setup(dir);
  const dry = cli(['backup', 'prune', '--dry-run'], env);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, `- would delete 9 WAL files before ${seg(9)} in local (8.4 MB uncompressed; needed by no kept base backup)`);
  t.equal((await archived(desired)).length, LAST + 2, 'a dry run deletes nothing');

  const json = cli(['backup', 'prune', '--json'], env);
  t.equal(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout) as { pruned: { id: string }[]; wal: { repository: string; before: string; files: number; deleted: number }[] };
  t.same(out.pruned.map((p) => p.id).sort(), bases.slice(0, 2));
  t.same(out.wal.map((w) => [w.repository, w.before, w.files, w.deleted]), [['local', seg(9), 9, 9]]);
  t.same(await archived(desired), [...[9, 10, 11, 12].map(seg), '00000002.history'], 'exactly the WAL from the kept base backup on, and the history file');

  const again = cli(['backup', 'prune'], env);
  t.equal(again.code, 0, again.stderr);
  t.notMatch(again.stdout, /WAL/, 'nothing left to prune');
});

/** Runs `backup prune`, kills it (and its group) with SIGKILL at a pause point or after a delay. */
async function killPrune(env: Record<string, string>, moment: { pause?: string; delayMs?: number }): Promise<boolean> {
  const proc = spawn(process.execPath, [BIN, 'backup', 'prune'], { env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: moment.pause ?? '' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const paused = await new Promise<boolean>((resolve) => {
    proc.stderr!.on('data', (d: Buffer) => { stderr += d; if (moment.pause && stderr.includes(`test pause at ${moment.pause}`)) resolve(true); });
    if (moment.delayMs !== undefined) setTimeout(() => resolve(false), moment.delayMs);
    proc.on('exit', () => resolve(false));
  });
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
  await exited;
  return paused;
}

t.test('kill -9 in the middle of a prune_wal: a contiguous chain is left (never a hole), and the next prune finishes and removes the debris', async (t) => {
  for (const moment of [{ pause: 'wal-prune-deleted-1' }, { pause: 'wal-prune-deleted-4' }, { delayMs: 700 }, { delayMs: 900 }, { delayMs: 1100 }]) {
    const dir = join(t.testdir(), `kill-${moment.pause ?? moment.delayMs}`);
    await mkdir(dir, { recursive: true });
    const { env, desired } = await setup(dir);
    const paused = await killPrune(env, moment);
    if (moment.pause) t.ok(paused, `paused at ${moment.pause}`);
    const left = (await archived(desired)).filter((n) => n.length === 24);
    t.same(gapsIn(left, MB1), [], `no hole after a kill ${JSON.stringify(moment)}`);
    t.equal(left.at(-1), seg(LAST), 'the newest WAL is all there');
    t.ok(left[0]! <= seg(9), 'nothing from the kept base backup on is gone');
    if (moment.pause === 'wal-prune-deleted-4') t.equal(left[0], seg(4), 'the four oldest files went first (0x01, 0x02, 0x03 and its label)');
    const rerun = cli(['backup', 'prune'], env);
    t.equal(rerun.code, 0, rerun.stderr);
    t.same(await archived(desired), [...[9, 10, 11, 12].map(seg), '00000002.history'], `the next prune finishes the job (${JSON.stringify(moment)})`);
    t.same((await readdir(join(dir, 'backups', 'wal', '00000001'))).filter((n) => n.startsWith('.')), [], 'the debris of the killed delete is removed');
  }
});
