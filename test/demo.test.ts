/**
 * The README's quickstart stays true: `npm run demo` (scripts/demo.sh) runs start to end on
 * throwaway servers and stops them, the point-in-time recovery drill of examples/pitr.yaml included
 * (a restore point, a dropped table, the table back in a recovered copy, which is stopped). The
 * installs are skipped here: the test run has them.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readSandbox, stopSandbox } from '../src/sandbox/index.js';

const run = promisify(execFile);
const DEMO = new URL('../scripts/demo.sh', import.meta.url).pathname;

t.test('the demo runs every step against its own sandbox and stops it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-demo-test-'));
  await chmod(dir, 0o755);
  t.teardown(async () => {
    await stopSandbox(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  const { stdout, stderr } = await run('bash', [DEMO], {
    env: { ...process.env, JARVIS_DEMO_SKIP_INSTALL: '1', JARVIS_DEMO_DIR: dir, NO_COLOR: '1' },
    timeout: 300_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  t.match(stdout, /^OK .*jarvis-db\.yaml: 3 backup schedules/m, 'the root config validates against the sandbox');
  t.match(stdout, /init --seed[\s\S]*jarvis-db plan \(exit 2: changes pending\)[\s\S]*Plan: 8 to create, /, 'the seeded data needs backups and archives (and their off-site copies) and retention');
  t.match(stdout, /Apply complete: \d+ actions done/, 'apply does all of it');
  t.match(stdout, /plan \(exit 0: nothing left to do\)[\s\S]*No changes\. Observed state matches jarvis-db\.yaml\./, 'and converges');
  for (const service of ['postgres', 'redis', 'chroma', 'backups', 'consistency']) {
    t.match(stdout, new RegExp(`health check --service ${service} \\(exit 0[^\\n]*\\nHealth: HEALTHY\\b`), `and ends healthy: ${service} (no dead tuples left by its own retention run)`);
  }
  t.match(stderr, /then VACUUM \(ANALYZE\) of public\.\w+/, 'the retention run vacuumed the tables it emptied');
  for (const schedule of ['postgres-nightly', 'redis-hourly', 'chroma-daily']) {
    t.match(stdout, new RegExp(`\\b${schedule}\\b.*\\b(checksum|restore) \\d+[smh] ago\\s+local, offsite$`, 'm'), `backup list shows ${schedule}, in the local repository and copied off-site to the sandbox's S3 server`);
  }
  t.match(stdout, /\+ copy_backup postgres-nightly\/<new backup> to offsite/, 'the plan shows the off-site copy');
  t.match(stdout, /conversations-archive\s+public\.conversations/, 'archive list shows the archive');
  t.match(stdout, /wal stream \(examples\/pitr\.yaml[\s\S]*\+ postgres\/postgres-base \S+: .* in 3 files/, 'a physical base backup with the WAL streamed alongside');
  t.match(stdout, /restore point "before-drop" created at LSN [0-9A-F]+\/[0-9A-F]+\nmetrics dropped/);
  t.match(stdout, /^  timeline 1: \d+ segments .*\n    recoverable from \S+ to \S+ \(base backup \S+\)$/m, 'wal status shows the window');
  t.match(stdout, /recovery stopping at restore point "before-drop"[^\n]*; promoted, listening on 127\.0\.0\.1:\d+/, 'recovered to the restore point and promoted');
  const before = /^metrics has (\d+) rows$/m.exec(stdout)?.[1];
  t.ok(Number(before) > 0, 'the seeded metrics');
  t.match(stdout, new RegExp(`^metrics is back in the recovered copy: ${before} rows$`, 'm'), 'the dropped table is back, every row of it');
  t.match(stdout, /== stop the recovered copy: .*pg_ctl -D \S+ stop/);
  t.match(stdout, /Demo done\./);
  t.equal(await readSandbox(dir), null, 'the sandbox is stopped at the end');
});
