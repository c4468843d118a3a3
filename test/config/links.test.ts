/**
 * `links:` between the stores: what a well-formed link becomes, and the hostile definitions
 * that are config errors naming the file, the line and the field.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';

const SERVICES = ['version: 1', 'services:', '  postgres: { url: "postgres://u@127.0.0.1:5/db" }', '  redis: { url: "redis://127.0.0.1:7/0" }', '  chroma: { url: "http://127.0.0.1:8" }'];

async function load(dir: string, links: string[], services = SERVICES): Promise<ReturnType<typeof loadConfig>> {
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, [...services, 'links:', ...links, ''].join('\n'));
  return loadConfig(file);
}

const VECTORS = '  - { name: memory-vectors, postgres: { table: memory, key: id, user: user_id }, chroma: { collection: memories, metadata: memory_id } }';
const SESSIONS = '  - { name: user-sessions, postgres: { table: sessions, key: id, user: user_id, until: expires_at }, redis: { pattern: "session:{key}" } }';

t.test('a link to chroma and a link to redis become typed sides that know their line', async (t) => {
  const d = await load(t.testdir(), [VECTORS, SESSIONS]);
  t.same(d.links, [
    { name: 'memory-vectors', postgres: { table: 'memory', key: 'id', user: 'user_id' }, side: { store: 'chroma', collection: 'memories', metadata: 'memory_id' }, source: { file: 'jarvis-db.yaml', path: 'links[0]', line: 7 } },
    { name: 'user-sessions', postgres: { table: 'sessions', key: 'id', user: 'user_id', until: 'expires_at' }, side: { store: 'redis', pattern: 'session:{key}' }, source: { file: 'jarvis-db.yaml', path: 'links[1]', line: 8 } },
  ]);
});

t.test('a redis pattern without {key} is an error naming the file, the line and the field', async (t) => {
  await t.rejects(load(t.testdir(), ['  - { name: s, postgres: { table: sessions, key: id }, redis: { pattern: "session:*" } }']),
    { code: 'CONFIG_INVALID', details: [/jarvis-db\.yaml:7:.*links\[0\]\.redis\.pattern.*\{key\} exactly once/] });
});

t.test('a redis pattern with glob characters beside {key} is refused', async (t) => {
  await t.rejects(load(t.testdir(), ['  - { name: s, postgres: { table: sessions, key: id }, redis: { pattern: "se*:{key}" } }']),
    { code: 'CONFIG_INVALID', details: [/links\[0\]\.redis\.pattern.*glob/] });
});

t.test('a link needs exactly one other side', async (t) => {
  await t.rejects(load(t.testdir(), ['  - { name: s, postgres: { table: sessions, key: id } }']), { code: 'CONFIG_INVALID', details: [/links\[0\].*chroma or to redis/] });
  await t.rejects(load(t.testdir(), ['  - { name: s, postgres: { table: t, key: id }, redis: { pattern: "k:{key}" }, chroma: { collection: c, metadata: m } }']),
    { code: 'CONFIG_INVALID', details: [/links\[0\]\.redis.*one other side/] });
});

t.test('a link to a store that is not configured names the missing service', async (t) => {
  await t.rejects(load(t.testdir(), [VECTORS], SERVICES.slice(0, 4)), { code: 'CONFIG_INVALID', details: [/links\[0\]\.chroma.*services\.chroma is not configured/] });
});

t.test('two links of one name are refused, naming the first', async (t) => {
  await t.rejects(load(t.testdir(), [VECTORS, VECTORS]), { code: 'CONFIG_INVALID', details: [/links\[1\]\.name.*already defined at links\[0\] \(line 7\)/] });
});

t.test('an unknown key in a link is a schema error naming it', async (t) => {
  await t.rejects(load(t.testdir(), ['  - { name: s, postgres: { table: t, key: id, sql: "1=1" }, redis: { pattern: "k:{key}" } }']), { code: 'CONFIG_INVALID', details: [/links\[0\]\.postgres.*sql/] });
});
