/**
 * `jarvis-db apply` through the compiled CLI (`npm run build` first), with the test-only
 * marker module in file mode (no server): confirmation rules off a terminal, saved plans and
 * their stale refusal, the stop at the first failure, exit codes.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { BIN, cli, cliEnv, writeConfig } from '../engine/fixtures/cli.js';
import { withSandbox } from '../helpers/sandbox.js';

async function setup(dir: string, extra: string[] = []) {
  const config = await writeConfig(dir, [
    'version: 1',
    'services:',
    '  postgres: { url: "postgres://jarvis:pg-pass-1234@127.0.0.1:1/none" }',
    '  redis: { url: "redis://:redis-pass-5678@127.0.0.1:1/0" }',
    'storage: { path: ./backups }',
    ...extra,
  ]);
  const marker = join(dir, 'marker');
  return { config, marker, env: { JARVIS_DB_CONFIG: config, MARKER_FILE: marker } };
}

t.test('off a terminal, apply needs --auto-approve or a plan file, and runs nothing without', async (t) => {
  const { env, marker } = await setup(t.testdir());
  const r = cli(['apply'], env);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'error: apply is not on a terminal, so it cannot ask for confirmation: pass --auto-approve, or a plan file\nhint: jarvis-db plan --out plan.json; review it; jarvis-db apply plan.json\n');
  t.notOk(existsSync(marker));
  const ok = cli(['apply', '--auto-approve'], env);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /~ marker_ensure jarvis_marker  marker\.ensure\n      the marker row is missing \(1 row\)[\s\S]*Plan: 0 to create, 1 to change, 0 to destroy\.\nApply complete: 1 action done in /);
  t.ok(existsSync(marker));
});

/** The CLI on a pseudo-terminal (util-linux `script`), answering `answer` to its question. */
function onTerminal(args: string[], env: Record<string, string | undefined>, answer: string) {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  // The answer arrives after the prompt: a pty drops input typed before the reader starts.
  const r = spawnSync('sh', ['-c', `(sleep 2; printf '${answer}\\n') | script -qec "${command}" /dev/null`], { env: cliEnv(env), encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout };
}
const hasScript = spawnSync('script', ['--version']).status === 0;

t.test('on a terminal, apply shows the plan in colour and runs only after "yes"', { skip: !hasScript && 'util-linux script is not installed' }, async (t) => {
  const { env, marker } = await setup(t.testdir());
  const no = onTerminal(['apply'], { ...env, NO_COLOR: undefined }, 'no');
  t.equal(no.code, 1);
  t.match(no.out, /\u001b\[33m~\u001b\[39m \u001b\[1mmarker_ensure/, 'coloured on a terminal');
  t.match(no.out, /Apply this action\? Only 'yes' goes on: /);
  t.match(no.out, /error: apply cancelled: the plan was not confirmed; nothing was applied/);
  t.notOk(existsSync(marker));
  const yes = onTerminal(['apply'], env, 'yes');
  t.equal(yes.code, 0, yes.out);
  t.notMatch(yes.out, /\u001b\[3\dm/, 'NO_COLOR turns colour off, even on a terminal');
  t.match(yes.out, /Apply complete: 1 action done/);
  t.ok(existsSync(marker));
});

t.test('a saved plan is applied as saved without --auto-approve while nothing changed', async (t) => {
  const dir = t.testdir();
  const { env, marker } = await setup(dir);
  const planFile = join(dir, 'plan.json');
  const p = cli(['plan', '--out', planFile], env);
  t.equal(p.code, 0, p.stderr);
  t.match(p.stderr, `Plan saved to ${planFile}. Apply exactly this plan with: jarvis-db apply ${planFile}`);
  t.notMatch(await readFile(planFile, 'utf8'), /pg-pass-1234|redis-pass-5678/);
  const r = cli(['apply', planFile], { ...env, JARVIS_DB_CONFIG: undefined });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /Apply complete: 1 action done/);
  t.ok(existsSync(marker), 'the plan file named its config; the marker was made');
});

t.test('a stale plan file is refused, naming what changed, and nothing runs', async (t) => {
  const dir = t.testdir();
  const { env, marker, config } = await setup(dir);
  const planFile = join(dir, 'plan.json');
  t.equal(cli(['plan', '--out', planFile], env).code, 0);
  // Someone else converged the world in between.
  await writeFile(marker, 'jarvis-db-convergence\n');
  const stale = cli(['apply', planFile], env);
  t.equal(stale.code, 1);
  t.match(stale.stderr, /^error: the saved plan is stale: the state it was made from has changed since \d{4}-\d\d-\d\dT[\d:.]+Z\n {2}changed: marker: present \(false → true\)\nhint: make a new plan with `jarvis-db plan --out FILE` and apply that\n$/);

  // An edited config makes a plan stale too.
  await writeFile(marker, '');
  t.equal(cli(['plan', '--out', planFile], env).code, 0);
  await appendFile(config, '# a comment\n');
  const edited = cli(['apply', planFile], env);
  t.equal(edited.code, 1);
  t.match(edited.stderr, /changed: the config file or one of its policy files changed/);
  t.equal(await readFile(marker, 'utf8'), '', 'the stale plans ran nothing');
});

t.test('a plan file whose action was edited by hand is refused, naming the action, and nothing runs', async (t) => {
  const dir = t.testdir();
  const { env, marker } = await setup(dir);
  const planFile = join(dir, 'plan.json');
  t.equal(cli(['plan', '--out', planFile], env).code, 0);
  const plan = JSON.parse(await readFile(planFile, 'utf8')) as { actions: { params: Record<string, unknown> }[] };
  plan.actions[0]!.params.name = 'something else';
  await writeFile(planFile, JSON.stringify(plan, null, 2));
  const r = cli(['apply', planFile], env);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'error: the plan file was edited: actions[0] (marker.ensure) is not what was planned (its fingerprint does not match)\nhint: make a new plan with `jarvis-db plan --out FILE` and apply that, unchanged\n');
  t.notOk(existsSync(marker), 'the edited action did not run');
});

t.test('a file that is not a plan is refused clearly', async (t) => {
  const dir = t.testdir();
  const { env } = await setup(dir);
  await writeFile(join(dir, 'notes.json'), '{"hello": "world"}');
  const r = cli(['apply', join(dir, 'notes.json')], env);
  t.equal(r.code, 1);
  t.match(r.stderr, /^error: plan file .*notes\.json is not a jarvis-db plan: its formatVersion is undefined; this jarvis-db reads 1\n/);
});

t.test('a failing action stops the apply: exit 1, the failure in one line, the rest not executed', async (t) => {
  // A redis backup runs before the marker (due backups come first) and cannot succeed: the
  // server answers (so nothing holds the backup back), but its user may not replicate.
  const sandbox = await withSandbox(t, ['redis']);
  const admin = new Redis(sandbox.redis!.url);
  await admin.call('ACL', 'SETUSER', 'noreplica', 'on', '>noreplica-pass-42', '~*', '&*', '+@all', '-sync', '-psync');
  admin.disconnect();
  const port = new URL(sandbox.redis!.url).port;
  const { env, marker } = await setup(t.testdir(), ['backups:', '  - { name: redis-hourly, service: redis, cron: "0 * * * *", method: rdb, keep: { last: 2 } }']);
  const config = await readFile(env.JARVIS_DB_CONFIG, 'utf8');
  await writeFile(env.JARVIS_DB_CONFIG, config.replace('redis://:redis-pass-5678@127.0.0.1:1/0', `redis://noreplica:noreplica-pass-42@127.0.0.1:${port}/0`));
  const r = cli(['apply', '--auto-approve'], env);
  t.equal(r.code, 1);
  t.match(r.stderr, /\[1\/2\] \+ create_backup redis-hourly\n(?: {6}.*\n)*? {6}FAILED after [\d.]+m?s: .*SYNC/);
  t.match(r.stdout, /Apply failed: 0 done, 1 failed, 1 not executed \([\d.]+m?s\)\.\n {2}✗ backup\.create\.redis-hourly: .*Redis.*\n(?: {4}hint: .*\n)? {2}not executed: marker\.ensure: an earlier action failed \(backup\.create\.redis-hourly\)\nJournal: .*\.jsonl\n$/);
  t.notOk(existsSync(marker), 'the marker action did not run');
  t.notMatch(r.stdout + r.stderr, /noreplica-pass-42|pg-pass-1234/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

t.test('a service that does not answer holds back only its actions: the others run, exit 1', async (t) => {
  const { env, marker } = await setup(t.testdir(), ['backups:', '  - { name: redis-hourly, service: redis, cron: "0 * * * *", keep: { last: 2 } }']);
  const r = cli(['apply', '--auto-approve'], env);
  t.equal(r.code, 1);
  t.match(r.stdout, /\+ create_backup redis-hourly HELD BACK  backup\.create\.redis-hourly\n.*\n {6}not run: services: cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0: connect ECONNREFUSED/);
  t.match(r.stdout, /Apply failed: 1 done, 0 failed, 1 not executed .*\n {2}✗ services: cannot connect to Redis/);
  t.ok(existsSync(marker), 'the marker action, which needs no Redis, ran');
  t.notMatch(r.stdout + r.stderr, /redis-pass-5678|pg-pass-1234/);
});

t.test('apply --target runs only that module\'s actions', async (t) => {
  const { env, marker } = await setup(t.testdir(), ['backups:', '  - { name: redis-hourly, service: redis, cron: "0 * * * *", keep: { last: 2 } }']);
  const r = cli(['apply', '--auto-approve', '--target', 'marker'], env);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /jarvis-db will do this, in this order \(--target marker\):\n\n  ~ marker_ensure/);
  t.notMatch(r.stdout + r.stderr, /create_backup/);
  t.ok(existsSync(marker));
});

t.test('apply --json reports the run as JSON; a bad --lock-timeout is a usage error', async (t) => {
  const { env } = await setup(t.testdir());
  const r = cli(['apply', '--auto-approve', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const run = JSON.parse(r.stdout) as { status: string; results: { id: string; status: string }[]; journalFile: string };
  t.match(run, { status: 'succeeded', results: [{ id: 'marker.ensure', status: 'done' }] });
  const bad = cli(['apply', '--auto-approve', '--lock-timeout', 'soon'], env);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^error: --lock-timeout: "soon" is not a positive duration such as 30s/);
});
