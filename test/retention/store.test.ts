/**
 * Archive storage: a chunk exists once its manifest is published; it counts once it is marked
 * committed; a void chunk disappears whole; a killed writer's leftovers are found and removed
 * without touching published chunks; a damaged manifest or data file is reported.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkCompression, SUFFIX } from '../../src/retention/compression.js';
import { ArchiveWriter, cleanArchiveDebris, findArchiveDebris, scanArchives, summarize, verifyArchive } from '../../src/retention/store.js';

/** The data file's extension of new chunks: zstd where its binding loads, else gzip (compression.ts). */
const EXT = `.jsonl${SUFFIX[chunkCompression()]}`;

const DB = { systemIdentifier: '1', database: 'jarvis' };

async function begin(storage: string, policy = 'messages-archive') {
  return ArchiveWriter.begin(storage, { policy, table: 'public.messages', children: [], ageColumn: 'created_at', cutoff: '2026-08-26T03:00:00.000Z', database: DB }, { now: new Date(), encryption: null, env: {} });
}

const part = (n: number, from = 1) => ({
  table: 'public.messages', columns: ['id', 'content'], lines: Array.from({ length: n }, (_, i) => JSON.stringify([String(from + i), `m${from + i}`])),
  meta: { columns: [{ name: 'id', type: 'bigint' }, { name: 'content', type: 'text' }], primaryKey: ['id'], keyRange: { min: [String(from)], max: [String(from + n - 1)] } },
});

/** A pid that is certainly not running. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
}

t.test('published chunks are pending until marked committed; a void chunk disappears; an archive without chunks is removed', async (t) => {
  const storage = t.testdir();
  const w = await begin(storage);
  const c1 = await w.publishChunk([part(3)], { xid: '100', now: new Date() });
  const c2 = await w.publishChunk([part(2, 4)], { xid: '101', now: new Date() });
  let scan = await scanArchives(storage);
  t.same(scan.archives[0]!.chunks.map((c) => [c.manifest.chunk, c.state]), [[1, 'pending'], [2, 'pending']]);
  await w.markCommitted(c1.chunk);
  await w.voidChunk(c2);
  scan = await scanArchives(storage);
  t.same(scan.archives[0]!.chunks.map((c) => [c.manifest.chunk, c.state]), [[1, 'committed']]);
  t.same((await readdir(w.dir)).sort(), ['archive.json', 'chunk-000001.committed', 'chunk-000001.json', `chunk-000001${EXT}`], 'nothing of the void chunk is left');
  t.match(summarize(scan.archives[0]!), { chunks: 1, pending: 0, rows: 3, policy: 'messages-archive', table: 'public.messages' });
  t.equal(await w.finish(), true);

  const empty = await begin(storage, 'other');
  t.equal(await empty.finish(), false, 'an archive whose batches all rolled back is not kept');
  t.same((await scanArchives(storage)).archives.map((a) => a.header.policy), ['messages-archive']);
});

t.test('what a killed writer leaves is debris, removed without touching its published chunks', async (t) => {
  const storage = t.testdir();
  const w = await begin(storage);
  await w.publishChunk([part(3)], { xid: '100', now: new Date() });
  await writeFile(join(w.dir, '.tmp-chunk-000002-1234'), 'half a chunk');
  await writeFile(join(w.dir, `chunk-000003${EXT}`), 'data without manifest');
  t.same(await findArchiveDebris(storage), [], 'nothing is debris while the writer lives');
  // The writer dies: its header names a pid that is gone.
  const header = JSON.parse(await readFile(join(w.dir, 'archive.json'), 'utf8'));
  header.writer.pid = deadPid();
  await writeFile(join(w.dir, 'archive.json'), JSON.stringify(header));
  const ghost = await begin(storage, 'ghost');
  const ghostHeader = JSON.parse(await readFile(join(ghost.dir, 'archive.json'), 'utf8'));
  ghostHeader.writer.pid = deadPid();
  await writeFile(join(ghost.dir, 'archive.json'), JSON.stringify(ghostHeader));
  const debris = await findArchiveDebris(storage);
  t.same(debris.map((d) => d.slice(storage.length)), [
    `/archives/ghost/${ghost.header.id}`,
    `/archives/messages-archive/${w.header.id}/.tmp-chunk-000002-1234`,
    `/archives/messages-archive/${w.header.id}/chunk-000003${EXT}`,
  ]);
  await cleanArchiveDebris(storage);
  t.same(await findArchiveDebris(storage), []);
  const scan = await scanArchives(storage);
  t.same(scan.archives.map((a) => [a.header.policy, a.chunks.length]), [['messages-archive', 1]], 'the published chunk stays');
});

t.test('a tampered manifest is reported damaged and its chunk not counted; a damaged data file fails verification', async (t) => {
  const storage = t.testdir();
  const w = await begin(storage);
  const c1 = await w.publishChunk([part(3)], { xid: '100', now: new Date() });
  await w.markCommitted(c1.chunk);
  const c2 = await w.publishChunk([part(3, 10)], { xid: '101', now: new Date() });
  await w.markCommitted(c2.chunk);
  t.ok((await verifyArchive((await scanArchives(storage)).archives[0]!, null)).ok, 'whole archive verifies');
  const m2 = JSON.parse(await readFile(join(w.dir, 'chunk-000002.json'), 'utf8'));
  m2.rows = 1;
  await writeFile(join(w.dir, 'chunk-000002.json'), JSON.stringify(m2));
  const data = await readFile(join(w.dir, `chunk-000001${EXT}`));
  data[data.length - 5] ^= 0x01;
  await writeFile(join(w.dir, `chunk-000001${EXT}`), data);
  const entry = (await scanArchives(storage)).archives[0]!;
  t.same(entry.damaged, [{ name: 'chunk-000002.json', problem: 'the manifest does not match its own checksum' }]);
  t.same(entry.chunks.map((c) => c.manifest.chunk), [1]);
  const v = await verifyArchive(entry, null);
  t.equal(v.ok, false);
  t.match(v.problems, [/chunk-000002\.json: the manifest does not match/, /chunk-000001: /]);
});
