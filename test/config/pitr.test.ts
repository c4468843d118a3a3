/**
 * services.postgres.pitr: defaults (slot jarvis_db, rpo 1m), validation of the slot name, and
 * that enabling it without a physical base backup schedule is an error naming the key.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';

async function load(dir: string, pitr: string, backups: string[] = []): Promise<ReturnType<typeof loadConfig>> {
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, ['version: 1', 'services:', '  postgres:', '    url: "postgres://u@127.0.0.1:5/db"', `    pitr: ${pitr}`, ...(backups.length ? ['backups:', ...backups] : []), ''].join('\n'));
  return loadConfig(file);
}

const PHYSICAL = '  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", keep: { last: 2 } }';

t.test('pitr defaults: slot jarvis_db, rpo 1m', async (t) => {
  const d = await load(t.testdir(), '{ enabled: true }', [PHYSICAL]);
  t.same(d.services.postgres!.pitr, { enabled: true, slot: 'jarvis_db', rpoSeconds: 60 });
  const e = await load(t.testdir(), '{ enabled: true, slot: main_archive, rpo: 30s }', [PHYSICAL]);
  t.same(e.services.postgres!.pitr, { enabled: true, slot: 'main_archive', rpoSeconds: 30 });
});

t.test('pitr enabled without a physical base backup schedule is an error naming the key', async (t) => {
  await t.rejects(load(t.testdir(), '{ enabled: true }'), { code: 'CONFIG_INVALID', details: [/services\.postgres\.pitr\.enabled.*method: physical/] });
});

t.test('a slot name PostgreSQL would refuse is a config error', async (t) => {
  await t.rejects(load(t.testdir(), '{ enabled: true, slot: "Bad-Slot" }', [PHYSICAL]), { code: 'CONFIG_INVALID', details: [/slot/] });
});
