/**
 * Chroma backups through the compiled CLI (build first: npx tsc -p tsconfig.json): plan and
 * apply of a chroma schedule, backup create / list / verify --restore-test, and restore with
 * --collection, --as, --force.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromaSandbox, snapshot, seedCollections } from './fixture.js';

const BIN = new URL('../../../bin/jarvis-db.js', import.meta.url).pathname;

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('plan and apply a chroma schedule; backup create, verify --restore-test and restore --collection/--as/--force through the CLI', async (t) => {
  const { chroma } = await chromaSandbox(t);
  await seedCollections(chroma.url, 40);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  chroma: { url: "${JARVIS_CHROMA_URL}" }', 'storage:', '  path: ./backups',
    'backups:', '  - { name: chroma-daily, service: chroma, cron: "30 3 * * *", keep: { daily: 14 } }', '',
  ].join('\n'));
  const env = { JARVIS_CHROMA_URL: chroma.url, JARVIS_DB_CONFIG: config };
  // the engine plans and applies a chroma schedule like any other
  const plan = cli(['plan'], env);
  t.equal(plan.code, 0, plan.stderr);
  t.match(plan.stdout, /\+ create_backup chroma-daily[\s\S]*Plan: 1 to create, 0 to change, 0 to destroy\./);
  const apply = cli(['apply', '--auto-approve'], env);
  t.equal(apply.code, 0, apply.stderr);
  t.match(apply.stdout, /Apply complete: 1 action done/);
  t.match(cli(['plan'], env).stdout, /No changes\./);

  const create = cli(['backup', 'create', '--service', 'chroma'], env);
  t.equal(create.code, 0, create.stderr);
  t.match(create.stdout, /\+ chroma\/chroma-daily \S+: .* in 4 files/);
  const list = JSON.parse(cli(['backup', 'list', '--json'], env).stdout) as { backups: { id: string; service: string }[] };
  t.same(list.backups.map((b) => b.service), ['chroma', 'chroma']);
  const id = list.backups[0]!.id;

  const verify = cli(['backup', 'verify', id, '--restore-test'], env);
  t.equal(verify.code, 0, verify.stderr);
  t.match(verify.stdout, /ok chroma\/chroma-daily .*4 collections, 124 records restored into scratch collections/);

  const refused = cli(['restore', id], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /\nerror: collections "empty-one", "memories-cosine", "memories-l2", "notes-ip" already exist .*\nhint: .*--force/);
  t.notMatch(refused.stderr, /\n\s+at /, 'no stack trace');
  t.equal(cli(['restore', id, '--target-dir', 'x'], env).code, 1, '--target-dir is for physical backups');
  t.match(cli(['restore', id, '--flush'], env).stderr, /--flush is for redis backups; this is a chroma backup/);

  const copy = cli(['restore', id, '--collection', 'notes-ip', '--as', 'notes-ip-copy', '--json'], env);
  t.equal(copy.code, 0, copy.stderr);
  t.same((JSON.parse(copy.stdout) as { collections: { as: string }[] }).collections.map((c) => c.as), ['notes-ip-copy']);
  t.same((await snapshot(chroma.url, 'notes-ip-copy')).records, (await snapshot(chroma.url, 'notes-ip')).records);

  const forced = cli(['restore', id, '--force'], env);
  t.equal(forced.code, 0, forced.stderr);
  t.match(forced.stdout, /4 collections .* 124 records; counts and checksums match/);
});
