/**
 * `jarvis-db retention preview|run` and `jarvis-db archive list|verify|restore` end to end
 * (compiled CLI: build first with npx tsc -p tsconfig.json), with the project's own default
 * policies (policies/*.yaml) on the JARVIS data model.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireApplyLock } from '../../src/engine/lock.js';
import { runsOfAction } from '../helpers/journal.js';
import { freshDatabase, seed, snapshot, sql } from './fixture.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'jarvis-db.js');

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', input: '' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, all: r.stdout + r.stderr };
}

// Each test has a server, a database and a project directory of its own (freshDatabase starts one
// per test): three at a time, the file's time being wall time.
t.jobs = 3;

async function project(dir: string, extra: string[] = []): Promise<string> {
  await cp(join(ROOT, 'policies'), join(dir, 'policies'), { recursive: true });
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, ['version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./storage }', 'retention:', '  include: [./policies/*.yaml]', ...extra, ''].join('\n'));
  return config;
}

/** Data that every default policy has work for. */
async function jarvisData(url: string): Promise<void> {
  await seed(url, { users: 40, conversations: 80, messages: 2000, days: 200 });
  await sql(url, `
    INSERT INTO sessions (user_id, token_hash, created_at, expires_at) SELECT 1 + i % 40, md5(i::text), now() - (i || ' days')::interval - interval '1 day', now() - (i || ' days')::interval + interval '12 hours' FROM generate_series(1, 60) i;
    INSERT INTO metrics (name, value, recorded_at) SELECT 'latency', i, now() - (i || ' hours')::interval FROM generate_series(1, 1500) i;
    INSERT INTO cache_entries (key, value, created_at) SELECT 'k' || i, jsonb_build_object('v', i), now() - (i || ' hours')::interval FROM generate_series(1, 400) i;
    UPDATE conversations SET updated_at = created_at;`);
}

t.test('the default policies preview cleanly on the JARVIS data model, and run', async (t) => {
  const url = await freshDatabase(t);
  await jarvisData(url);
  const dir = t.testdir();
  const config = await project(dir);
  const env = { JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config };
  const preview = cli(['retention', 'preview'], env);
  t.equal(preview.code, 0, preview.stderr);
  for (const id of ['retention.archive.conversations-archive', 'retention.archive.messages-archive', 'retention.anonymize.users-anonymize',
    'retention.delete.metrics-delete', 'retention.delete.cache-entries-delete', 'retention.delete.sessions-delete']) t.match(preview.stdout, id);
  t.match(preview.stdout, /^ {2}- retention_delete public\.sessions DESTRUCTIVE {2}retention\.delete\.sessions-delete\n {6}30 rows older than 30d \(expires_at < \S+\) \(30 rows, ~\d/m);
  t.match(preview.stdout, /^ {2}~ retention_archive public\.conversations {2}retention\.archive\.conversations-archive\n {6}\d+ rows older than 90d \(updated_at < \S+\), with [\d,]+ rows of public\.messages/m);
  t.match(preview.stdout, /^Plan: 0 to create, 3 to change, 3 to destroy\.$/m);
  t.match(preview.stdout, /rows of public\.messages; also sets public\.memory\(conversation_id\) to NULL \(ON DELETE SET NULL\)/, 'what ON DELETE SET NULL does is in the reason');
  t.notMatch(preview.stdout, /! WARNING retention\.reference/, 'not a warning on every plan');
  t.notMatch(preview.all, new URL(url).password, 'the password is never printed');
  const json = JSON.parse(cli(['retention', 'preview', '--json'], env).stdout) as { actions: { id: string; params: { cutoff: string } }[]; errors: unknown[] };
  t.same(json.errors, []);
  t.ok(json.actions.every((a) => !Number.isNaN(Date.parse(a.params.cutoff))), 'every action has an absolute cut-off');

  const refused = cli(['retention', 'run'], env);
  t.equal(refused.code, 1, 'destructive actions need a yes');
  t.match(refused.stderr, /^error: 4 destructive retention actions need confirmation; nothing was run\nhint: run on a terminal to confirm, or pass --auto-approve$/m);
  t.equal((await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM sessions`))[0]!.n, 60, 'nothing was run');

  const one = cli(['retention', 'run', '--policy', 'sessions-delete', '--auto-approve'], env);
  t.equal(one.code, 0, one.stderr);
  t.match(one.stderr, /^\[1\/1\] - retention_delete public\.sessions \(destructive\)\n {6}done in [\d.]+m?s: deleted 30 rows of public\.sessions in 1 batch \(longest [\d.]+m?s\); then VACUUM \(ANALYZE\) of public\.sessions in [\d.]+m?s$/m, 'one batch, one unit style, and the vacuum of a table that lost most of its rows');
  t.match(one.stdout, /^Apply complete: 1 action done in /m, '--policy runs that policy only');
  t.match(one.stdout, /^Journal: .*\/storage\/journal\/\S+\.jsonl$/m, 'journaled like an apply');

  const all = cli(['retention', 'run', '--auto-approve'], env);
  t.equal(all.code, 0, all.stderr);
  t.match(all.stderr, /~ retention_archive public\.messages\n {6}done in [\d.]+m?s: archived [\d,]+ rows of public\.messages into archive/);
  t.match(all.stdout, /^Apply complete: 5 actions done in /m);
  const again = cli(['retention', 'preview'], env);
  t.match(again.stdout, /^No changes\. Observed state matches jarvis-db\.yaml\.$/m);
  t.match(again.stdout, /^POLICY +TABLE +ACTION +ELIGIBLE +CUT-OFF\n/, 'with nothing due, a line per policy still says what it would touch');
  for (const [policy, table, action] of [['conversations-archive', 'conversations', 'archive'], ['sessions-delete', 'sessions', 'delete'], ['users-anonymize', 'users', 'anonymize']]) {
    t.match(again.stdout, new RegExp(`^${policy} +${table} +${action} +0 +\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`, 'm'), `${policy}: 0 rows now eligible, and its cut-off`);
  }
  const quiet = JSON.parse(cli(['retention', 'preview', '--json'], env).stdout) as { policies: { policy: string; rows: number }[] };
  t.same(quiet.policies.map((p) => p.rows), quiet.policies.map(() => 0), 'the JSON has the same lines');
  const unknown = cli(['retention', 'run', '--policy', 'nope'], env);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /^error: no retention policy named "nope" in .*\nhint: policies: conversations-archive, messages-archive, /);
});

t.test('a plan error stops preview and run with one line naming the policy', async (t) => {
  const url = await freshDatabase(t, { empty: true });
  const dir = t.testdir();
  const config = await project(dir);
  const env = { JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config };
  const preview = cli(['retention', 'preview', '--policy', 'metrics-delete'], env);
  t.equal(preview.code, 1);
  t.match(preview.stdout, /^ {2}✗ retention: policy "metrics-delete": table "metrics" does not exist \(policies\/operational\.yaml policies\[0\]\)$/m);
  const run = cli(['retention', 'run', '--auto-approve'], env);
  t.equal(run.code, 1);
  t.match(run.stdout, /^Apply failed: 0 done, 0 failed, 0 not executed .*\n {2}✗ retention: policy "conversations-archive": table "conversations" does not exist \(policies\/conversations\.yaml policies\[0\]\)/);
  t.notMatch(run.stdout + run.stderr, /\n\s+at /, 'no stack trace');
});

t.test('archive list, verify and restore; a damaged chunk fails verify; expired archives are pruned by the next run', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 60, messages: 1200, days: 200 });
  const before = await snapshot(url, 'messages');
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, ['version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./storage }', 'retention:', '  policies:',
    '    - { name: old-messages, table: messages, age: { column: created_at, olderThan: 90d }, action: archive, batchSize: 100, archive: { deleteAfter: 1y } }', ''].join('\n'));
  const env = { JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config };
  t.equal(cli(['retention', 'run'], env).code, 0, 'archive is not destructive: no confirmation needed');
  const list = JSON.parse(cli(['archive', 'list', '--json'], env).stdout) as { archives: { id: string; rows: number; chunks: number; table: string }[] };
  t.equal(list.archives.length, 1);
  const a = list.archives[0]!;
  const chunks = Math.ceil(a.rows / 100);
  t.match(a, { table: 'public.messages', chunks });
  t.match(cli(['archive', 'list'], env).stdout, new RegExp(`^ID +POLICY +TABLE .*\\n${a.id} +old-messages +public\\.messages .* ${chunks} +${a.rows.toLocaleString('en-US')} .* ok\\n$`));
  const ok = cli(['archive', 'verify', a.id], env);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, `ok archive ${a.id} (old-messages, public.messages): ${chunks} chunk${chunks === 1 ? '' : 's'}, ${a.rows.toLocaleString('en-US')} rows`);

  const archiveDir = join(dir, 'storage', 'archives', 'old-messages', a.id);
  const victim = join(archiveDir, (await readdir(archiveDir)).find((f) => /\.jsonl\.(gz|zst)$/.test(f))!);
  const bytes = await readFile(victim);
  bytes[20]! ^= 0xff;
  await writeFile(victim, bytes);
  const bad = cli(['archive', 'verify', a.id], env);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^error: archive \S+ failed verification: chunk-000001: /m);
  const refused = cli(['archive', 'restore', a.id], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^error: archive \S+ fails verification: chunk-000001: .*\nhint: jarvis-db archive verify \S+ lists every problem\n$/);
  bytes[20]! ^= 0xff;
  await writeFile(victim, bytes);

  const restored = cli(['archive', 'restore', a.id], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, `+ public.messages: ${a.rows.toLocaleString('en-US')} rows restored`);
  t.same(await snapshot(url, 'messages'), before);
  t.match(cli(['archive', 'restore', 'nope'], env).stderr, /^error: no archive "nope" in .*\nhint: list them with `jarvis-db archive list`\n$/);

  // A year on, the archive's rows are all older than deleteAfter: the next run plans its deletion.
  await writeFile(config, (await readFile(config, 'utf8')).replace('deleteAfter: 1y', 'deleteAfter: 1s'));
  const preview = cli(['retention', 'preview'], env);
  t.match(preview.stdout, new RegExp(`^ {2}- prune_archive ${a.id} DESTRUCTIVE {2}retention\\.prune\\.${a.id}\\n {6}archive of old-messages holds rows older than \\S+, past deleteAfter 1s`, 'm'));
  const pruned = cli(['retention', 'run', '--auto-approve', '--policy', 'old-messages'], env);
  t.equal(pruned.code, 0, pruned.stderr);
  t.match(pruned.stderr, `: archive ${a.id} of old-messages deleted`);
  t.same(JSON.parse(cli(['archive', 'list', '--json'], env).stdout).archives.map((x: { id: string }) => x.id).filter((id: string) => id === a.id), [], 'the expired archive is gone');
});

t.test('archive restore is an apply: it waits for the apply lock, fails clearly after --lock-timeout, and is journaled', async (t) => {
  const url = await freshDatabase(t);
  await seed(url, { conversations: 20, messages: 300, days: 200 });
  const dir = t.testdir();
  const storage = join(dir, 'storage');
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, ['version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage: { path: ./storage }', 'retention:', '  policies:',
    '    - { name: old-messages, table: messages, age: { column: created_at, olderThan: 90d }, action: archive, batchSize: 100, archive: { deleteAfter: 1y } }', ''].join('\n'));
  const env = { JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config };
  t.equal(cli(['retention', 'run'], env).code, 0);
  const id = (JSON.parse(cli(['archive', 'list', '--json'], env).stdout) as { archives: { id: string }[] }).archives[0]!.id;
  const lock = await acquireApplyLock(storage, { timeoutMs: 0, runId: 'test-holder' });
  try {
    const r = cli(['archive', 'restore', id, '--lock-timeout', '1s'], env);
    t.equal(r.code, 1, 'it fails while another holds the lock');
    t.match(r.stderr, /waiting up to 1s for the lock on /);
    t.match(r.stderr, new RegExp(`^error: another apply holds the lock on .*pid ${process.pid}.*run test-holder.*; gave up after 1s$`, 'm'), 'naming the holder');
  } finally {
    await lock.release();
  }
  const restored = cli(['archive', 'restore', id], env);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /^\+ public\.messages: [\d,]+ rows restored/m);
  const actionId = `retention.restore.${id}`;
  t.same(await runsOfAction(storage, actionId), [[['run_started', null], ['plan', null], ['action_started', actionId], ['action_done', actionId], ['run_finished', null]]], 'one journaled run');
});
