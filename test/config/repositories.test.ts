/**
 * `repositories:` in the config: what Desired holds (paths resolved, prefixes normalized, an
 * empty endpoint meaning AWS, a disabled repository ignored) and what is refused.
 * The hostile cases (credentials in the file, both path and s3, bad names) are in hostile.test.ts.
 */
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { openRepositories, repositoryConfigs } from '../../src/storage/repositories.js';

const ENV = { JARVIS_PG_URL: 'postgres://jarvis:s3cret-pw@127.0.0.1:5999/jarvis' };

async function configWith(dir: string, repositories: string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, [
    'version: 1',
    'services:',
    '  postgres: { url: "${JARVIS_PG_URL}" }',
    'storage: { path: ./state }',
    'backups:',
    '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }',
    ...repositories,
    '',
  ].join('\n'));
  return file;
}

const TWO = [
  'repositories:',
  '  - name: local',
  '    path: ./backups/repo',
  '  - name: offsite',
  '    s3: { bucket: jarvis-backups, prefix: /prod, region: "${AWS_REGION:-us-east-1}", endpoint: "${JARVIS_S3_ENDPOINT:-}", forcePathStyle: true }',
  '    keep: { daily: 30, monthly: 24 }',
  '    enabled: ${JARVIS_OFFSITE:-true}',
];

t.test('a local and an S3 repository: paths relative to the config file, the prefix normalized, an empty endpoint meaning AWS', async (t) => {
  const dir = t.testdir();
  const d = await loadConfig(await configWith(dir, TWO), ENV);
  t.same(d.repositories, [
    { name: 'local', path: 'repositories[0]', kind: 'local', dir: join(dir, 'backups/repo') },
    {
      name: 'offsite', path: 'repositories[1]', keep: { daily: 30, monthly: 24 }, kind: 's3',
      s3: { bucket: 'jarvis-backups', prefix: 'prod/', region: 'us-east-1', forcePathStyle: true },
    },
  ]);
  t.equal(d.storage.path, join(dir, 'state'), 'the local state stays in storage.path');
  const repos = openRepositories(d);
  t.same(repos.map((r) => [r.name, r.kind, r.location]), [['local', 'local', join(dir, 'backups/repo')], ['offsite', 's3', 's3://jarvis-backups/prod/']]);
});

t.test('a non-empty endpoint from the environment is kept; a disabled repository is ignored', async (t) => {
  const dir = t.testdir();
  const d = await loadConfig(await configWith(dir, TWO), { ...ENV, JARVIS_S3_ENDPOINT: 'http://127.0.0.1:9000', AWS_REGION: 'eu-west-1' });
  t.same(d.repositories?.[1]?.kind === 's3' && d.repositories[1].s3, { bucket: 'jarvis-backups', prefix: 'prod/', region: 'eu-west-1', forcePathStyle: true, endpoint: 'http://127.0.0.1:9000' });
  const off = await loadConfig(await configWith(t.testdir(), TWO), { ...ENV, JARVIS_OFFSITE: 'false' });
  t.same(off.repositories?.map((r) => r.name), ['local'], 'enabled: false leaves it out');
});

t.test('without repositories the storage path is the only repository, named local', async (t) => {
  const dir = t.testdir();
  const d = await loadConfig(await configWith(dir, []), ENV);
  t.equal(d.repositories, undefined);
  t.same(repositoryConfigs(d), [{ name: 'local', kind: 'local', dir: join(dir, 'state'), path: 'storage.path' }]);
});

t.test('refused: every repository disabled, two repositories in one place, keep rules that keep nothing', async (t) => {
  const dir = t.testdir();
  const file = await configWith(dir, [
    'repositories:', //                                            7
    '  - { name: a, path: ./repo, keep: { daily: 0 } }', //        8
    '  - { name: b, path: repo/, enabled: false }', //             9
  ]);
  await t.rejects(loadConfig(file, ENV), { code: 'CONFIG_INVALID', details: [/jarvis-db\.yaml:8:\d+: repositories\[0\]\.keep: keep rules keep nothing/] });
  const file2 = await configWith(t.testdir(), [
    'repositories:',
    '  - { name: a, path: ./repo, enabled: false }',
    '  - { name: b, s3: { bucket: jarvis-backups, prefix: x/ } }',
    '  - { name: c, s3: { bucket: jarvis-backups, prefix: /x } }',
  ]);
  await t.rejects(loadConfig(file2, ENV), { code: 'CONFIG_INVALID', details: [/repositories\[2\]: is the same place as repositories\[1\] \(line 9\)/] });
  const file3 = await configWith(t.testdir(), ['repositories:', '  - { name: a, path: ./repo, enabled: false }']);
  await t.rejects(loadConfig(file3, ENV), { code: 'CONFIG_INVALID', details: [/repositories: every repository is disabled/] });
});
