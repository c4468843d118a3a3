/**
 * What an operator sees when the off-site repository cannot be used (build first: the CLI runs
 * from dist/): wrong credentials (an unknown access key id: the sandbox's S3 server checks the id,
 * not signatures), a bucket that does not exist, an endpoint that is down. Every command that reads
 * the repository says so in one line naming the repository and the bucket, exits 1 (apply: the
 * backup to the local repository still runs), prints no stack trace, and the secret key appears in
 * no output at all, whatever the command.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, sandboxEnv } from '../../src/sandbox/index.js';
import { withSandbox } from '../helpers/sandbox.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

/** One CLI run; not spawnSync, so that the cases can run at once. */
function cli(args: string[], env: Record<string, string>): Promise<{ args: string[]; code: number | null; output: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') { reject(error); return; }
      resolve({ args, code: child.exitCode, output: `${stdout}${stderr}`, stderr });
    });
  });
}

// The three cases share the servers but nothing else (each has its own config, storage and repositories):
// they run at once (the test's time is wall time); within a case the commands keep their order.
t.test('wrong credentials, a missing bucket, an endpoint that is down: one line naming the repository and bucket, exit 1, no stack, no secret', { jobs: 3 }, async (t) => {
  const state = await withSandbox(t, ['postgres', 's3']);
  const s3 = state.s3!;
  const base = sandboxEnv(state);
  const closed = `http://127.0.0.1:${await freePort()}`;
  const cases: { name: string; env: Record<string, string>; bucket: string; says: RegExp }[] = [
    { name: 'wrong credentials', env: { AWS_ACCESS_KEY_ID: 'AKIAUNKNOWN000000000' }, bucket: s3.bucket, says: /access key|credentials|AWS_ACCESS_KEY_ID/i },
    { name: 'a missing bucket', env: { JARVIS_S3_BUCKET: 'no-such-bucket' }, bucket: 'no-such-bucket', says: /does not exist|create it/i },
    { name: 'an endpoint that is down', env: { JARVIS_S3_ENDPOINT: closed }, bucket: s3.bucket, says: /endpoint|reach|connect/i },
  ];
  await Promise.all(cases.map((c) => t.test(c.name, async (t) => {
    const dir = join(t.testdir(), 'p');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'jarvis-db.yaml'), [
      'version: 1',
      'services:',
      '  postgres: { url: "${JARVIS_PG_URL}" }',
      'storage: { path: ./state }',
      'repositories:',
      '  - { name: local, path: ./repo }',
      '  - name: offsite',
      '    s3: { bucket: "${JARVIS_S3_BUCKET}", prefix: prod/, region: "${AWS_REGION}", endpoint: "${JARVIS_S3_ENDPOINT}", forcePathStyle: true }',
      'backups:',
      '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }',
      '',
    ].join('\n'));
    const env = { ...base, ...c.env, JARVIS_DB_CONFIG: join(dir, 'jarvis-db.yaml'), NO_COLOR: '1' };
    const runs = [];
    for (const args of [
      ['backup', 'list'],
      ['backup', 'list', '--repository', 'offsite'],
      ['plan'],
      ['apply', '--auto-approve'],
      ['backup', 'verify', '--repository', 'offsite'],
      ['health', 'check', '--service', 'repository'],
      ['health', 'check', '--service', 'repository', '--format', 'prometheus'],
      ['backup', 'list', '--debug'],
    ]) runs.push(await cli(args, env));
    const [list, listOffsite, , apply] = runs;
    for (const r of [list!, listOffsite!]) {
      t.equal(r.code, 1, `${r.args.join(' ')} exits 1`);
      const line = r.stderr.split('\n').find((l) => l.startsWith('error: '));
      t.match(line, new RegExp(`repository offsite \\(s3://${c.bucket}/prod/\\)`), `${r.args.join(' ')}: one line naming the repository and the bucket`);
      t.match(r.stderr, c.says, 'and what is wrong');
      t.notMatch(r.stderr, /\n\s+at /, 'no stack trace without --debug');
    }
    t.equal(apply!.code, 1, 'apply fails: the copy off-site could not be made');
    t.match(apply!.output, /repository offsite/, 'naming the repository');
    const local = await cli(['backup', 'list', '--repository', 'local', '--json'], env);
    t.equal((JSON.parse(local.output) as { backups: unknown[] }).backups.length, 1, 'the backup to the local repository went on');
    for (const r of [...runs, local]) {
      t.notOk(r.output.includes(s3.secretAccessKey), `${r.args.join(' ')}: the secret key is in no output`);
      t.notOk(r.output.includes(state.postgres!.password), `${r.args.join(' ')}: nor the database password`);
    }
  })));
});
