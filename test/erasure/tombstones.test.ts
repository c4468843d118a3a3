/**
 * Tombstones through the sealed-store contract on local repositories (no server): recorded in
 * every repository, read back oldest first once per id, a damaged one named, and a repository
 * that cannot be written stopping the erasure before anything is touched.
 */
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { recordTombstone, scanTombstones, tombstoneId, type Tombstone } from '../../src/erasure/tombstones.js';
import { openRepository } from '../../src/storage/repositories.js';

const tombstone = (user: string, at: string): Tombstone => ({
  formatVersion: 1, id: tombstoneId(user, new Date(at)), user, at, links: ['user-sessions'],
  postgres: { table: 'users', key: 'id', tables: ['public.sessions'], user: 'anonymize' }, userMetadata: 'user_id',
  sides: [{ link: 'user-sessions', store: 'redis', database: 0, keys: ['session:a'] }],
});
const local = (name: string, dir: string) => openRepository({ name, kind: 'local', dir, path: `repositories[${name}]` });

t.test('a tombstone is recorded in every repository and read back once, oldest first', async (t) => {
  const dir = t.testdir();
  const repos = [local('local', join(dir, 'a')), local('offsite', join(dir, 'b'))];
  const later = tombstone('7', '2026-12-07T15:00:00.000Z');
  const earlier = tombstone('8', '2026-12-01T15:00:00.000Z');
  t.same(await recordTombstone(repos, later), ['local', 'offsite']);
  await recordTombstone(repos, earlier);
  const scan = await scanTombstones(repos);
  t.same(scan.tombstones.map((x) => x.user), ['8', '7']);
  t.same(scan.invalid, []);
  t.same((await scanTombstones(repos[1]!)).tombstones, [earlier, later], 'each repository holds them all');
});

t.test('a damaged tombstone is named with its repository', async (t) => {
  const dir = t.testdir();
  await mkdir(join(dir, 'tombstones', 'x1'), { recursive: true });
  await writeFile(join(dir, 'tombstones', 'x1', 'tombstone.json'), '{"formatVersion": 2}');
  t.match((await scanTombstones(local('local', dir))).invalid, [{ id: 'x1', repository: 'local', problem: /format 2, expected 1/ }]);
});

t.test('a repository that cannot be written stops the erasure, naming it', async (t) => {
  const dir = t.testdir();
  await writeFile(join(dir, 'file'), 'not a directory');
  const repos = [local('local', join(dir, 'ok')), local('offsite', join(dir, 'file'))];
  await t.rejects(recordTombstone(repos, tombstone('9', '2026-12-07T15:00:00.000Z')), {
    code: 'STORAGE_FAILED', message: /^could not record the tombstone of user "9" in repository offsite: .*; nothing was erased$/,
  });
});
