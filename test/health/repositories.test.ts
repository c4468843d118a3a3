/**
 * Health per repository (src/health/probes/backups.ts): each repository's reachability and the age
 * of its newest valid backup per schedule. The evaluation on fixtures, then a real check of two
 * local repositories and one that cannot be listed. Needs no server.
 */
import t from 'tap';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { BackupSchedule, RepositoryConfig } from '../../src/config/types.js';
import { MANIFEST, manifestText, sealManifest } from '../../src/backup/storage.js';
import { observeHealth, report } from '../../src/health/check.js';
import { evaluate, STATUS_EXIT_CODE } from '../../src/health/evaluate.js';
import { repositorySamples, type BackupFacts } from '../../src/health/probes/backups.js';
import { renderHealthPrometheus } from '../../src/render/prometheus.js';
import { renderHealthText } from '../../src/render/health.js';
import { openRepository } from '../../src/storage/repositories.js';
import { desiredFor } from './fixture.js';

const schedule = (over: Partial<BackupSchedule> = {}): BackupSchedule =>
  ({ name: 'nightly', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC', keep: { last: 3 }, verify: 'checksum', path: 'backups[0]', ...over });
const backup = (id: string, startedAt: string): BackupFacts => ({ id, service: 'postgres', schedule: 'nightly', startedAt, verification: null });
const NOW = new Date('2026-11-24T10:00:00Z');

t.test('each repository is up or down with its reason, and the age of its newest backup of each schedule is judged', async (t) => {
  const samples = repositorySamples([schedule()], [
    { name: 'local', scan: { valid: [backup('20261124T030000Z-aaaa', '2026-11-24T03:00:00Z')], damaged: [] } },
    { name: 'offsite', scan: { valid: [backup('20261120T030000Z-bbbb', '2026-11-20T03:00:00Z')], damaged: [] } },
    { name: 'empty', scan: { valid: [], damaged: [] } },
    { name: 'down', scan: { error: 'repository down (s3://b/): connect ECONNREFUSED 127.0.0.1:9' } },
  ], NOW);
  const findings = new Map(evaluate(samples, {}).map((f) => [f.check, f]));
  t.same([...findings.keys()], [
    'repository.up.local', 'repository.backup_age_interval_ratio.local.nightly', 'repository.up.offsite', 'repository.backup_age_interval_ratio.offsite.nightly',
    'repository.up.empty', 'repository.backup_age_interval_ratio.empty.nightly', 'repository.up.down',
  ]);
  t.equal(findings.get('repository.up.local')!.status, 'HEALTHY');
  t.match(findings.get('repository.backup_age_interval_ratio.local.nightly')!, { status: 'HEALTHY', message: /20261124T030000Z-aaaa is 7h 00m old/ });
  t.match(findings.get('repository.up.down')!, { status: 'CRITICAL', service: 'repository', message: 'repository.up (down) no: repository down (s3://b/): connect ECONNREFUSED 127.0.0.1:9' });
  t.match(findings.get('repository.backup_age_interval_ratio.offsite.nightly')!, { status: 'CRITICAL', message: /20261120T030000Z-bbbb is 4d 7h old/ });
  t.match(findings.get('repository.backup_age_interval_ratio.empty.nightly')!, { status: 'CRITICAL', message: /no valid backup of postgres schedule nightly in repository empty/ });
  const ages = samples.filter((s) => s.check === 'repository.backup_age_seconds').map((s) => [s.labels!.repository, s.value]);
  t.same(ages, [['local', 7 * 3600], ['offsite', 4 * 86_400 + 7 * 3600]], 'every repository with a backup has its age');
  t.notOk(samples.some((s) => s.labels?.repository === 'down' && s.check !== 'repository.up'), 'a repository that cannot be listed has only its up');
});

t.test('with a single repository only its up and its measures are added: backups.age_interval_ratio judges its age', async (t) => {
  const samples = repositorySamples([schedule()], [{ name: 'only', scan: { valid: [], damaged: [] } }], NOW);
  t.same(samples.map((s) => s.check), ['repository.up', 'repository.backups_valid']);
});

t.test('a repository\'s thresholds come from health.thresholds like any check\'s', async (t) => {
  const samples = repositorySamples([schedule()], [
    { name: 'local', scan: { valid: [], damaged: [] } },
    { name: 'offsite', scan: { valid: [backup('20261122T220000Z-aaaa', '2026-11-22T22:00:00Z')], damaged: [] } },
  ], NOW);
  const status = (thresholds: Parameters<typeof evaluate>[1]) => evaluate(samples, thresholds).find((f) => f.check === 'repository.backup_age_interval_ratio.offsite.nightly')!.status;
  t.equal(status({}), 'WARNING', 'past 1.5 intervals');
  t.equal(status({ 'repository.backup_age_interval_ratio': { warning: 2, critical: 4, lowerIsWorse: false } }), 'HEALTHY');
});

/** A published backup in a repository, through its sealed store, with a valid manifest. */
async function publishBackup(repository: ReturnType<typeof openRepository>, id: string, startedAt: string): Promise<void> {
  const store = repository.store('', MANIFEST);
  const item = await store.begin(`postgres/nightly/${id}`);
  const file = await item.writeFile('dump.sql', Readable.from([Buffer.from('select 1;\n')]));
  await item.publish(manifestText(sealManifest({
    formatVersion: 1, id, service: 'postgres', schedule: 'nightly', method: 'pg_dump', startedAt, finishedAt: startedAt, durationMs: 1,
    files: [file], totalBytes: file.bytes, encrypted: false, extra: {}, verification: null,
  })));
}

t.test('a real check: two local repositories and one that cannot be listed; that one is CRITICAL, the others fine, exit 2', async (t) => {
  const dir = t.testdir({ 'not-a-directory': 'x' });
  const repositories: RepositoryConfig[] = [
    { name: 'local', kind: 'local', dir: join(dir, 'repo'), path: 'repositories[0]' },
    { name: 'second', kind: 'local', dir: join(dir, 'second'), path: 'repositories[1]' },
    { name: 'broken', kind: 'local', dir: join(dir, 'not-a-directory', 'repo'), path: 'repositories[2]' },
  ];
  const now = new Date();
  const recent = new Date(now.getTime() - 3600_000).toISOString();
  const id = `${recent.slice(0, 19).replace(/[-:]/g, '')}Z-abcd`;
  for (const r of repositories.slice(0, 2)) await publishBackup(openRepository(r), id, recent);
  const desired = desiredFor({
    // The storage path is the first repository: backups.* find its backups whether the catalog
    // reads the storage path or every repository.
    storage: { path: join(dir, 'repo') }, repositories,
    backups: [schedule({ cron: '0 * * * *' })],
  });
  const observation = await observeHealth(desired, { services: ['backups', 'repository'], now });
  const result = report(desired, observation);
  const bad = result.findings.filter((f) => f.status !== 'HEALTHY');
  t.same(bad.map((f) => [f.check, f.status]), [['repository.up.broken', 'CRITICAL']], 'only the broken repository is not healthy');
  t.match(bad[0]!.message, /^repository\.up \(broken\) no: ENOTDIR: .*not-a-directory/);
  t.notMatch(bad[0]!.message, /\n/, 'one line');
  t.equal(result.status, 'CRITICAL');
  t.equal(STATUS_EXIT_CODE[result.status], 2, 'health check exits 2 on critical');
  t.match(result.findings.find((f) => f.check === 'backups.age_interval_ratio.nightly'), { status: 'HEALTHY', message: new RegExp(id) });
  t.match(result.findings.find((f) => f.check === 'repository.backup_age_interval_ratio.local.nightly'), { status: 'HEALTHY' });
  t.match(result.findings.find((f) => f.check === 'repository.backup_age_interval_ratio.second.nightly'), { status: 'HEALTHY' });

  const metrics = renderHealthPrometheus(result.observation, result.findings);
  const families = new Map(parsePrometheusTextFormat(metrics).map((f) => [f.name, f]));
  t.same(families.get('jarvis_db_repository_up')!.metrics.map((m) => [m.labels!.repository, m.value]), [['local', '1'], ['second', '1'], ['broken', '0']]);
  t.same(families.get('jarvis_db_repository_backup_age_seconds')!.metrics.map((m) => m.labels), [{ repository: 'local', schedule: 'nightly' }, { repository: 'second', schedule: 'nightly' }]);
  t.ok(families.has('jarvis_db_backups_age_seconds'), 'the existing metric names still work');
  t.match(renderHealthText(result.observation, result.findings, result.status), /repository {2}CRITICAL/);
});

t.test('without repositories in the config there is no repository probe', async (t) => {
  const desired = desiredFor({ storage: { path: t.testdir() }, backups: [schedule()] });
  const observation = await observeHealth(desired, { services: ['backups'], now: NOW });
  t.notOk(observation.samples.some((s) => s.check.startsWith('repository.')));
  await t.rejects(observeHealth(desired, { services: ['repository'] }), { code: 'USAGE', message: 'there are no repositories in the config' });
});
