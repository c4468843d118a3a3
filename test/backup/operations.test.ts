import t from 'tap';
import { Readable } from 'node:stream';
import { BackupWriter } from '../../src/backup/storage.js';
import { listBackups } from '../../src/backup/catalog.js';
import { pruneBackupsCommand } from '../../src/backup/commands.js';
import { checkRestoreFlags, pruneOne } from '../../src/backup/operations.js';
import { makeDesired } from './fixture.js';

/** `backup prune` through the engine, as the CLI runs it. */
const pruneBackups = (desired: Parameters<typeof pruneBackupsCommand>[0], options: { dryRun: boolean }) => pruneBackupsCommand(desired, { ...options, env: process.env, lockTimeoutMs: 0 });

async function backupAt(storagePath: string, iso: string) {
  const w = await BackupWriter.begin({ repository: storagePath, service: 'postgres', schedule: 'nightly', now: new Date(iso) });
  await w.writeStream('data.bin', Readable.from([Buffer.from(iso)]));
  return (await w.publish({ method: 'test', extra: {} }, new Date(iso))).manifest.id;
}

t.test('prune deletes what the keep rules do not keep; --dry-run deletes nothing', async (t) => {
  const dir = t.testdir();
  const ids = [];
  for (let d = 10; d <= 15; d++) ids.push(await backupAt(dir, `2026-11-${d}T03:00:00Z`));
  const desired = makeDesired('postgres://x@127.0.0.1/x', dir, { keep: { last: 2 } });
  const dry = await pruneBackups(desired, { dryRun: true });
  t.same(dry.pruned.map((c) => c.id).sort(), ids.slice(0, 4).sort());
  t.equal((await listBackups(dir)).length, 6, 'dry run deleted nothing');
  await pruneBackups(desired, { dryRun: false });
  t.same((await listBackups(dir)).map((e) => e.manifest.id), [ids[5], ids[4]]);
});

t.test('pruning the newest or the last valid backup of a schedule needs allowPruneLast', async (t) => {
  const dir = t.testdir();
  const old = await backupAt(dir, '2026-11-10T03:00:00Z');
  const newest = await backupAt(dir, '2026-11-11T03:00:00Z');
  const desired = makeDesired('postgres://x@127.0.0.1/x', dir);
  await t.rejects(pruneOne(desired, newest, { allowLast: false, allowNewest: false }), { code: 'CONFIRMATION_REQUIRED', message: /newest valid backup/ });
  await pruneOne(desired, old, { allowLast: false, allowNewest: false });
  await t.rejects(pruneOne(desired, newest, { allowLast: false, allowNewest: false }), { code: 'CONFIRMATION_REQUIRED', message: /last valid backup/ });
  await pruneOne(desired, newest, { allowLast: true, allowNewest: true });
  t.same(await listBackups(dir), []);
});

t.test('backups of a schedule that left the config are never pruned by rules', async (t) => {
  const dir = t.testdir();
  for (let d = 10; d <= 13; d++) await backupAt(dir, `2026-11-${d}T03:00:00Z`);
  const desired = makeDesired('postgres://x@127.0.0.1/x', dir, { name: 'renamed', keep: { last: 1 } });
  const r = await pruneBackups(desired, { dryRun: false });
  t.same(r.pruned, []);
  t.equal((await listBackups(dir)).length, 4);
});

t.test('restore flags that do not apply to the backup\'s service are refused, never ignored', async (t) => {
  t.throws(() => checkRestoreFlags('postgres', { flush: true }), { code: 'USAGE', message: '--flush is for redis backups; this is a postgres backup' });
  t.throws(() => checkRestoreFlags('postgres', { collection: 'memories' }), { message: /--collection is for chroma backups/ });
  t.throws(() => checkRestoreFlags('redis', { target: 'jarvis_copy' }), { message: /--target-db is for postgres backups/ });
  t.throws(() => checkRestoreFlags('chroma', { flush: true }), { message: /--flush is for redis backups/ });
  t.doesNotThrow(() => checkRestoreFlags('postgres', { target: 'jarvis_copy', force: true, flush: false }));
  t.doesNotThrow(() => checkRestoreFlags('chroma', { collection: 'm', as: 'm2', targetDir: '/tmp/x' }));
  t.doesNotThrow(() => checkRestoreFlags('redis', { flush: true }));
});
