/**
 * Health per repository (src/health/probes/backups.ts) with S3 repositories on the sandbox's S3
 * server (s3rver): a bucket with a backup is fine; a missing bucket, wrong credentials (an
 * unknown access key id: s3rver checks it, not signatures) or a server that is down make that
 * repository CRITICAL with one line and no secret, the others stay fine.
 */
import t from 'tap';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import type { BackupSchedule, RepositoryConfig } from '../../src/config/types.js';
import { MANIFEST, manifestText, sealManifest } from '../../src/backup/storage.js';
import { observeHealth, report } from '../../src/health/check.js';
import { STATUS_EXIT_CODE } from '../../src/health/evaluate.js';
import { renderHealthPrometheus } from '../../src/render/prometheus.js';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { openRepository } from '../../src/storage/repositories.js';
import { withSandbox } from '../helpers/sandbox.js';
import { desiredFor } from './fixture.js';

const schedule: BackupSchedule = { name: 'nightly', service: 'postgres', cron: '0 * * * *', timezone: 'UTC', keep: { last: 3 }, verify: 'checksum', path: 'backups[0]' };

async function publishBackup(config: RepositoryConfig, env: NodeJS.ProcessEnv, id: string, startedAt: string): Promise<void> {
  const store = openRepository(config, env).store('', MANIFEST);
  const item = await store.begin(`postgres/nightly/${id}`);
  const file = await item.writeFile('dump.sql', Readable.from([Buffer.from('select 1;\n')]));
  await item.publish(manifestText(sealManifest({
    formatVersion: 1, id, service: 'postgres', schedule: 'nightly', method: 'pg_dump', startedAt, finishedAt: startedAt, durationMs: 1,
    files: [file], totalBytes: file.bytes, encrypted: false, extra: {}, verification: null,
  })));
}

t.test('on S3', async (t) => {
  const state = await withSandbox(t, ['s3']);
  const env = { ...process.env, ...sandboxEnv(state) };
  const s3 = (name: string, over: Partial<{ bucket: string; endpoint: string }> = {}): RepositoryConfig => ({
    name, kind: 's3', path: 'repositories[1]',
    s3: { bucket: state.s3!.bucket, prefix: `health-${name}/`, region: state.s3!.region, endpoint: state.s3!.url, forcePathStyle: true, ...over },
  });
  const now = new Date();
  const startedAt = new Date(now.getTime() - 3600_000).toISOString();
  const id = `${startedAt.slice(0, 19).replace(/[-:]/g, '')}Z-abcd`;

  t.test('a bucket with a backup is fine; a missing bucket and a server that is down are CRITICAL, one line each, no secret; exit 2', async (t) => {
    const dir = t.testdir();
    const repositories: RepositoryConfig[] = [
      { name: 'local', kind: 'local', dir: join(dir, 'repo'), path: 'repositories[0]' },
      s3('offsite'),
      s3('nobucket', { bucket: 'no-such-bucket' }),
      s3('down', { endpoint: 'http://127.0.0.1:9' }),
    ];
    await publishBackup(repositories[0]!, env, id, startedAt);
    await publishBackup(repositories[1]!, env, id, startedAt);
    const desired = desiredFor({ storage: { path: join(dir, 'repo') }, repositories, backups: [schedule] });
    const result = report(desired, await observeHealth(desired, { services: ['backups', 'repository'], now, env }));
    const bad = result.findings.filter((f) => f.status !== 'HEALTHY');
    t.same(bad.map((f) => [f.check, f.status]), [['repository.up.nobucket', 'CRITICAL'], ['repository.up.down', 'CRITICAL']]);
    t.match(bad[0]!.message, /no-such-bucket/, 'the missing bucket is named');
    for (const f of bad) {
      t.notMatch(f.message, /\n/, 'one line');
      t.notMatch(f.message, state.s3!.secretAccessKey, 'no secret');
    }
    t.match(result.findings.find((f) => f.check === 'repository.backup_age_interval_ratio.offsite.nightly'), { status: 'HEALTHY', message: new RegExp(id) });
    t.equal(STATUS_EXIT_CODE[result.status], 2);
    const metrics = renderHealthPrometheus(result.observation, result.findings);
    t.match(metrics, /jarvis_db_repository_up\{repository="offsite"\} 1\n/);
    t.match(metrics, /jarvis_db_repository_up\{repository="nobucket"\} 0\n/);
    t.match(metrics, /jarvis_db_repository_backup_age_seconds\{repository="offsite",schedule="nightly"\} /);
    t.notMatch(metrics, state.s3!.secretAccessKey);
  });

  t.test('wrong credentials (an unknown access key id): the S3 repository is CRITICAL, the local one fine', async (t) => {
    const dir = t.testdir();
    const repositories: RepositoryConfig[] = [{ name: 'local', kind: 'local', dir: join(dir, 'repo'), path: 'repositories[0]' }, s3('offsite')];
    const desired = desiredFor({ storage: { path: join(dir, 'state') }, repositories, backups: [schedule] });
    const wrong = { ...env, AWS_ACCESS_KEY_ID: 'AKIAUNKNOWNKEY000000' };
    const result = report(desired, await observeHealth(desired, { services: ['repository'], now, env: wrong }));
    const up = new Map(result.findings.filter((f) => f.check.startsWith('repository.up.')).map((f) => [f.check, f]));
    t.equal(up.get('repository.up.local')!.status, 'HEALTHY');
    t.equal(up.get('repository.up.offsite')!.status, 'CRITICAL');
    t.notMatch(up.get('repository.up.offsite')!.message, state.s3!.secretAccessKey);
  });
});
