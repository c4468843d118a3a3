/**
 * Two local repositories end to end (compiled CLI and dist/: build first with `npm run build`):
 * `backup create` writes to the first and copies to the second; `backup list` says where each
 * backup is; a copy lost in one repository is copied again by the next apply; a kill -9 during a
 * copy leaves nothing listed there and the next run removes the debris and copies again;
 * `restore --repository`, and restore from the second repository alone with an empty storage path.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freshDatabase, sql } from './fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const OPERATIONS = new URL('../../dist/backup/operations.js', import.meta.url).pathname;
const LOAD = new URL('../../dist/config/load.js', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface ListedBackup { id: string; dir: string; repositories: string[]; copies: { repository: string; dir: string }[] }
const listed = (env: Record<string, string>, ...args: string[]): ListedBackup[] => {
  const r = cli(['backup', 'list', '--json', ...args], env);
  if (r.code !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { backups: ListedBackup[] }).backups;
};

/** A project whose backups go to ./repo (local) and ./offsite-repo (offsite), its state in ./state. */
async function twoRepositoryProject(dir: string, url: string): Promise<Record<string, string>> {
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./state',
    'repositories:', '  - { name: local, path: ./repo }', '  - { name: offsite, path: ./offsite-repo, keep: { last: 5 } }',
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }', '',
  ].join('\n'));
  return { JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config };
}

t.test('backup create copies to every repository; list shows where; a lost copy is copied again; restore --repository', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 2000) i;`);
  const dir = t.testdir();
  const env = await twoRepositoryProject(dir, db.url);

  const create = cli(['backup', 'create', '--service', 'postgres'], env);
  t.equal(create.code, 0, create.stderr);
  t.match(create.stdout, /^\+ postgres\/nightly \S+: copied to offsite$/m);
  const [backup] = listed(env);
  t.same(backup!.repositories, ['local', 'offsite']);
  t.equal(backup!.copies[0]!.dir, join(dir, 'repo', 'postgres', 'nightly', backup!.id));
  t.equal(backup!.copies[1]!.dir, join(dir, 'offsite-repo', 'postgres', 'nightly', backup!.id));
  const local = await readFile(join(backup!.copies[0]!.dir, 'manifest.json'), 'utf8');
  t.equal(await readFile(join(backup!.copies[1]!.dir, 'manifest.json'), 'utf8'), local, 'the same manifest: same checksum, same file hashes');
  t.match(cli(['backup', 'list'], env).stdout, new RegExp(`^ID +SERVICE +SCHEDULE +AGE +SIZE +VERIFIED +REPOSITORY\n${backup!.id} .* local, offsite\n`, 'm'));
  t.same(listed(env, '--repository', 'offsite').map((b) => b.repositories), [['offsite']]);
  t.same(await readdir(join(dir, 'state')).then((n) => n.filter((x) => x === 'postgres')), [], 'no backup in storage.path: it keeps the local state only');

  const unknown = cli(['backup', 'list', '--repository', 'usb'], env);
  t.equal(unknown.code, 1);
  t.equal(unknown.stderr.trim(), 'error: no repository named "usb" (repositories: local, offsite)');

  await rm(backup!.copies[1]!.dir, { recursive: true });
  const plan = cli(['plan', '--json', '--target', 'backup'], env);
  const planned = (JSON.parse(plan.stdout) as { actions: { id: string; type: string; target: string; reason: string }[] }).actions;
  t.same(planned.map((a) => [a.id, a.type, a.target]), [[`backup.copy.${backup!.id}.offsite`, 'copy_backup', `nightly/${backup!.id} to offsite`]]);
  t.match(cli(['plan', '--target', 'backup', '--no-color'], env).stdout, new RegExp(`\\+ copy_backup nightly/${backup!.id} to offsite`));
  const apply = cli(['apply', '--auto-approve', '--target', 'backup'], env);
  t.equal(apply.code, 0, apply.stdout + apply.stderr);
  t.same(listed(env)[0]!.repositories, ['local', 'offsite'], 'copied again');

  // Restore from offsite only, into a new database.
  const restored = cli(['restore', backup!.id, '--repository', 'offsite', '--target-db', `${db.name}_from_offsite`], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /2,000 rows, row counts match/);
});

t.test('a flipped byte in one copy: verify of that copy fails naming the file; restore reads the good copy, and refuses when told to read the bad one', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 500);`);
  const dir = t.testdir();
  const env = await twoRepositoryProject(dir, db.url);
  t.equal(cli(['backup', 'create', '--service', 'postgres'], env).code, 0);
  const [backup] = listed(env);
  const manifest = JSON.parse(await readFile(join(backup!.copies[0]!.dir, 'manifest.json'), 'utf8')) as { files: { name: string }[] };
  const name = manifest.files[0]!.name;
  const victim = join(backup!.copies[0]!.dir, name);
  const bytes = await readFile(victim);
  bytes[0]! ^= 0xff;
  await writeFile(victim, bytes);
  const bad = cli(['backup', 'verify', backup!.id, '--repository', 'local'], env);
  t.equal(bad.code, 1);
  t.match(bad.stdout + bad.stderr, new RegExp(`${name.replace(/\./g, '\\.')} \\(SHA-256 mismatch\\) in local`));
  t.equal(cli(['backup', 'verify', backup!.id, '--repository', 'offsite'], env).code, 0, 'the offsite copy is intact');
  const refused = cli(['restore', backup!.id, '--repository', 'local', '--target-db', `${db.name}_bad`], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /damaged: .* in local/);
  const restored = cli(['restore', backup!.id, '--target-db', `${db.name}_good`], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /500 rows, row counts match/);
});

t.test('disaster recovery: with an empty storage path and the first repository gone, list and restore work from the second', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 1234) i;`);
  const dir = t.testdir();
  const env = await twoRepositoryProject(dir, db.url);
  t.equal(cli(['backup', 'create', '--service', 'postgres'], env).code, 0);
  const [backup] = listed(env);
  await rm(join(dir, 'repo'), { recursive: true });
  await rm(join(dir, 'state'), { recursive: true });
  const after = listed(env);
  t.same(after.map((b) => [b.id, b.repositories]), [[backup!.id, ['offsite']]]);
  const restored = cli(['restore', backup!.id, '--target-db', `${db.name}_dr`], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /1,234 rows, row counts match/);
});

t.test('kill -9 during a copy (after a file): nothing partial is listed in the target; the next run removes the debris and copies again', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE a (id int primary key); INSERT INTO a SELECT generate_series(1, 3000); CREATE TABLE b (id int primary key); INSERT INTO b SELECT generate_series(1, 3000);`);
  const dir = t.testdir();
  const env = await twoRepositoryProject(dir, db.url);
  const create = cli(['backup', 'create', '--service', 'postgres'], env);
  t.equal(create.code, 0, create.stderr);
  const [backup] = listed(env);
  await rm(backup!.copies[1]!.dir, { recursive: true });
  for (const pause of ['copy-file-written', 'copy-before-manifest']) {
    const child = join(dir, 'copy-child.mjs');
    await writeFile(child, `
      import { copyBackup } from ${JSON.stringify(OPERATIONS)};
      import { loadConfig } from ${JSON.stringify(LOAD)};
      const desired = await loadConfig(process.env.JARVIS_DB_CONFIG, process.env);
      await copyBackup(desired, { id: ${JSON.stringify(backup!.id)}, from: 'local', to: 'offsite', env: process.env });
      process.stderr.write('jarvis-db: done\\n');
    `);
    const proc = spawn(process.execPath, [child], { env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: pause }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    await new Promise<void>((resolve) => {
      proc.stderr!.on('data', (d: Buffer) => { stderr += d; if (stderr.includes(`test pause at ${pause}`)) resolve(); });
      proc.on('exit', () => resolve());
    });
    process.kill(-proc.pid!, 'SIGKILL');
    await exited;
    t.match(stderr, `test pause at ${pause}`, `the copy paused at ${pause}`);
    t.same(listed(env)[0]!.repositories, ['local'], `killed at ${pause}: offsite lists nothing of it`);
    const debris = JSON.parse(cli(['backup', 'list', '--json'], env).stdout).debris as string[];
    t.ok(debris.some((d) => d.startsWith(join(dir, 'offsite-repo'))), 'its staged copy is debris in offsite');
  }
  const apply = cli(['apply', '--auto-approve', '--target', 'backup'], env);
  t.equal(apply.code, 0, apply.stdout + apply.stderr);
  t.same(listed(env)[0]!.repositories, ['local', 'offsite'], 'copied again');
  t.same(JSON.parse(cli(['backup', 'list', '--json'], env).stdout).debris, [], 'the debris is gone');
  t.equal(cli(['backup', 'verify', backup!.id, '--repository', 'offsite'], env).code, 0);
});

t.test('a repository that cannot be read: list says so and exits 1; apply still backs up to the other, holding back only the copy to it', async (t) => {
  const db = await freshDatabase(t);
  await sql(db.url, `CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 100);`);
  const dir = t.testdir();
  const env = await twoRepositoryProject(dir, db.url);
  await writeFile(join(dir, 'offsite-repo'), 'not a directory'); // reading it fails (ENOTDIR)
  const apply = cli(['apply', '--auto-approve', '--target', 'backup'], env);
  t.equal(apply.code, 1, 'a run with a plan error fails');
  t.match(apply.stdout + apply.stderr, /repository offsite \(.*offsite-repo\) cannot be read: .*copies to it and prunes in it are held back/);
  t.match(apply.stdout + apply.stderr, /backup\.copy\.nightly\.offsite/);
  const list = cli(['backup', 'list'], env);
  t.equal(list.code, 1);
  t.match(list.stdout, / local\n/, 'the backup in local is listed');
  t.match(list.stderr, /^error: repository offsite \(.*offsite-repo\) cannot be read: /m);
  t.notMatch(list.stderr, /\n\s+at /, 'no stack trace');
  const create = cli(['backup', 'create', '--service', 'postgres'], env);
  t.equal(create.code, 1);
  t.match(create.stdout, /^\+ postgres\/nightly \S+: /m, 'backup create writes to local');
  t.match(create.stderr, /copy to offsite: /, 'and says the copy failed');
});
