/**
 * docs/architecture.md §4 rule 1: kill -9 at many moments of a real backup (pg_dump running, files being
 * hashed, manifest half-way...). `listBackups` never shows a partial backup, and the next run
 * removes the debris. The child runs the compiled code (build first: npm run build).
 */
import t from 'tap';
import { join } from 'node:path';
import { listBackups, verifyChecksums } from '../../src/backup/catalog.js';
import { createBackup } from '../../src/backup/operations.js';
import { findDebris } from '../../src/backup/storage.js';
import { backupKiller, describeMoment, hiddenDirs, moments } from '../helpers/kill.js';
import { freshDatabase, makeDesired, sql } from './fixture.js';

const PAUSE_POINTS = ['started', 'dump-running', 'dump-finished', 'file-written', 'before-manifest', 'manifest-written', 'manifest-renamed', 'dir-renamed'];
const DELAYS_MS = [30, 120, 250, 400, 600, 900];

t.test('kill -9 at every moment of a backup never leaves a listed partial backup, and the next run cleans up', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE a (id int, v text); INSERT INTO a SELECT i, md5(i::text) || repeat('x', 50) FROM generate_series(1, 300000) i;
                     CREATE TABLE b (id int, v text); INSERT INTO b SELECT i, md5(i::text) FROM generate_series(1, 200000) i;
                     CREATE TABLE c (id int); INSERT INTO c SELECT generate_series(1, 10);`);
  const base = t.testdir();
  const storage = join(base, 'storage');
  const desired = makeDesired(db.url, storage);
  const kill = await backupKiller(base);
  const debris = () => hiddenDirs(storage, 'postgres', 'nightly');
  for (const m of moments(PAUSE_POINTS, DELAYS_MS)) {
    const label = describeMoment(m);
    const before = (await listBackups(storage)).length;
    const outcome = await kill(desired, m);
    const listed = await listBackups(storage);
    if (m.pause) {
      t.ok(outcome.paused, `${label}: the child reached it`);
      t.equal(listed.length, before + (m.pause === 'dir-renamed' ? 1 : 0), `${label}: only complete backups listed`);
      if (m.pause !== 'dir-renamed') t.ok((await debris()).length > 0, `${label}: the kill left debris (hidden, not listed)`);
    } else {
      t.equal(listed.length, before + (outcome.completed ? 1 : 0), `${label}: only complete backups listed`);
    }
    for (const e of listed) t.ok((await verifyChecksums(e)).ok, `${label}: listed backup ${e.manifest.id} is whole`);
  }
  // Each run cleans the debris of the kills before it; leave fresh debris for the final run.
  await kill(desired, { pause: 'dump-running' });
  t.ok((await debris()).length > 0, 'the last kill left debris behind');
  const next = await createBackup(desired, desired.backups[0]!, process.env);
  t.ok((await verifyChecksums(next)).ok, 'the next run succeeds');
  t.same(await findDebris(storage), [], 'no debris after the next run');
  t.same(await debris(), [], 'no hidden work dirs left');
});
