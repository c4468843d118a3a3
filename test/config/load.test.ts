import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const ENV = { JARVIS_PG_URL: 'postgres://jarvis:s3cret-pw@127.0.0.1:5999/jarvis' };

async function write(dir: string, files: Record<string, string>): Promise<string> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return join(dir, Object.keys(files)[0]!);
}

const MINIMAL = [
  'version: 1',
  'services:',
  '  postgres: { url: "${JARVIS_PG_URL}" }',
  'backups:',
  '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }',
  '',
].join('\n');

t.test('the root jarvis-db.yaml loads: the JARVIS schedules, the default policies and the thresholds', async (t) => {
  const d = await loadConfig(join(ROOT, 'jarvis-db.yaml'), ENV);
  t.equal(d.project, 'jarvis');
  t.same(d.backups.map((b) => [b.name, b.service, b.cron]), [
    ['postgres-nightly', 'postgres', '0 3 * * *'],
    ['redis-hourly', 'redis', '0 * * * *'],
    ['chroma-daily', 'chroma', '30 3 * * *'],
  ]);
  t.equal(d.services.postgres?.url, ENV.JARVIS_PG_URL);
  t.equal(d.services.redis?.url, 'redis://127.0.0.1:6379/0', 'the default of ${JARVIS_REDIS_URL:-...}');
  t.equal(d.services.chroma?.url, 'http://127.0.0.1:8000');
  t.equal(d.storage.path, join(ROOT, 'backups'));
  t.equal(d.schema?.migrations, join(ROOT, 'migrations'));
  t.same(d.health.thresholds['postgres.cache_hit_ratio'], { warning: 0.98, critical: 0.9, lowerIsWorse: true });
  t.same(d.health.thresholds['postgres.connections_used_ratio'], { warning: 0.8, critical: 0.95, lowerIsWorse: false });
  const byName = new Map(d.retention.map((p) => [p.name, p]));
  t.same([...byName.keys()].sort(), ['cache-entries-delete', 'conversations-archive', 'messages-archive', 'metrics-delete', 'sessions-delete', 'users-anonymize']);
  t.match(byName.get('conversations-archive'), { table: 'conversations', action: 'archive', age: { column: 'updated_at', olderThan: '90d' }, archive: { deleteAfter: '2y' } });
  t.match(byName.get('messages-archive'), { table: 'messages', action: 'archive', age: { olderThan: '90d' }, archive: { deleteAfter: '2y' } });
  t.match(byName.get('metrics-delete'), { table: 'metrics', action: 'delete', age: { column: 'recorded_at', olderThan: '30d' } });
  t.match(byName.get('cache-entries-delete'), { table: 'cache_entries', action: 'delete', age: { olderThan: '7d' } });
  t.type(byName.get('cache-entries-delete')?.maxRows, 'number', 'cache entries have a cap on rows');
  t.match(byName.get('sessions-delete'), { table: 'sessions', action: 'delete', age: { column: 'expires_at', olderThan: '30d' } });
  t.match(byName.get('users-anonymize'), { table: 'users', action: 'anonymize', age: { column: 'last_active_at', olderThan: '2y' },
    anonymize: { columns: { email: 'email', display_name: 'redact' } } });
  t.match(byName.get('metrics-delete')?.source, { file: 'policies/operational.yaml', path: 'policies[0]' });
  t.match(d.configHash, /^[0-9a-f]{64}$/);
});

t.test('every jarvis-db config in examples/ validates', async (t) => {
  // A config's first line points at the schema; other YAML there (prometheus-rules.yml) is not one.
  const files = readdirSync(join(ROOT, 'examples')).filter((f) => /\.ya?ml$/.test(f) && /jarvis-db\.schema\.json/.test(readFileSync(join(ROOT, 'examples', f), 'utf8').split('\n')[0]!));
  t.ok(files.includes('minimal.yaml') && files.includes('full.yaml'));
  for (const file of files) {
    const d = await loadConfig(join(ROOT, 'examples', file), ENV);
    t.ok(d.backups.length > 0 || d.retention.length > 0, `${file} loads`);
  }
});

t.test('examples/partitioned-metrics.yaml declares its daily partitions and archives whole ones', async (t) => {
  const d = await loadConfig(join(ROOT, 'examples', 'partitioned-metrics.yaml'), ENV);
  t.match(d.partitions, [{ table: 'events', column: 'recorded_at', interval: '1d', premake: 7 }]);
  t.match(d.retention, [{ name: 'events-archive', table: 'events', action: 'archive', age: { column: 'recorded_at', olderThan: '30d' } }]);
});

t.test('examples/full.yaml sets every top-level and service option', async (t) => {
  const d = await loadConfig(join(ROOT, 'examples', 'full.yaml'), ENV);
  t.ok(d.storage.encryption && d.schema && d.health.alerts && d.services.redis?.databases && d.services.chroma?.collections && d.partitions?.length);
  t.same(new Set(d.retention.map((p) => p.action)), new Set(['delete', 'archive', 'anonymize', 'compress']));
  t.equal(d.services.chroma?.path, join(ROOT, 'examples', 'chroma-data'), 'relative to the config file');
  t.same(d.repositories?.map((r) => [r.name, r.kind]), [['local', 'local'], ['offsite', 's3']]);
});

t.test('defaults are filled in', async (t) => {
  const file = await write(t.testdir(), { 'jarvis-db.yaml': MINIMAL + 'schema: {}\n' });
  const d = await loadConfig(file, ENV);
  t.equal(d.project, 'jarvis');
  t.match(d.backups[0], { timezone: 'UTC', verify: 'checksum', format: 'directory', jobs: 2, compression: 1, path: 'backups[0]' });
  t.same(d.schema, { migrations: join(file, '..', 'migrations'), target: 'latest', allowDown: false, backupBefore: true });
  t.equal(d.storage.path, join(file, '..', 'backups'));
  t.equal(d.health.intervalSeconds, 60);
  t.equal(d.health.historySeconds, 30 * 86400);
  t.same(d.health.thresholds, {});
  t.same(d.retention, []);
});

t.test('schedules of other services get their default method, policies their batch size', async (t) => {
  const file = await write(t.testdir(), { 'jarvis-db.yaml': [
    'version: 1',
    'services: { redis: { url: "redis://127.0.0.1:6400/1" }, chroma: { url: "http://127.0.0.1:8001" }, postgres: { url: "postgres://h/d" } }',
    'backups:',
    '  - { name: r, service: redis, cron: "@hourly", keep: { hourly: 24 } }',
    '  - { name: c, service: chroma, cron: "@daily", keep: { within: 7d } }',
    'retention:',
    '  policies: [ { name: p, table: metrics, age: { column: recorded_at, olderThan: 30d }, action: delete } ]',
    '',
  ].join('\n') });
  const d = await loadConfig(file, {});
  t.equal(d.backups[0]?.method, 'rdb');
  t.equal(d.backups[1]?.method, 'logical');
  t.equal(d.backups[0]?.format, undefined, 'format is for postgres only');
  t.match(d.retention[0], { batchSize: 5000, enabled: true, source: { file: 'jarvis-db.yaml', path: 'retention.policies[0]' } });
});

t.test('relative paths resolve against the config file, not the working directory', async (t) => {
  const dir = t.testdir();
  const file = await write(dir, { 'sub/dir/jarvis-db.yaml': MINIMAL + 'storage: { path: ../store }\n' });
  const d = await loadConfig(file, ENV);
  t.equal(d.storage.path, join(dir, 'sub', 'store'));
  t.equal(d.configFile, file);
});

t.test('inline and included policies are merged, inline first, each with its source', async (t) => {
  const dir = t.testdir();
  const file = await write(dir, {
    'jarvis-db.yaml': MINIMAL + [
      'retention:',
      '  include: [./policies/*.yaml, ./extra.yml]',
      '  policies:',
      '    - { name: inline, table: metrics, age: { column: recorded_at, olderThan: 30d }, action: delete }',
      '',
    ].join('\n'),
    'policies/b.yaml': 'policies:\n  - { name: b, table: sessions, age: { column: expires_at, olderThan: 30d }, action: delete }\n',
    'policies/a.yaml': 'policies:\n  - { name: a, table: cache_entries, age: { column: created_at, olderThan: 7d }, action: delete, maxRows: 10 }\n',
    'policies/.hidden.yaml': 'policies: [oops]\n',
    'policies/notes.txt': 'not yaml: [\n',
    'extra.yml': 'policies: []\n',
  });
  const d = await loadConfig(file, ENV);
  t.same(d.retention.map((p) => [p.name, p.source.file]), [['inline', 'jarvis-db.yaml'], ['a', 'policies/a.yaml'], ['b', 'policies/b.yaml']]);
});

t.test('configHash covers the config and every included policy file', async (t) => {
  const dir = t.testdir();
  const policy = (days: number) => `policies:\n  - { name: a, table: t, age: { column: c, olderThan: ${days}d }, action: delete }\n`;
  const file = await write(dir, { 'jarvis-db.yaml': MINIMAL + 'retention: { include: [./p.yaml] }\n', 'p.yaml': policy(7) });
  const first = (await loadConfig(file, ENV)).configHash;
  t.equal((await loadConfig(file, ENV)).configHash, first, 'stable');
  await writeFile(join(dir, 'p.yaml'), policy(8));
  const second = (await loadConfig(file, ENV)).configHash;
  t.not(second, first, 'a policy change changes the hash');
  await writeFile(join(dir, 'jarvis-db.yaml'), MINIMAL + 'retention: { include: [./p.yaml] }\n# a comment\n');
  t.not((await loadConfig(file, ENV)).configHash, second, 'a config change changes the hash');
});

t.test('aliases and merge keys are allowed', async (t) => {
  const file = await write(t.testdir(), { 'jarvis-db.yaml': [
    'version: 1',
    'services: { postgres: { url: "postgres://h/d" } }',
    'backups:',
    '  - &pg { name: nightly, service: postgres, cron: "0 3 * * *", keep: &keep { last: 3, daily: 7 } }',
    '  - <<: *pg',
    '    name: weekly',
    '    cron: "0 4 * * 0"',
    '    keep: *keep',
    '',
  ].join('\n') });
  const d = await loadConfig(file, {});
  t.same(d.backups.map((b) => [b.name, b.cron, b.keep]), [['nightly', '0 3 * * *', { last: 3, daily: 7 }], ['weekly', '0 4 * * 0', { last: 3, daily: 7 }]]);
});

t.test('an unquoted value that is only a reference takes the type of its result; quoted ones stay strings', async (t) => {
  const file = await write(t.testdir(), { 'jarvis-db.yaml': [
    'version: 1',
    'project: "${PROJECT:-007}"',
    'services: { postgres: { url: "postgres://h/d" } }',
    'backups:',
    '  - name: n',
    '    service: postgres',
    '    cron: "0 3 * * *"',
    '    jobs: ${PG_JOBS:-4}',
    '    allowPruneLast: ${PRUNE:-false}',
    '    keep:',
    '      last: ${KEEP}',
    '',
  ].join('\n') });
  const d = await loadConfig(file, { KEEP: '5' });
  t.equal(d.project, '007');
  t.equal(d.backups[0]?.jobs, 4);
  t.equal(d.backups[0]?.allowPruneLast, false);
  t.equal(d.backups[0]?.keep.last, 5);
});

t.test('an environment value cannot change the YAML structure', async (t) => {
  const evil = 'postgres://h/d#"}\nbackups: []\nx: {';
  const file = await write(t.testdir(), { 'jarvis-db.yaml': MINIMAL });
  const d = await loadConfig(file, { JARVIS_PG_URL: evil });
  t.equal(d.services.postgres?.url, evil, 'the value is taken verbatim');
  t.equal(d.backups.length, 1, 'no key was injected');
});

t.test('$${ in the file is a literal ${', async (t) => {
  const file = await write(t.testdir(), { 'jarvis-db.yaml': MINIMAL.replace('"${JARVIS_PG_URL}"', () => '"postgres://h/$${x}"') });
  const d = await loadConfig(file, {});
  t.equal(d.services.postgres?.url, 'postgres://h/${x}');
});

t.test('loadConfig reads process.env by default', async (t) => {
  const file = await write(t.testdir(), { 'jarvis-db.yaml': MINIMAL });
  const saved = process.env.JARVIS_PG_URL;
  process.env.JARVIS_PG_URL = 'postgres://from-env/d';
  t.teardown(() => { if (saved === undefined) delete process.env.JARVIS_PG_URL; else process.env.JARVIS_PG_URL = saved; });
  t.equal((await loadConfig(file)).services.postgres?.url, 'postgres://from-env/d');
});

t.test('schema.target may name a migration file that exists', async (t) => {
  const dir = t.testdir();
  const file = await write(dir, {
    'jarvis-db.yaml': MINIMAL + 'schema: { target: 002_users }\n',
    'migrations/001_init.sql': '',
    'migrations/002_users.js': '',
  });
  t.equal((await loadConfig(file, ENV)).schema?.target, '002_users');
  await writeFile(join(dir, 'jarvis-db.yaml'), MINIMAL + 'schema: { target: 003_nope }\n');
  await t.rejects(loadConfig(file, ENV), { code: 'CONFIG_INVALID', details: [/schema\.target: "003_nope" is not a migration/] });
});

t.test('partitions: declared tables load with their defaults; a bad interval or a table declared twice is refused naming the file and line', async (t) => {
  const dir = t.testdir();
  const file = await write(dir, { 'jarvis-db.yaml': MINIMAL + 'partitions:\n  - { table: metrics, column: recorded_at, interval: 1d, premake: 7 }\n  - { table: public.events, column: at, interval: 1mo }\n' });
  t.same((await loadConfig(file, ENV)).partitions, [
    { table: 'metrics', column: 'recorded_at', interval: '1d', premake: 7, source: { file: 'jarvis-db.yaml', path: 'partitions[0]' } },
    { table: 'public.events', column: 'at', interval: '1mo', premake: 4, source: { file: 'jarvis-db.yaml', path: 'partitions[1]' } },
  ]);
  await writeFile(file, MINIMAL + 'partitions:\n  - { table: metrics, column: recorded_at, interval: 2d }\n');
  await t.rejects(loadConfig(file, ENV), { code: 'CONFIG_INVALID', details: [/jarvis-db\.yaml:7.*partitions\[0\]\.interval.*(1d|must be one of)/] });
  await writeFile(file, MINIMAL + 'partitions:\n  - { table: metrics, column: recorded_at, interval: 1d }\n  - { table: public.metrics, column: recorded_at, interval: 1w }\n');
  await t.rejects(loadConfig(file, ENV), { code: 'CONFIG_INVALID', details: [/jarvis-db\.yaml:8.*partitions\[1\]\.table: table "public\.metrics" is already declared at partitions\[0\]/] });
});
