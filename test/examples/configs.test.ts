/**
 * Every config an example uses validates through loadConfig, placed where the example places it
 * and given exactly the environment the example gives it: a variable the example forgets, or a
 * path that does not exist where it is mounted, fails here.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** `KEY=value` lines of an environment file (systemd EnvironmentFile and /bin/sh syntax). */
function envFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return env;
}

/** A value for each variable an example sets from a secret it does not show. */
function secretsFor(names: string[]): Record<string, string> {
  const samples: Record<string, string> = {
    JARVIS_PG_URL: 'postgres://jarvis:pw-1@db.internal:5432/jarvis',
    JARVIS_REDIS_URL: 'redis://default:pw-2@cache.internal:6379/0',
    JARVIS_CHROMA_URL: 'http://vectors.internal:8000',
  };
  return Object.fromEntries(names.map((n) => [n, samples[n] ?? `value-of-${n}`]));
}

t.test('the compose config validates as the container sees it: mounted at /app/jarvis-db.yaml, with the image\'s migrations and policies', async (t) => {
  const compose = parse(read('examples/docker-compose/docker-compose.yml'), { merge: true }) as Obj;
  const daemon = compose.services['jarvis-db'] as Obj;
  t.ok(daemon.volumes.includes('./jarvis-db.yaml:/app/jarvis-db.yaml:ro'), 'the compose file mounts the config over /app/jarvis-db.yaml');
  const dockerfile = read('Dockerfile');
  t.match(dockerfile, /^WORKDIR \/app$/m, 'the image works in /app');
  t.match(dockerfile, /^COPY migrations \.\/migrations$/m, 'the image has /app/migrations');
  t.match(dockerfile, /^COPY policies \.\/policies$/m, 'the image has /app/policies');

  // The image's /app, made of the repository's own folders.
  const app = await mkdtemp(join(tmpdir(), 'jarvis-db-app-'));
  t.teardown(() => rm(app, { recursive: true, force: true }));
  await symlink(join(ROOT, 'migrations'), join(app, 'migrations'));
  await symlink(join(ROOT, 'policies'), join(app, 'policies'));
  await copyFile(join(ROOT, 'examples/docker-compose/jarvis-db.yaml'), join(app, 'jarvis-db.yaml'));

  // Exactly the environment docker compose gives the container (its values come from .env).
  const environment = daemon.environment as Record<string, string>;
  const keys = Object.keys(environment);
  const dotEnv = envFile(read('examples/docker-compose/.env.example'));
  t.same(keys.sort(), Object.keys(dotEnv).sort(), '.env.example lists every variable the container gets');
  const d = await loadConfig(join(app, 'jarvis-db.yaml'), secretsFor(keys));
  t.equal(d.storage.path, '/var/lib/jarvis-db', 'storage is the mounted volume');
  t.ok(daemon.volumes.includes('jarvis-db-storage:/var/lib/jarvis-db'), 'and the volume is mounted there');
  t.equal(d.storage.encryption?.passphraseEnv, 'JARVIS_BACKUP_KEY');
  t.ok(keys.includes('JARVIS_BACKUP_KEY'), 'the passphrase variable reaches the container');
  t.match(d.services.postgres?.url, /^postgres:\/\/jarvis:value-of-POSTGRES_PASSWORD@postgres:5432\/jarvis$/);
  t.match(d.services.redis?.url, /@redis:6379\/0$/);
  t.equal(d.services.chroma?.url, 'http://chroma:8000');
  t.equal(d.schema?.migrations, join(app, 'migrations'));
  t.ok(d.retention.length >= 6, 'the default policies are included');
  t.same(d.backups.map((b) => b.service).sort(), ['chroma', 'postgres', 'postgres', 'redis']);
  t.equal(compose.services.postgres.image.split(':')[1].split('-')[0], compose['x-jarvis-db'].build.args.PG_MAJOR,
    'the image is built with the client tools of the PostgreSQL server it runs beside');
});

t.test('the root jarvis-db.yaml validates with the environment of the systemd units and the crontab', async (t) => {
  const env = envFile(read('examples/systemd/jarvis-db.env.example'));
  for (const unit of ['jarvis-db-apply.service', 'jarvis-db-daemon.service']) {
    t.match(read(`examples/systemd/${unit}`), /^EnvironmentFile=\/etc\/jarvis-db\/env$/m, `${unit} reads /etc/jarvis-db/env`);
  }
  t.match(read('examples/cron/jarvis-db.cron'), /\. \/etc\/jarvis-db\/env/, 'the crontab line reads it too');
  t.equal(env.JARVIS_DB_CONFIG, '/opt/jarvis-db/jarvis-db.yaml', 'the config of the /opt/jarvis-db checkout');
  const d = await loadConfig(join(ROOT, 'jarvis-db.yaml'), env);
  t.equal(d.storage.path, '/var/lib/jarvis-db', 'JARVIS_STORAGE moves the storage to the StateDirectory');
  t.match(read('examples/systemd/jarvis-db-apply.service'), /^StateDirectory=jarvis-db$/m);
  t.equal(d.services.postgres?.url, env.JARVIS_PG_URL);
});

t.test('the root jarvis-db.yaml validates with the environment of each GitHub workflow', async (t) => {
  for (const file of ['jarvis-db-plan.yml', 'jarvis-db-apply.yml']) {
    const workflow = parse(read(`examples/github/${file}`)) as Obj;
    for (const [name, job] of Object.entries(workflow.jobs as Record<string, Obj>)) {
      const env = job.env as Record<string, string>;
      const fromSecrets = Object.keys(env).filter((k) => String(env[k]).includes('secrets.'));
      const literal = Object.fromEntries(Object.entries(env).filter(([k]) => !fromSecrets.includes(k)));
      const d = await loadConfig(join(ROOT, 'jarvis-db.yaml'), { ...literal, ...secretsFor(fromSecrets) });
      t.equal(d.storage.path, '/var/lib/jarvis-db', `${file} ${name}: the storage path of the host`);
      t.ok(d.services.postgres && d.services.redis && d.services.chroma, `${file} ${name}: loads`);
    }
  }
  const apply = parse(read('examples/github/jarvis-db-apply.yml')) as Obj;
  t.ok(Object.keys(apply.jobs.apply.env).includes('JARVIS_BACKUP_KEY'), 'apply has the passphrase: it writes encrypted backups when encryption is on');
  t.equal(apply.concurrency['cancel-in-progress'], false, 'an apply is never cancelled by the next push');
});

t.test('the root jarvis-db.yaml validates with the environment of the Kubernetes CronJob', async (t) => {
  const text = read('examples/kubernetes/jarvis-db-apply-cronjob.yaml');
  const docs = text.split(/^---$/m).map((d) => parse(d) as Obj);
  const cronJob = docs.find((d) => d.kind === 'CronJob')!;
  const pod = cronJob.spec.jobTemplate.spec.template.spec as Obj;
  const container = pod.containers[0] as Obj;
  // The secret's keys, as the header's `kubectl create secret` shows them.
  const secretKeys = [...text.matchAll(/--from-literal=([A-Z_]+)=/g)].map((m) => m[1]!);
  t.ok(secretKeys.includes('JARVIS_PG_URL'));
  const literal = Object.fromEntries((container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
  const d = await loadConfig(join(ROOT, 'jarvis-db.yaml'), { ...literal, ...secretsFor(secretKeys) });
  t.equal(d.storage.path, '/var/lib/jarvis-db');
  t.ok((container.volumeMounts as Obj[]).some((m) => m.mountPath === d.storage.path), 'the storage path is the mounted volume');
  t.equal(cronJob.spec.concurrencyPolicy, 'Forbid');
  t.equal(pod.securityContext.runAsUser, 10001);
  t.match(read('Dockerfile'), /--uid 10001/, 'the uid of the image\'s user');
});

t.test('the root jarvis-db.yaml with the environment of the S3-only Kubernetes CronJob: S3 is the only repository, no volume', async (t) => {
  const text = read('examples/kubernetes/jarvis-db-apply-s3-cronjob.yaml');
  const docs = text.split(/^---$/m).map((d) => parse(d) as Obj);
  t.notOk(docs.some((d) => d.kind === 'PersistentVolumeClaim'), 'no persistent volume');
  const cronJob = docs.find((d) => d.kind === 'CronJob')!;
  const pod = cronJob.spec.jobTemplate.spec.template.spec as Obj;
  const container = pod.containers[0] as Obj;
  const secretKeys = [...text.matchAll(/--from-literal=([A-Z_]+)=/g)].map((m) => m[1]!);
  const literal = Object.fromEntries((container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
  const d = await loadConfig(join(ROOT, 'jarvis-db.yaml'), { ...literal, ...secretsFor(secretKeys) });
  t.same(d.repositories?.map((r) => [r.name, r.kind]), [['offsite', 's3']], 'the bucket is the only repository');
  const offsite = d.repositories![0]!;
  t.same(offsite.kind === 's3' && offsite.s3, { bucket: 'jarvis-backups', prefix: 'prod/', region: 'eu-west-1', forcePathStyle: true }, 'bucket, prefix and region from the pod, AWS itself (no endpoint)');
  const volume = (container.volumeMounts as Obj[]).find((m) => m.mountPath === d.storage.path);
  t.ok(volume, 'the storage path is mounted');
  t.ok((pod.volumes as Obj[]).some((v) => v.name === volume!.name && v.emptyDir), 'and is an emptyDir: nothing survives the pod but the bucket');
  t.ok(secretKeys.includes('AWS_SECRET_ACCESS_KEY') && !/secretAccessKey/.test(read('jarvis-db.yaml')), 'credentials come from the secret, not the config');
  t.equal(pod.serviceAccountName, docs.find((x) => x.kind === 'ServiceAccount')!.metadata.name, 'a service account of its own, for IRSA');
  t.equal(pod.securityContext.runAsUser, 10001);
});

t.test('the root jarvis-db.yaml without any repository variable: the local one alone, as before', async (t) => {
  const d = await loadConfig(join(ROOT, 'jarvis-db.yaml'), secretsFor(['JARVIS_PG_URL']));
  t.same(d.repositories?.map((r) => r.name), ['local']);
  const local = d.repositories![0]!;
  t.equal(local.kind === 'local' && local.dir, d.storage.path, 'backups beside the local state, where they always were');
});

t.test('examples/pitr.yaml archives the WAL of the service continuously and takes physical base backups for it', async (t) => {
  const d = await loadConfig(join(ROOT, 'examples/pitr.yaml'), { ...secretsFor(['JARVIS_PG_URL']), JARVIS_STORAGE: '/var/lib/jarvis-db' });
  t.same(d.services.postgres?.pitr, { enabled: true, slot: 'jarvis_db', rpoSeconds: 60 });
  t.match(d.backups, [{ name: 'postgres-base', service: 'postgres', method: 'physical' }], 'a physical schedule: the window opens at its base backups');
  t.same(d.repositories?.map((r) => r.name), ['local']);
});

t.test('every jarvis-db config under examples/ is covered by a test of this file or of test/config', async (t) => {
  const configs: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (/\.ya?ml$/.test(entry.name) && /jarvis-db\.schema\.json(?!#)/.test(read(path).split('\n')[0]!)) configs.push(path);
    }
  };
  walk('examples');
  t.same(configs.sort(), ['examples/docker-compose/jarvis-db.yaml', 'examples/full.yaml', 'examples/minimal.yaml', 'examples/partitioned-metrics.yaml', 'examples/pitr.yaml'],
    'a new example config needs its own test above (examples/*.yaml are loaded by test/config/load.test.ts)');
});
