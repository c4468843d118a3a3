/**
 * `jarvis-db backup delete ID` (deleteBackupCommand in src/backup/commands.ts): by id, every
 * copy or the one in --repository, through the engine (the lock, a journal); the newest backup
 * may go, the last valid one of a schedule only with --force; an unknown id is one clear line.
 * Backups are catalog entries published through the real writer; no server is needed.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BackupWriter } from '../../src/backup/storage.js';
import { listBackups } from '../../src/backup/catalog.js';
import { copyBackup } from '../../src/backup/operations.js';
import { loadConfig } from '../../src/config/load.js';
import type { Desired } from '../../src/config/types.js';
import { openRepositories } from '../../src/storage/repositories.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

async function setup(dir: string, repositories = false): Promise<{ config: string; desired: Desired }> {
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "postgres://jarvis:s3cret@127.0.0.1:1/jarvis" }', 'storage:', '  path: ./backups',
    ...(repositories ? ['repositories:', '  - { name: local, path: ./backups }', '  - { name: second, path: ./second }'] : []),
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 5 } }', '',
  ].join('\n'));
  return { config, desired: await loadConfig(config) };
}

/** A published backup of schedule nightly, taken on day `day` of November 2026, in the first repository and copied to the others. */
async function publish(desired: Desired, day: number): Promise<string> {
  const [first, ...others] = openRepositories(desired);
  const writer = await BackupWriter.begin({ repository: first!, service: 'postgres', schedule: 'nightly', now: new Date(Date.UTC(2026, 10, day, 3, 0, 1)) });
  await writer.writeStream('dump.pgc', Readable.from([Buffer.from(`dump of day ${day}`)]));
  const { id } = (await writer.publish({ method: 'pg_dump', extra: {} }, new Date(Date.UTC(2026, 10, day, 3, 0, 5)))).manifest;
  for (const to of others) await copyBackup(desired, { id, from: first!.name, to: to.name, env: process.env });
  return id;
}

const ids = async (desired: Desired, repository?: string) =>
  (await listBackups(openRepositories(desired).filter((r) => !repository || r.name === repository))).map((e) => `${e.repository}:${e.manifest.id}`).sort();

function cli(config: string, args: string[]) {
  const r = spawnSync(process.execPath, [BIN, '-c', config, ...args], { encoding: 'utf8', env: { ...process.env, JARVIS_DB_CONFIG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('the newest backup can be deleted by id; the last valid one is refused without --force, and goes with it; each delete is journaled', async (t) => {
  const dir = t.testdir();
  const { config, desired } = await setup(dir);
  const older = await publish(desired, 20);
  const newest = await publish(desired, 21);

  const first = cli(config, ['backup', 'delete', newest]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, new RegExp(`^- deleted ${newest} \\(\\d+ B\\)$`, 'm'));
  t.same(await ids(desired), [`local:${older}`], 'the newest went, the other stays');

  const refused = cli(config, ['backup', 'delete', older]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, new RegExp(`^error: backup ${older} is the last valid backup of nightly; not deleting it\\n\\s*hint: nothing would be left to restore from: pass --force to delete it anyway`, 'm'));
  t.notMatch(refused.stderr, /\n\s+at |s3cret/, 'one line and a hint, no stack trace, no password');
  t.same(await ids(desired), [`local:${older}`], 'still there');

  const forced = cli(config, ['backup', 'delete', older, '--force', '--json']);
  t.equal(forced.code, 0, forced.stderr);
  t.same((JSON.parse(forced.stdout) as { deleted: { id: string }[] }).deleted.map((d) => d.id), [older]);
  t.same(await ids(desired), []);

  const journals = (await readdir(join(dir, 'backups', 'journal'))).filter((n) => n.endsWith('.jsonl'));
  t.equal(journals.length, 3, 'every delete ran through apply: a journal each, the refused one included');
});

t.test('with several repositories, every copy goes, or only the one --repository names', async (t) => {
  const dir = t.testdir();
  const { config, desired } = await setup(dir, true);
  const a = await publish(desired, 20);
  const b = await publish(desired, 21);
  const one = cli(config, ['backup', 'delete', b, '--repository', 'second']);
  t.equal(one.code, 0, one.stderr);
  t.match(one.stdout, `- deleted ${b} from second`);
  t.same(await ids(desired), [`local:${a}`, `local:${b}`, `second:${a}`].sort());
  const all = cli(config, ['backup', 'delete', a]);
  t.equal(all.code, 1, 'the copy in second is its last valid backup there');
  t.same(await ids(desired), [`local:${b}`, `second:${a}`].sort(), 'the copy in local went first; the refused one in second stays');
});

t.test('an id that names no backup is one clear line', async (t) => {
  const { config } = await setup(t.testdir());
  const r = cli(config, ['backup', 'delete', '20261101T000000Z-0000']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^error: .*20261101T000000Z-0000/m);
  t.notMatch(r.stderr, /\n\s+at /);
});
