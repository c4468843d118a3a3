/**
 * The retention parts of the config: the default policies (policies/*.yaml) say what
 * the product asks for, and the settings retention added (compress.into, anonymize.marker,
 * children for archive only, a salt for the hash strategy) are validated with a clear error.
 */
import t from 'tap';
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { isJarvisError } from '../../src/errors.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const ENV = { JARVIS_PG_URL: 'postgres://jarvis:pw@127.0.0.1:5999/jarvis' };

async function load(dir: string, policies: string[]): Promise<{ ok: true; value: Awaited<ReturnType<typeof loadConfig>> } | { ok: false; errors: string }> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, ['version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'retention:', '  policies:', ...policies.map((p) => `    - ${p}`), ''].join('\n'));
  try {
    return { ok: true, value: await loadConfig(file, ENV) };
  } catch (e) {
    if (!isJarvisError(e)) throw e;
    return { ok: false, errors: [e.message, ...e.details].join('\n') };
  }
}

t.test('the default policies: conversations and messages archived after 90 days, archives kept 2 years; operational data deleted; inactive users anonymized', async (t) => {
  const d = await loadConfig(join(ROOT, 'jarvis-db.yaml'), ENV);
  const by = Object.fromEntries(d.retention.map((p) => [p.name, p]));
  t.match(by['conversations-archive'], { table: 'conversations', action: 'archive', age: { column: 'updated_at', olderThan: '90d' }, archive: { deleteAfter: '2y' }, children: [{ table: 'messages', column: 'conversation_id' }] });
  t.match(by['messages-archive'], { table: 'messages', action: 'archive', age: { column: 'created_at', olderThan: '90d' }, archive: { deleteAfter: '2y' } });
  t.match(by['metrics-delete'], { table: 'metrics', action: 'delete', age: { column: 'recorded_at', olderThan: '30d' } });
  t.match(by['cache-entries-delete'], { table: 'cache_entries', action: 'delete', age: { column: 'created_at', olderThan: '7d' }, maxRows: 1_000_000 });
  t.match(by['sessions-delete'], { table: 'sessions', action: 'delete', age: { column: 'expires_at', olderThan: '30d' } });
  t.match(by['users-anonymize'], { table: 'users', action: 'anonymize', age: { column: 'last_active_at', olderThan: '2y' }, anonymize: { columns: { email: 'email', display_name: 'redact' }, marker: 'anonymized_at' } });
  t.equal(d.retention.length, 6);
});

t.test('anonymize.marker defaults to anonymized_at; `null` means the null strategy written either way; compress needs its rollup table', async (t) => {
  const ok = await load(t.testdir(), [
    '{ name: u, table: users, age: { column: last_active_at, olderThan: 2y }, action: anonymize, anonymize: { columns: { email: email } } }',
    '{ name: m, table: metrics, age: { column: recorded_at, olderThan: 7d }, action: compress, compress: { bucket: 1h, groupBy: [name], value: value, into: metrics_hourly } }',
    '{ name: n, table: users, age: { column: last_active_at, olderThan: 2y }, action: anonymize, anonymize: { columns: { display_name: null, note: "null" } } }',
  ]);
  t.ok(ok.ok, ok.ok ? '' : ok.errors);
  if (ok.ok) {
    t.equal(ok.value.retention[0]!.anonymize!.marker, 'anonymized_at');
    t.same(ok.value.retention[2]!.anonymize!.columns, { display_name: 'null', note: 'null' }, 'a bare YAML null and the string "null" are the same strategy');
    t.same(ok.value.retention[1]!.compress, { bucket: '1h', groupBy: ['name'], value: 'value', into: 'metrics_hourly' });
  }
  const noInto = await load(t.testdir(), ['{ name: m, table: metrics, age: { column: recorded_at, olderThan: 7d }, action: compress, compress: { bucket: 1h, groupBy: [name], value: value } }']);
  t.match(noInto, { ok: false, errors: /retention\.policies\[0\]\.compress: .*into/ });
  const self = await load(t.testdir(), ['{ name: m, table: metrics, age: { column: recorded_at, olderThan: 7d }, action: compress, compress: { bucket: 1h, groupBy: [name], value: value, into: metrics } }']);
  t.match(self, { ok: false, errors: /compress\.into: the rollup table cannot be the policy's own table \(metrics\)/ });
});

t.test('hash needs a salt variable, the marker is not anonymized itself, children belong to archive policies', async (t) => {
  const hash = await load(t.testdir(), ['{ name: u, table: users, age: { column: last_active_at, olderThan: 2y }, action: anonymize, anonymize: { columns: { display_name: hash } } }']);
  t.match(hash, { ok: false, errors: /anonymize\.columns\.display_name: the hash strategy needs anonymize\.saltEnv/ });
  const marker = await load(t.testdir(), ['{ name: u, table: users, age: { column: last_active_at, olderThan: 2y }, action: anonymize, anonymize: { columns: { anonymized_at: redact } } }']);
  t.match(marker, { ok: false, errors: /the marker column anonymized_at cannot also be anonymized/ });
  const children = await load(t.testdir(), ['{ name: c, table: conversations, age: { column: updated_at, olderThan: 90d }, action: delete, children: [ { table: messages, column: conversation_id } ] }']);
  t.match(children, { ok: false, errors: /children applies to archive policies only \(this policy's action is delete\)/ });
});
