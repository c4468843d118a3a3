/**
 * `backup prune` with two repositories, through the engine as the CLI runs it: each repository
 * prunes by its own keep rules (the second's `keep`, else the schedule's), and the copy made by
 * `copyBackup` is byte for byte the source's (same manifest text, same file hashes).
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { listBackups } from '../../src/backup/catalog.js';
import { pruneBackupsCommand } from '../../src/backup/commands.js';
import { copyBackup, repositoriesFor } from '../../src/backup/operations.js';
import { BackupWriter } from '../../src/backup/storage.js';
import type { Desired } from '../../src/config/types.js';
import { makeDesired } from './fixture.js';

function twoRepositories(dir: string, offsiteKeep: { last: number }): Desired {
  return {
    ...makeDesired('postgres://x@127.0.0.1/x', join(dir, 'state'), { keep: { last: 2 } }),
    repositories: [
      { name: 'local', path: 'repositories[0]', kind: 'local', dir: join(dir, 'local') },
      { name: 'offsite', path: 'repositories[1]', kind: 'local', dir: join(dir, 'offsite'), keep: offsiteKeep },
    ],
  };
}

t.test('each repository prunes by its own keep rules; a copy is the same backup, byte for byte', async (t) => {
  const dir = t.testdir();
  const desired = twoRepositories(dir, { last: 4 });
  const [local, offsite] = repositoriesFor(desired, undefined, {});
  const ids: string[] = [];
  for (let d = 10; d <= 15; d++) {
    const iso = `2026-11-${d}T03:00:00Z`;
    const w = await BackupWriter.begin({ repository: local!, service: 'postgres', schedule: 'nightly', now: new Date(iso) });
    await w.writeStream('data.bin', Readable.from([Buffer.from(`day ${d} `.repeat(1000))]));
    await w.writeStream('toc.dat', Readable.from([Buffer.from(`toc ${d}`)]));
    const { manifest } = await w.publish({ method: 'test', extra: {} }, new Date(iso));
    ids.push(manifest.id);
    const copy = await copyBackup(desired, { id: manifest.id, from: 'local', to: 'offsite', env: {} });
    t.equal(copy.copied, true);
    t.equal(copy.entry.repository, 'offsite');
  }
  const at = (repo: string, id: string) => join(dir, repo, 'postgres', 'nightly', id, 'manifest.json');
  t.equal(await readFile(at('offsite', ids[0]!), 'utf8'), await readFile(at('local', ids[0]!), 'utf8'), 'the same manifest text');
  t.equal(await readFile(join(dir, 'offsite', 'postgres', 'nightly', ids[0]!, 'data.bin'), 'utf8'), `day 10 `.repeat(1000));
  t.equal((await copyBackup(desired, { id: ids[0]!, from: 'local', to: 'offsite', env: {} })).copied, false, 'copying again finds it there');

  const prune = await pruneBackupsCommand(desired, { dryRun: false, env: {}, lockTimeoutMs: 0 });
  t.same(prune.pruned.map((p) => [p.repository, p.id]).sort(), [
    ...ids.slice(0, 4).map((id) => ['local', id]), ...ids.slice(0, 2).map((id) => ['offsite', id]),
  ].sort());
  t.same((await listBackups(local!)).map((e) => e.manifest.id), [ids[5], ids[4]], 'local keeps last=2 (the schedule)');
  t.same((await listBackups(offsite!)).map((e) => e.manifest.id), [ids[5], ids[4], ids[3], ids[2]], 'offsite keeps last=4 (its own)');
});
