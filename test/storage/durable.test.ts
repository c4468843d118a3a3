/**
 * Hashing a file while another process appends to it (the base tar pg_basebackup writes): the
 * hash is that of the whole file, however the writes and the reads interleave.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFile, hashGrowingFile } from '../../src/storage/durable.js';

function writer(script: string): Promise<number> {
  const child = spawn('sh', ['-c', script], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

t.test('a file appended to by another process, created after the hashing started: the hash of the whole file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-growing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'base.tar.zst');
  const done = writer(`sleep 0.1; for i in 1 2 3 4 5 6; do head -c 700001 /dev/urandom >> '${path}'; sleep 0.05; done`);
  const growing = await hashGrowingFile(path, done, 10);
  t.same(growing, await hashFile(path));
  t.equal(growing.bytes, 6 * 700_001);
});

t.test('a writer that exits without writing the file: an error, not an empty hash', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-growing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.rejects(hashGrowingFile(join(dir, 'never'), writer('exit 1'), 10), { code: 'ENOENT' });
});
