/**
 * `erasure:` in the config: its defaults filled in, and the contradictions and unknown keys that
 * are config errors naming the file, the line and the field.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';

const SERVICES = ['version: 1', 'services:', '  postgres: { url: "postgres://u@127.0.0.1:5/db" }'];

async function load(dir: string, erasure: string[], services = SERVICES): Promise<ReturnType<typeof loadConfig>> {
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, [...services, 'erasure:', ...erasure, ''].join('\n'));
  return loadConfig(file);
}

t.test('the defaults fill what the section leaves out; a config without it has none', async (t) => {
  const d = await load(t.testdir(), ['  tables: [memory, sessions]', '  anonymize: { columns: { email: email, display_name: null } }']);
  t.same(d.erasure, {
    users: { table: 'users', key: 'id' }, user: 'anonymize', userMetadata: 'user_id', tables: ['memory', 'sessions'],
    anonymize: { columns: { email: 'email', display_name: 'null' }, marker: 'anonymized_at' },
  });
  const file = join(t.testdir(), 'plain.yaml');
  await writeFile(file, SERVICES.join('\n') + '\n');
  t.equal((await loadConfig(file)).erasure, undefined);
});

t.test('anonymize with user: delete is a contradiction naming the line', async (t) => {
  await t.rejects(load(t.testdir(), ['  user: delete', '  anonymize: { columns: { email: email } }']),
    { code: 'CONFIG_INVALID', details: [/jarvis-db\.yaml:6:.*erasure\.anonymize.*user: anonymize/] });
});

t.test('erasure without services.postgres is refused', async (t) => {
  await t.rejects(load(t.testdir(), ['  user: delete'], ['version: 1', 'services:', '  redis: { url: "redis://127.0.0.1:7/0" }']),
    { code: 'CONFIG_INVALID', details: [/erasure.*services\.postgres is not configured/] });
});

t.test('an unknown key or a hostile table name is a schema error naming it', async (t) => {
  await t.rejects(load(t.testdir(), ['  where: "1=1"']), { code: 'CONFIG_INVALID', details: [/erasure.*where/] });
  await t.rejects(load(t.testdir(), ['  tables: ["memory; DROP TABLE users"]']), { code: 'CONFIG_INVALID', details: [/jarvis-db\.yaml:5:.*erasure\.tables\[0\]/] });
  await t.rejects(load(t.testdir(), ['  user: forget']), { code: 'CONFIG_INVALID', details: [/erasure\.user/] });
});
