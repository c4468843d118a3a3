/**
 * Writing storage on a real full file system (a 1 MB tmpfs mounted for the test, we run as
 * root): the error names the file and says what to do, the exit code is 1, no stack trace, and
 * no empty journal is left behind. Skipped, saying why in its name, where mount is not allowed.
 * The CLI test needs the compiled CLI (`npm run build`).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, open, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingFileSink, writeFileAtomic } from '../../src/storage/durable.js';
import { cli, writeConfig } from '../engine/fixtures/cli.js';

const PAGE = 4096;

/** A new directory with a tmpfs of `size` mounted on it, or null when this machine does not allow mounting. */
async function mountTmpfs(size: string): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-full-'));
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]).status === 0) return dir;
  await rm(dir, { recursive: true, force: true });
  return null;
}

async function unmount(dir: string): Promise<void> {
  spawnSync('umount', [dir]);
  await rm(dir, { recursive: true, force: true });
}

/** A 1 MB tmpfs for one test, unmounted and removed at its teardown. */
async function fullDiskFor(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mountTmpfs('1m');
  if (!dir) throw new Error('mount -t tmpfs failed');
  t.teardown(() => unmount(dir));
  return dir;
}

const probe = await mountTmpfs('64k');
if (probe) await unmount(probe);
const mountable = probe !== null;
const skip = mountable ? false : 'mount -t tmpfs is not permitted here';
const named = (name: string) => (mountable ? name : `${name} (skipped: mount -t tmpfs is not permitted here)`);

/** Fills the file system of `dir` to its last byte, keeping `leavePages` pages free. */
async function fill(dir: string, leavePages = 0): Promise<void> {
  const spare = join(dir, '.spare');
  if (leavePages) await writeFile(spare, Buffer.alloc(leavePages * PAGE, 1));
  const handle = await open(join(dir, '.filler'), 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) {
      try {
        await handle.write(block);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        break;
      }
    }
    // the last block may have gone in partly: fill the remaining bytes one page at a time
    for (;;) {
      try {
        await handle.write(Buffer.alloc(PAGE, 1));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        break;
      }
    }
  } finally {
    await handle.close();
  }
  if (leavePages) await unlink(spare);
}

t.test(named('apply on a full storage disk fails naming the journal file and what to do, leaving no empty journal'), { skip }, async (t) => {
  const dir = t.testdir();
  const storage = await fullDiskFor(t);
  // Two pages left: SQLite's lock journal and the lock's owner file take them, then the journal's first line finds the disk full.
  await fill(storage, 2);
  const config = await writeConfig(dir, ['version: 1', 'services:', '  postgres: { url: "postgres://nobody@127.0.0.1:1/none" }', `storage: { path: ${storage} }`]);
  for (const attempt of [1, 2]) {
    const r = cli(['apply', '--auto-approve'], { JARVIS_DB_CONFIG: config, MARKER_FILE: join(dir, 'marker') });
    t.equal(r.code, 1, `attempt ${attempt} exits 1`);
    t.match(r.stderr, new RegExp(`^error: cannot write ${storage}/journal/\\d{8}T\\d{6}Z-[0-9a-f]{4}\\.jsonl: no space left on its file system\\n`
      + `hint: free space on the file system of ${storage}/journal \\(\\d+ bytes free\\) or point storage\\.path elsewhere$`, 'm'), `attempt ${attempt} names the file`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    t.notMatch(r.stderr, /ENOSPC: no space left on device/, 'not the bare errno message');
    t.same(await readdir(join(storage, 'journal')), [], `attempt ${attempt} leaves no journal file`);
  }
});

t.test(named('durable writes on a full file system name the file and leave no temporary file'), { skip }, async (t) => {
  const storage = await fullDiskFor(t);
  await fill(storage);
  const manifest = join(storage, 'manifest.json');
  await t.rejects(writeFileAtomic(manifest, 'x'.repeat(10_000)), {
    code: 'STORAGE_FAILED', message: `cannot write ${manifest}: no space left on its file system`,
    hint: new RegExp(`^free space on the file system of ${storage} \\(\\d+ bytes free\\) or point storage\\.path elsewhere$`),
  });
  t.same((await readdir(storage)).sort(), ['.filler'], 'no manifest, no temporary file');
  const data = join(storage, 'data.bin');
  await t.rejects(pipeline(Readable.from([Buffer.alloc(256 * 1024, 7)]), new HashingFileSink(data)), {
    code: 'STORAGE_FAILED', message: `cannot write ${data}: no space left on its file system`, hint: /or point storage\.path elsewhere/,
  });
  t.equal((await stat(data)).size, 0, 'the data file got nothing');
});

t.test(named('apply on a storage disk full to its last byte fails naming the lock file and what to do'), { skip }, async (t) => {
  const dir = t.testdir();
  const storage = await fullDiskFor(t);
  await fill(storage);
  const config = await writeConfig(dir, ['version: 1', 'services:', '  postgres: { url: "postgres://nobody@127.0.0.1:1/none" }', `storage: { path: ${storage} }`]);
  const r = cli(['apply', '--auto-approve'], { JARVIS_DB_CONFIG: config, MARKER_FILE: join(dir, 'marker') });
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`^error: cannot take the apply lock ${storage}/\\.jarvis-db\\.lock: .*\nhint: free space on the file system of ${storage} or point storage\\.path elsewhere$`, 'm'));
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.notOk((await readdir(storage)).includes('journal'), 'no journal');
});
