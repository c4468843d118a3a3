/** `jarvis-db backup verify --all` through the compiled CLI, on a catalog made without a server. */
import t from 'tap';
import { join } from 'node:path';
import { EncryptionSession, KeyRing } from '../../src/storage/crypto.js';
import { cli, writeConfig } from '../engine/fixtures/cli.js';
import { publishBackup } from './fixtures/catalog.js';

t.test('verify --all goes on past a backup it cannot check (no key) and reports every backup', async (t) => {
  const dir = t.testdir();
  const config = await writeConfig(dir, [
    'version: 1',
    'services: { postgres: { url: "postgres://nobody@127.0.0.1:1/none" }, redis: { url: "redis://127.0.0.1:1/0" } }',
    'storage: { path: ./backups, encryption: { passphraseEnv: JARVIS_TEST_BACKUP_KEY } }',
    'backups:',
    '  - { name: pg-daily, service: postgres, cron: "0 3 * * *", keep: { last: 2 } }',
    '  - { name: redis-daily, service: redis, cron: "0 4 * * *", keep: { last: 2 } }',
  ]);
  const storage = join(dir, 'backups');
  const sealed = new EncryptionSession(new KeyRing('the passphrase of these backups', 'test'));
  const day = Date.UTC(2026, 10, 20, 3);
  const redis = [await publishBackup(storage, 'redis', 'redis-daily', new Date(day), sealed), await publishBackup(storage, 'redis', 'redis-daily', new Date(day + 86_400_000), sealed)];
  const pgId = await publishBackup(storage, 'postgres', 'pg-daily', new Date(day));

  const r = cli(['backup', 'verify', '--all'], { JARVIS_DB_CONFIG: config, JARVIS_TEST_BACKUP_KEY: undefined });
  t.equal(r.code, 1, 'exit 1: some backups could not be verified');
  for (const id of redis) t.match(r.stdout, new RegExp(`^FAILED redis/redis-daily ${id}: cannot verify: encryption is configured but \\$JARVIS_TEST_BACKUP_KEY is not set$`, 'm'));
  t.match(r.stdout, new RegExp(`^ok postgres/pg-daily ${pgId}: 1 files, \\d+ bytes: checksums match$`, 'm'), 'the backup that can be checked is checked');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');

  const json = cli(['backup', 'verify', '--all', '--json'], { JARVIS_DB_CONFIG: config, JARVIS_TEST_BACKUP_KEY: undefined });
  const { results } = JSON.parse(json.stdout) as { results: { id: string; ok: boolean }[] };
  t.same(results.map((x) => [x.id, x.ok]).sort(), [[pgId, true], [redis[0], false], [redis[1], false]].sort());
});
