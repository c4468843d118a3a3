/**
 * Point-in-time recovery from an S3 repository alone (compiled CLI: build first): the config's only
 * repository is a bucket on the sandbox's s3rver, so the base backup and the archived WAL live
 * there only; a second machine (the same config with a new, empty storage.path) restores
 * `latest --to-time T` from the bucket and gets exactly the rows committed before T.
 */
import t from 'tap';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/scratch/servers.js';
import { sandboxEnv } from '../../src/sandbox/index.js';
import { withDb } from '../backup/fixture.js';
import { withSandbox } from '../helpers/sandbox.js';
import { cli, eventsDigest, onPort, sleep, stopOnTeardown } from './pitr-fixture.js';



async function sql(url: string, text: string): Promise<pg.QueryResult[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query(text);
    return Array.isArray(r) ? r : [r];
  } finally {
    await c.end();
  }
}


/** Every file name under `dir` (none when it does not exist). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => e.name);
}

t.test('a PITR restore works from an S3 repository alone, on a machine with an empty storage path', async (t) => {
  const state = await withSandbox(t, ['postgres', 's3']);
  const serverUrl = state.postgres!.url;
  const name = 'pitrs3';
  await sql(serverUrl, `CREATE DATABASE ${name}`);
  const url = withDb(serverUrl, name);
  await sql(serverUrl, `ALTER SYSTEM SET wal_keep_size = '4GB'`);
  await sql(serverUrl, 'SELECT pg_reload_conf()');

  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-pitr-s3-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const configFor = async (file: string, storagePath: string) => {
    await writeFile(file, [
      'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', `  path: ${storagePath}`,
      'repositories:',
      '  - name: offsite',
      '    s3: { bucket: "${JARVIS_S3_BUCKET}", prefix: pitr/, region: "${AWS_REGION}", endpoint: "${JARVIS_S3_ENDPOINT}", forcePathStyle: true }',
      'backups:', '  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", timezone: UTC, compression: 1, keep: { last: 3 } }', '',
    ].join('\n'));
    return file;
  };
  const machineA = join(dir, 'machine-a');
  const machineB = join(dir, 'machine-b');
  const base = { ...sandboxEnv(state), JARVIS_PG_URL: url };
  const envA = { ...base, JARVIS_DB_CONFIG: await configFor(join(dir, 'a.yaml'), machineA) };
  const envB = { ...base, JARVIS_DB_CONFIG: await configFor(join(dir, 'b.yaml'), machineB) };

  await sql(url, `CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), v text)`);
  await sql(url, `INSERT INTO events (id, v) SELECT i, md5(i::text) FROM generate_series(1, 200) i`);
  const backup = cli(['backup', 'create', '--service', 'postgres'], envA);
  t.equal(backup.code, 0, backup.stderr);
  await sql(url, `INSERT INTO events (id, v) SELECT i, md5(i::text) FROM generate_series(1000, 1299) i`);
  await sleep(1100);
  const [now] = await sql(url, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`);
  const T = (now!.rows[0] as { t: string }).t;
  const atT = await eventsDigest(url);
  await sleep(1100);
  await sql(url, `INSERT INTO events (id, v) SELECT i, 'after T' FROM generate_series(5000, 5300) i`);
  await sql(url, 'DROP TABLE events');

  const [info] = await sql(serverUrl, `SELECT pg_walfile_name(pg_switch_wal()) AS last, current_setting('data_directory') AS data`);
  const { last, data } = info!.rows[0] as { last: string; data: string };
  const segments = (await readdir(join(data, 'pg_wal'))).filter((n) => /^[0-9A-F]{24}$/.test(n) && n <= last).sort();
  for (const segment of segments) {
    const push = cli(['wal', 'push', join(data, 'pg_wal', segment)], envA);
    t.equal(push.code, 0, `push ${segment}: ${push.stderr}`);
  }
  const local = await filesUnder(machineA);
  t.notOk(local.some((f) => f === 'manifest.json' || f.startsWith('segment.')), 'no backup or WAL file in the storage path: the bucket holds them');

  // The second machine sees the window through the bucket alone.
  const status = cli(['wal', 'status', '--json'], envB);
  t.equal(status.code, 0, status.stderr);
  const repositories = (JSON.parse(status.stdout) as { repositories: { repository: string; timelines: { window: { from: string; to: string } | null }[] }[] }).repositories;
  t.same(repositories.map((r) => r.repository), ['offsite']);
  const window = repositories[0]!.timelines[0]?.window;
  t.ok(window && Date.parse(window.from) < Date.parse(T) && Date.parse(T) < Date.parse(window.to), 'T is inside the window read from S3');

  const port = await freePort();
  const target = join(dir, 'recovered');
  stopOnTeardown(t, target);
  const restored = cli(['restore', 'latest', '--to-time', T, '--target-dir', target, '--start', '--port', String(port)], envB);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /recovery stopping before commit/);
  t.notMatch(restored.stdout + restored.stderr, state.s3!.secretAccessKey, 'no S3 secret in the output');
  t.notMatch(restored.stdout + restored.stderr, new URL(url).password, 'no password in the output');
  const recovered = onPort(url, port);
  t.equal(await eventsDigest(recovered), atT, 'exactly the rows committed before T');
  t.notOk((await filesUnder(machineB)).some((f) => f === 'manifest.json' || f.startsWith('segment.')), 'the second machine read everything from the bucket');
});
