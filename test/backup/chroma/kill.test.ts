/**
 * docs/architecture.md §4 rule 1 for Chroma: kill -9 at many moments of a logical export (first page
 * requested, a collection file written, the manifest half-way...). `listBackups` never shows a
 * partial backup, every listed one verifies, and the next run removes the debris.
 * The child runs the compiled code (build first: npx tsc -p tsconfig.json).
 */
import t from 'tap';
import { join } from 'node:path';
import { listBackups, verifyChecksums } from '../../../src/backup/catalog.js';
import { createBackup } from '../../../src/backup/operations.js';
import { findDebris } from '../../../src/backup/storage.js';
import { backupKiller, describeMoment, hiddenDirs, moments } from '../../helpers/kill.js';
import { chromaSandbox, client, makeChromaDesired, vectors } from './fixture.js';

// dir-renamed first: the last kill must leave debris for the final run to clean
const PAUSE_POINTS = ['dir-renamed', 'started', 'file-written', 'collection-written', 'before-manifest', 'manifest-written', 'manifest-renamed'];
const DELAYS_MS = [150, 400, 700, 1000, 1400];

t.test('kill -9 at every moment of a Chroma export never leaves a listed partial backup, and the next run cleans up', async (t) => {
  const { chroma } = await chromaSandbox(t);
  const c = client(chroma.url);
  for (const [i, name] of ['alpha', 'beta', 'gamma'].entries()) {
    const col = await c.createCollection({ name, embeddingFunction: null });
    const embeddings = vectors(3000, i + 1);
    for (let k = 0; k < embeddings.length; k += 1000) {
      const part = embeddings.slice(k, k + 1000);
      await col.add({ ids: part.map((_, j) => `${name}-${k + j}`), embeddings: part, documents: part.map((_, j) => `document ${k + j} ✓`) });
    }
  }
  const base = t.testdir();
  const storage = join(base, 'storage');
  const desired = makeChromaDesired(chroma.url, storage);
  const kill = await backupKiller(base);
  let killedMidway = 0;
  for (const m of [...moments([], DELAYS_MS), ...moments(PAUSE_POINTS, [])]) {
    const label = describeMoment(m);
    const before = (await listBackups(storage)).length;
    const outcome = await kill(desired, m);
    if (!outcome.completed) killedMidway++;
    const listed = await listBackups(storage);
    if (m.pause) t.ok(outcome.paused, `${label}: the child reached it`);
    const expected = before + (m.pause === 'dir-renamed' || outcome.completed ? 1 : 0);
    t.equal(listed.length, expected, `${label}: only complete backups are listed`);
    for (const e of listed) t.ok((await verifyChecksums(e)).ok, `${label}: listed backup ${e.manifest.id} is whole`);
  }
  t.ok(killedMidway >= 8, `${killedMidway} runs were killed before they finished`);
  t.ok((await hiddenDirs(storage, 'chroma', 'daily')).length > 0, 'the kills left debris behind');
  const next = await createBackup(desired, desired.backups[0]!, process.env);
  t.ok((await verifyChecksums(next)).ok, 'the next run succeeds');
  t.same(await findDebris(storage), [], 'no debris after the next run');
  t.same(await hiddenDirs(storage, 'chroma', 'daily'), [], 'no hidden work dirs left');
});
