/**
 * Retention archives with `repositories:`: written to, listed from and cleaned in the first
 * repository (under its `archives/`), never in storage.path.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Desired } from '../../src/config/types.js';
import { ArchiveWriter, archiveRepository, findArchive, scanArchives } from '../../src/retention/store.js';

t.test('archives go to the first repository, under archives/, and are read back from it', async (t) => {
  const dir = t.testdir();
  const desired = {
    storage: { path: join(dir, 'state') },
    repositories: [
      { name: 'primary', path: 'repositories[0]', kind: 'local', dir: join(dir, 'primary') },
      { name: 'second', path: 'repositories[1]', kind: 'local', dir: join(dir, 'second') },
    ],
  } as Pick<Desired, 'storage' | 'repositories'>;
  const repository = archiveRepository(desired, {});
  t.equal(repository.name, 'primary');
  const writer = await ArchiveWriter.begin(repository, { policy: 'messages-archive', table: 'public.messages', children: [], ageColumn: 'created_at', cutoff: '2026-08-26T03:00:00.000Z', database: { systemIdentifier: '1', database: 'jarvis' } }, { now: new Date(), encryption: null, env: {} });
  t.ok(existsSync(join(dir, 'primary', 'archives', 'messages-archive', writer.header.id, 'archive.json')), 'the header is in primary/archives/');
  t.notOk(existsSync(join(dir, 'state', 'archives')), 'nothing in storage.path');
  t.notOk(existsSync(join(dir, 'second', 'archives')), 'nothing in the second repository');
  const { archives } = await scanArchives(repository);
  t.same(archives.map((a) => a.header.id), [writer.header.id]);
  t.equal((await findArchive(repository, writer.header.id)).dir, join(dir, 'primary', 'archives', 'messages-archive', writer.header.id));
  await t.rejects(findArchive(repository, 'nope'), { code: 'ARCHIVE_INVALID', message: `no archive "nope" in ${join(dir, 'primary', 'archives')}` });
});
