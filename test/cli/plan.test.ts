/**
 * `jarvis-db plan` through the compiled CLI (`npm run build` first), on catalogs made without
 * a server: output formats, exit codes, --target, plan errors, and the review view
 * `--base REF|FILE` on a real git repository.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { cli } from '../engine/fixtures/cli.js';
import { withSandbox } from '../helpers/sandbox.js';
import { dailyBackups, publishBackup } from './fixtures/catalog.js';

const NO_MARKER = { JARVIS_DB_TEST_MODULE: undefined };

const UNREACHABLE = 'postgres://jarvis:pg-pass-1234@127.0.0.1:1/none';

/** `url`: a PostgreSQL that is down by default; a planned backup of it is then held back (an error). */
function configText(keepDaily: number, extra: string[] = [], url = UNREACHABLE): string {
  return [
    '# yaml-language-server: $schema=./schemas/jarvis-db.schema.json',
    'version: 1',
    'services:',
    `  postgres: { url: ${JSON.stringify(url)} }`,
    'storage:',
    '  path: ./backups',
    'backups:',
    '  - name: postgres-nightly',
    '    service: postgres',
    '    cron: "0 3 * * *"',
    `    keep: { daily: ${keepDaily} }`,
    ...extra,
    '',
  ].join('\n');
}

/** 03:00 UTC today, or yesterday when today's 03:00 is still to come. */
function lastThreeAm(): Date {
  const d = new Date();
  const at = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), 3, 0, 30));
  return at.getTime() <= Date.now() ? at : new Date(at.getTime() - 86_400_000);
}

t.test('formats and exit codes: text, json, markdown; 0, 2 with --detailed-exitcode, 0 once nothing is due', async (t) => {
  // The planned backup needs its server up: one that is down holds it back (an error, exit 1).
  const sandbox = await withSandbox(t, ['postgres']);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, configText(7, [], sandbox.postgres!.url));
  const env = { ...NO_MARKER, JARVIS_DB_CONFIG: config };

  const text = cli(['plan'], env);
  t.equal(text.code, 0, text.stderr);
  // Health findings (this machine's load, the unreachable server) may sit between the actions and the summary.
  t.match(text.stdout, /^jarvis-db will do this, in this order:\n\n  \+ create_backup postgres-nightly  backup\.create\.postgres-nightly\n      no backup yet\n\n(?:Findings:\n(?:  .*\n)+\n)?Plan: 1 to create, 0 to change, 0 to destroy\.\n$/);
  t.match(text.stdout, /! CRITICAL backups\.age_interval_ratio\.postgres-nightly: /, 'health findings appear in the plan');
  t.notMatch(text.stdout, /\u001b\[/, 'no colour on a pipe');
  t.equal(cli(['plan', '--detailed-exitcode'], env).code, 2);

  const json = cli(['plan', '--format', 'json'], env);
  const plan = JSON.parse(json.stdout) as { formatVersion: number; actions: { id: string }[]; summary: { create: number } };
  t.same([plan.formatVersion, plan.actions.map((a) => a.id), plan.summary.create], [1, ['backup.create.postgres-nightly'], 1]);
  t.same(JSON.parse(cli(['plan', '--json'], env).stdout).actions, plan.actions, '--json is --format json');
  t.match(cli(['plan', '--format', 'markdown'], env).stdout, /^### jarvis-db plan: `jarvis-db\.yaml`\n\n\*\*Plan: 1 to create, 0 to change, 0 to destroy\.\*\*/);
  const badFormat = cli(['plan', '--format', 'yaml'], env);
  t.equal(badFormat.code, 1);
  t.match(badFormat.stderr, /argument 'yaml' is invalid. Allowed choices are text, markdown, json/);

  await publishBackup(join(dir, 'backups'), 'postgres', 'postgres-nightly', lastThreeAm());
  const none = cli(['plan', '--detailed-exitcode'], env);
  t.equal(none.code, 0, none.stderr);
  t.match(none.stdout, /^(?:Findings:\n(?:  .*\n)+\n)?No changes\. Observed state matches jarvis-db\.yaml\.\n$/);
});

t.test('--target narrows the plan to a module or an action, and an unknown target says what exists', async (t) => {
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, configText(2));
  await dailyBackups(join(dir, 'backups'), 'postgres', 'postgres-nightly', new Date(lastThreeAm().getTime() - 86_400_000), 4);
  const env = { ...NO_MARKER, JARVIS_DB_CONFIG: config };
  const all = JSON.parse(cli(['plan', '--json'], env).stdout) as { actions: { id: string; type: string }[] };
  t.same(all.actions.map((a) => a.type), ['create_backup', 'prune_backup', 'prune_backup']);
  const prunes = JSON.parse(cli(['plan', '--json', '--target', 'backup.prune'], env).stdout) as { actions: { type: string }[]; target: string };
  t.same([prunes.target, prunes.actions.map((a) => a.type)], ['backup.prune', ['prune_backup', 'prune_backup']]);
  const one = cli(['plan', '--target', all.actions[1]!.id], env);
  t.match(one.stdout, /Plan: 0 to create, 0 to change, 1 to destroy\./);
  t.match(one.stdout, /- prune_backup \S+ DESTRUCTIVE/);
  const unknown = cli(['plan', '--target', 'nope'], env);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /^error: --target nope names no module and no planned action\nhint: modules: backup(?:, \w+)*; planned actions: backup\.create\.postgres-nightly, backup\.prune\./);
});

t.test('a module that cannot observe makes plan exit 1 with the error, even with --detailed-exitcode; no password shown', async (t) => {
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, configText(7));
  // The marker module in PostgreSQL mode, against a server that is not there.
  const r = cli(['plan', '--detailed-exitcode', '--out', join(dir, 'p.json')], { JARVIS_DB_CONFIG: config });
  t.equal(r.code, 1);
  t.match(r.stdout, /^2 errors: no action can run until they are fixed\n  ✗ marker: cannot observe: .*ECONNREFUSED.*\n  ✗ services: cannot connect to PostgreSQL at postgres:\/\/jarvis:\*\*\*@127\.0\.0\.1:1\/none: .*ECONNREFUSED/);
  t.match(r.stderr, /not saving the plan to .*p\.json: it has errors, and a plan saved for review must be whole \(fix them, then plan again\)\nerror: the plan has 2 errors$/m);
  t.notMatch(r.stdout + r.stderr, 'pg-pass-1234');
});

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.invalid', ...args], { cwd, encoding: 'utf8' });
}

t.test('plan --base REF: the impact in words from the observed state, above the textual diff of config and policies', async (t) => {
  // A real server with a metrics table: 90 rows, one a day; 30 are older than 60 days, 60 older than 30 days.
  const sandbox = await withSandbox(t, ['postgres']);
  const db = new pg.Client({ connectionString: sandbox.postgres!.url });
  await db.connect();
  await db.query(`CREATE TABLE metrics (id bigint PRIMARY KEY, created_at timestamptz NOT NULL);
    CREATE INDEX ON metrics (created_at);
    INSERT INTO metrics SELECT i, now() - (i + 0.5) * interval '1 day' FROM generate_series(0, 89) i`);
  await db.end();
  const repo = t.testdir();
  const policy = (olderThan: string) => `policies:\n  - name: metrics\n    table: metrics\n    age: { column: created_at, olderThan: ${olderThan} }\n    action: delete\n`;
  const config = (keepDaily: number) => configText(keepDaily, ['retention:', '  include: [./policies/*.yaml]']).replace(/url: "[^"]*"/, 'url: "${JARVIS_PG_URL}"');
  await mkdir(join(repo, 'policies'));
  await writeFile(join(repo, 'jarvis-db.yaml'), config(14));
  await writeFile(join(repo, 'policies', 'metrics.yaml'), policy('60d'));
  git(repo, 'init', '-q', '-b', 'main');
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'base');
  // The change under review: keep 7 daily backups instead of 14, and metrics for 30 days.
  await writeFile(join(repo, 'jarvis-db.yaml'), config(7));
  await writeFile(join(repo, 'policies', 'metrics.yaml'), policy('30d'));
  await dailyBackups(join(repo, 'backups'), 'postgres', 'postgres-nightly', lastThreeAm(), 14);
  const env = { ...NO_MARKER, JARVIS_DB_CONFIG: join(repo, 'jarvis-db.yaml'), JARVIS_PG_URL: sandbox.postgres!.url };

  const r = cli(['plan', '--base', 'main'], env, repo);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^Impact of the change from main, against the observed state:\n  ! metrics: retention shortened 60d → 30d, 30 rows become eligible for deletion \(destructive\)\n  ! postgres-nightly: keep daily 14 → 7, 7 backups will be pruned \(destructive\)\n\nChanges to the config:\n/);
  t.match(r.stdout, /--- a\/jarvis-db\.yaml\n\+\+\+ b\/jarvis-db\.yaml\n@@ .* @@\n(?: .*\n)*-    keep: \{ daily: 14 \}\n\+    keep: \{ daily: 7 \}\n/);
  t.match(r.stdout, /--- a\/policies\/metrics\.yaml\n\+\+\+ b\/policies\/metrics\.yaml\n/);
  t.match(r.stdout, /Plan: 0 to create, 0 to change, 8 to destroy\.\n$/, 'the plan of the head follows');
  t.notMatch(r.stdout + r.stderr, sandbox.postgres!.password, 'no password');

  const md = cli(['plan', '--base', 'main', '--format', 'markdown'], env, repo);
  t.match(md.stdout, /#### Impact of this change \(base `main`\)\n\n- ⚠️ metrics: retention shortened 60d → 30d, 30 rows become eligible for deletion \(destructive\)\n- ⚠️ postgres-nightly: keep daily 14 → 7, 7 backups will be pruned \(destructive\)/);
  t.match(md.stdout, /<details><summary>Config diff<\/summary>\n\n```diff\n/);

  // The same base as a file.
  await writeFile(join(repo, 'base.yaml'), git(repo, 'show', 'main:jarvis-db.yaml'));
  const fromFile = cli(['plan', '--base', join(repo, 'base.yaml')], env, repo);
  t.equal(fromFile.code, 0, fromFile.stderr);
  t.match(fromFile.stdout, /postgres-nightly: keep daily 14 → 7, 7 backups will be pruned \(destructive\)/);

  const missing = cli(['plan', '--base', 'no-such-branch'], env, repo);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^error: plan --base no-such-branch: no such file, and no such git ref in /);
});
