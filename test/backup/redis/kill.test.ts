/**
 * docs/architecture.md §4 rule 1 for Redis backups: kill -9 at every moment of a backup (SYNC streaming,
 * DUMP batches, file written, manifest half-way...) never leaves a listed partial backup, and
 * the next run removes the debris. The child runs the compiled code (build first: npx tsc -p tsconfig.json).
 */
import t from 'tap';
import { join } from 'node:path';
import { listBackups, verifyChecksums } from '../../../src/backup/catalog.js';
import { createBackup, verifyBackup } from '../../../src/backup/operations.js';
import { findDebris } from '../../../src/backup/storage.js';
import { backupKiller, describeMoment, hiddenDirs, moments } from '../../helpers/kill.js';
import { redisDesired, redisServer, withClient } from './fixture.js';

const PAUSE_POINTS = ['started', 'dump-running', 'file-written', 'before-manifest', 'manifest-written', 'manifest-renamed', 'dir-renamed'];
const DELAYS_MS = [150, 500, 900];

t.test('kill -9 at every moment of a Redis backup (rdb and logical) never leaves a listed partial backup, and the next run cleans up', async (t) => {
  const server = await redisServer(t);
  await withClient(server.url, async (c) => {
    for (let i = 0; i < 30_000; i += 1000) {
      const p = c.pipeline();
      for (let j = i; j < i + 1000; j++) p.set(`key:${j}`, `value-${j}-${'x'.repeat(80)}`);
      await p.exec();
    }
    // 40 µs per key: an RDB transfer of about 1.2 s, so that timed kills land in the middle of it.
    await c.config('SET', 'rdb-key-save-delay', '40');
  });
  const base = t.testdir();
  const storage = join(base, 'storage');
  const kill = await backupKiller(base);
  for (const method of ['rdb', 'logical']) {
    const desired = redisDesired(server.url, storage, { method, name: method, compression: 1 });
    for (const m of moments(PAUSE_POINTS, DELAYS_MS)) {
      const label = `${method}, ${describeMoment(m)}`;
      const before = (await listBackups(storage)).filter((e) => e.manifest.schedule === method).length;
      await kill(desired, m);
      const listed = (await listBackups(storage)).filter((e) => e.manifest.schedule === method);
      if (m.pause) {
        // At dir-renamed the backup is complete (renamed into view): it is listed. Before, nothing new is.
        t.equal(listed.length, before + (m.pause === 'dir-renamed' ? 1 : 0), `${label}: ${m.pause === 'dir-renamed' ? 'the complete backup is listed' : 'nothing new listed'}`);
        if (m.pause !== 'dir-renamed') t.ok((await hiddenDirs(storage, 'redis', method)).length > 0, `${label}: the kill left debris (hidden, not listed)`);
      }
      for (const e of listed) {
        const v = await verifyBackup(desired, e, { restoreTest: false, env: process.env });
        t.ok(v.ok, `${label}: listed backup ${e.manifest.id} is whole (${v.message})`);
      }
    }
    await kill(desired, { pause: 'dump-running' });
    t.ok((await hiddenDirs(storage, 'redis', method)).length > 0, `${method}: the last kill left debris behind`);
    const next = await createBackup(desired, desired.backups[0]!, process.env);
    t.ok((await verifyChecksums(next)).ok, `${method}: the next run succeeds`);
    t.same(next.manifest.extra.databases, { 0: { keys: 30_000, expires: 0 } }, `${method}: and holds every key`);
    t.same(await hiddenDirs(storage, 'redis', method), [], `${method}: no hidden work dirs left`);
  }
  t.same(await findDebris(storage), [], 'no debris after the next runs');
});
