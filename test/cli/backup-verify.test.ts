/** `jarvis-db backup verify --all` through the compiled CLI, on a catalog made without a server. */
import t from 'tap';
import { cli } from '../engine/fixtures/cli.js';
import { catalogWithSealedBackups, publishBackup, SEALED_KEY_ENV } from './fixtures/catalog.js';

t.test('verify --all goes on past a backup it cannot check (no key) and reports every backup', async (t) => {
  const { config, storage, sealedIds: redis } = await catalogWithSealedBackups(t.testdir());
  const pgId = await publishBackup(storage, 'postgres', 'pg-daily', new Date(Date.UTC(2026, 10, 20, 3)));
  const env = { JARVIS_DB_CONFIG: config, [SEALED_KEY_ENV]: undefined };

  const r = cli(['backup', 'verify', '--all'], env);
  t.equal(r.code, 1, 'exit 1: some backups could not be verified');
  for (const id of redis) t.match(r.stdout, new RegExp(`^FAILED redis/redis-daily ${id}: cannot verify: encryption is configured but \\$${SEALED_KEY_ENV} is not set$`, 'm'));
  t.match(r.stdout, new RegExp(`^ok postgres/pg-daily ${pgId}: 1 file, [\\d.]+ (B|kB|MB): checksums match$`, 'm'), 'the backup that can be checked is checked');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');

  const json = cli(['backup', 'verify', '--all', '--json'], env);
  const { results } = JSON.parse(json.stdout) as { results: { id: string; ok: boolean }[] };
  t.same(results.map((x) => [x.id, x.ok]).sort(), [[pgId, true], [redis[0], false], [redis[1], false]].sort());
});
