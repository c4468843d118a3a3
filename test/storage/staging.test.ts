/**
 * The registry of staged paths: a backup's work dir and an archive's chunk being written are
 * registered while they are staged and gone from it once published or aborted, and
 * removeStagedSync (the daemon's forced exit) removes what is still staged.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { BackupWriter } from '../../src/backup/storage.js';
import { ArchiveWriter } from '../../src/retention/store.js';
import { registerStaged, removeStagedSync, stagedPaths } from '../../src/storage/staging.js';

t.test('a backup\'s work dir is staged from begin until it is published or aborted', async (t) => {
  const storagePath = t.testdir();
  const published = await BackupWriter.begin({ repository: storagePath, service: 'postgres', schedule: 'nightly', now: new Date() });
  t.same(stagedPaths(), [published.workDir]);
  await published.writeStream('a.bin', Readable.from([Buffer.from('x')]));
  await published.publish({ method: 'test', extra: {} });
  t.same(stagedPaths(), [], 'published: no longer staged');
  const aborted = await BackupWriter.begin({ repository: storagePath, service: 'postgres', schedule: 'nightly', now: new Date() });
  t.same(stagedPaths(), [aborted.workDir]);
  await aborted.abort();
  t.same(stagedPaths(), []);
});

t.test('removeStagedSync removes a backup that is being written, and an archive chunk registered as staged', async (t) => {
  const storagePath = t.testdir();
  const w = await BackupWriter.begin({ repository: storagePath, service: 'redis', schedule: 'hourly', now: new Date() });
  await w.writeStream('dump.rdb', Readable.from([Buffer.alloc(1000, 1)]));
  const archive = await ArchiveWriter.begin(storagePath, { policy: 'messages-archive', table: 'public.messages', children: [], ageColumn: 'created_at', cutoff: '2026-08-26T03:00:00.000Z', database: { systemIdentifier: '1', database: 'jarvis' } }, { now: new Date(), encryption: null, env: {} });
  t.same(stagedPaths(), [w.workDir], 'a created archive is published at once: only the backup is staged');
  const chunk = `${archive.dir}/.tmp-chunk-000001-${process.pid}`;
  registerStaged(chunk);
  const { removed, failed } = removeStagedSync();
  t.same(removed.sort(), [w.workDir, chunk].sort());
  t.same(failed, []);
  t.notOk(existsSync(w.workDir), 'the work dir is gone');
  t.ok(existsSync(archive.dir), 'the published archive stays');
  t.same(stagedPaths(), []);
});

t.test('an archive chunk is staged while it is written and not after it is published', async (t) => {
  const storagePath = t.testdir();
  const archive = await ArchiveWriter.begin(storagePath, { policy: 'p', table: 'public.messages', children: [], ageColumn: 'created_at', cutoff: '2026-08-26T03:00:00.000Z', database: { systemIdentifier: '1', database: 'jarvis' } }, { now: new Date(), encryption: null, env: {} });
  const lines = [JSON.stringify(['1', 'm1'])];
  const pending = archive.publishChunk([{ table: 'public.messages', columns: ['id', 'content'], lines, meta: { columns: [{ name: 'id', type: 'bigint' }, { name: 'content', type: 'text' }], primaryKey: ['id'], keyRange: { min: ['1'], max: ['1'] } } }], { xid: '100', now: new Date() });
  t.match(stagedPaths(), [/[/]\.tmp-chunk-\d+-\d+$/], 'staged while written');
  await pending;
  t.same(stagedPaths(), []);
});
