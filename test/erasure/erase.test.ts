/**
 * `jarvis-db erase --user ID` on the sandbox (PostgreSQL, Redis, Chroma) through the compiled CLI
 * (build first): it needs --auto-approve off a terminal; --dry-run changes nothing; it deletes
 * the user's rows, vectors and keys and anonymizes the users row, the other users untouched;
 * --verify proves it (exit 1 while something is left); a restore of the point taken before the
 * erasure re-applies the tombstone, so the user stays erased; a hostile id never reaches SQL;
 * kill -9 mid-erase leaves a tombstone that a re-run completes.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from '../backup/fixture.js';
import { BIN, cli, holdings, jarvis, sessionKeys } from './fixture.js';

t.test('erase --user on PostgreSQL, Redis and Chroma', async (t) => {
  const j = await jarvis(t);
  const env = j.env;
  const before = await holdings(j);
  const keysOf1 = await sessionKeys(j, 1);
  t.equal(keysOf1.length, 2, 'user 1 has two session keys');

  await t.test('off a terminal it needs --auto-approve and changes nothing', async (t) => {
    const r = cli(['erase', '--user', '1'], env);
    t.equal(r.code, 1);
    t.match(r.stderr.split('\n')[0], /^error: erase is not on a terminal, so it cannot ask for confirmation: pass --auto-approve/);
    t.same(await holdings(j), before);
  });

  await t.test('--dry-run says what would go in each store and changes nothing', async (t) => {
    const r = cli(['erase', '--user', '1', '--dry-run'], env);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^postgres: 14 rows would be deleted \(public\.conversations 2, public\.messages 6, public\.memory 4, public\.sessions 2\); users row present$/m);
    t.match(r.stdout, /^chroma: 5 records would be deleted \(link memory-vectors, collection memories\)$/m);
    t.match(r.stdout, /^redis: 2 keys would be deleted \(link user-sessions, db 0\)$/m);
    t.match(r.stdout, /^Dry run: nothing was erased/m);
    t.same(await holdings(j), before, 'every store as it was');
    t.same(await readdir(join(j.storage, 'tombstones')).catch(() => []), [], 'no tombstone');
  });

  const create = cli(['--json', 'backup', 'create', '--service', 'all'], env);
  t.equal(create.code, 0, create.stderr);
  const point = (JSON.parse(create.stdout) as { points: { id: string }[] }).points[0]!;

  await t.test('erase deletes the user\'s rows, vectors and keys, anonymizes the users row, and leaves the others', async (t) => {
    const r = cli(['erase', '--user', '1', '--auto-approve'], env);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^user "1" erased, tombstone \S+ in local$/m);
    t.match(r.stdout, /^  postgres: \d+ rows deleted \(.*public\.memory 4.*public\.sessions 2.*\); users row anonymized$/m);
    t.match(r.stdout, /^  chroma: 5 records deleted \(link memory-vectors, collection memories\)$/m);
    t.match(r.stdout, /^  redis: 2 keys deleted \(link user-sessions, db 0\)$/m);
    const after = await holdings(j) as { rows: Record<string, unknown>[]; vectors: Record<string, string[]>; keys: string[] };
    const was = before as typeof after;
    t.match(after.rows[0], { user: 1, display_name: '[redacted]', anonymized: true, conversations: 0, messages: 0, memory: 0, sessions: 0 });
    t.match(after.rows[0]!.email, /^user-[0-9a-f]{32}@anon\.invalid$/);
    t.same(after.rows.slice(1), was.rows.slice(1), 'users 2 and 3 untouched');
    t.equal(after.vectors['1'], undefined, 'no vector of user 1 (the one with user_id only included)');
    t.same([after.vectors['2'], after.vectors['3']], [was.vectors['2'], was.vectors['3']]);
    t.same(after.keys, was.keys.filter((k) => !keysOf1.includes(k)), 'only user 1\'s session keys went');
    t.equal((await readdir(join(j.storage, 'tombstones'))).filter((n) => !n.startsWith('.')).length, 1, 'one tombstone in the repository');
  });

  await t.test('erase --verify proves it, and exits 1 for a user whose data is there', async (t) => {
    const ok = cli(['erase', '--verify', '--user', '1'], env);
    t.equal(ok.code, 0, ok.stdout + ok.stderr);
    t.match(ok.stdout, /^User "1" is erased: nothing of them is left in any store \(1 tombstone recorded\)\.$/m);
    const no = cli(['erase', '--verify', '--user', '2'], env);
    t.equal(no.code, 1);
    t.match(no.stdout, /^! postgres: 4 left in public\.memory rows$/m);
    t.match(no.stdout, /^! chroma: 4 left in memory-vectors: collection memories$/m);
    t.match(no.stdout, /^! redis: 2 left in user-sessions: db 0$/m);
    t.match(no.stdout, /^User "2" is NOT erased/m);
  });

  await t.test('a restore of the point taken before the erasure re-applies its tombstone', async (t) => {
    const r = cli(['restore', '--point', point.id, '--target-db', 'erase_db', '--force', '--flush'], env);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^Tombstones: 1 tombstone applied \(erasures since \S+\): \d+ rows, 5 Chroma records, 2 Redis keys removed again$/m);
    const after = await holdings(j) as { rows: Record<string, unknown>[]; vectors: Record<string, string[]>; keys: string[] };
    const was = before as typeof after;
    t.match(after.rows[0], { user: 1, display_name: '[redacted]', anonymized: true, conversations: 0, messages: 0, memory: 0, sessions: 0 }, 'user 1 stays erased in PostgreSQL');
    t.equal(after.vectors['1'], undefined, 'and in Chroma');
    t.same(after.keys, was.keys.filter((k) => !keysOf1.includes(k)), 'and in Redis');
    t.same(after.rows.slice(1), was.rows.slice(1), 'the others are back as at the point');
    t.equal(cli(['erase', '--verify', '--user', '1'], env).code, 0, 'verify agrees');
  });

  await t.test('restore ID of one member re-applies the tombstone to the database it writes; a backup taken after the erasure has none to apply', async (t) => {
    const members = (JSON.parse(create.stdout) as { points: { members: { service: string; id: string }[] }[] }).points[0]!.members;
    const pgBackup = members.find((m) => m.service === 'postgres')!.id;
    const r = cli(['restore', pgBackup, '--target-db', 'erase_copy'], env);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^Tombstones: 1 tombstone applied \(erasures since \S+\): 14 rows, 0 Chroma records, 0 Redis keys removed again$/m, 'only PostgreSQL was restored');
    const copy = (await sql(j.pgUrl.replace('/erase_db', '/erase_copy'), 'SELECT user_id::int AS u, count(*)::int AS n FROM memory GROUP BY 1 ORDER BY 1'))[0]!.rows;
    t.same(copy, [{ u: 2, n: 4 }, { u: 3, n: 4 }], 'user 1 has no memory in the restored copy');
    const later = cli(['--json', 'backup', 'create', '--service', 'redis'], env);
    t.equal(later.code, 0, later.stderr);
    const id = (JSON.parse(later.stdout) as { backups: { id: string }[] }).backups[0]!.id;
    const again = cli(['restore', id, '--flush'], env);
    t.equal(again.code, 0, again.stderr);
    t.match(again.stdout, /^Tombstones: 0 tombstones applied \(no erasure recorded since the backup was taken\)$/m);
  });

  await t.test('a retention policy with action: erase erases every user past its age from every store, and counts an erased one no more', async (t) => {
    const config = j.config.replace(/\.yaml$/, '-retention.yaml');
    await writeFile(config, (await readFile(j.config, 'utf8')) + [
      'retention:', '  policies:', '    - { name: users-erase, table: users, age: { column: last_active_at, olderThan: 1y }, action: erase }', '',
    ].join('\n'));
    const renv = { ...env, JARVIS_DB_CONFIG: config };
    await sql(j.pgUrl, `UPDATE users SET last_active_at = now() - interval '2 years' WHERE id IN (1, 3)`);
    const plan = JSON.parse(cli(['--json', 'plan', '--target', 'retention'], renv).stdout) as { actions: { id: string; type: string; risk: string; reason: string; services: string[] }[] };
    t.match(plan.actions, [{ id: 'retention.erase.users-erase', type: 'retention_erase', risk: 'destructive', services: ['postgres', 'redis', 'chroma'] }], 'planned, destructive, reaching every linked store');
    t.match(plan.actions[0]!.reason, /^1 user older than 1y not yet erased \(last_active_at < \S+\), erased from every store per the links/, 'user 1, erased already, is not counted');
    const r = cli(['retention', 'run', '--policy', 'users-erase', '--auto-approve'], renv);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout + r.stderr, /1 user of users erased \(users-erase\): 14 rows deleted, 4 Chroma records, 2 Redis keys; a tombstone each/);
    t.equal(cli(['erase', '--verify', '--user', '3'], renv).code, 0, 'user 3 is erased everywhere');
    t.match(((await holdings(j)) as { rows: Record<string, unknown>[] }).rows[1], { user: 2, memory: 4, sessions: 2 }, 'user 2, active, untouched');
    t.notMatch(cli(['plan', '--target', 'retention'], renv).stdout, /retention\.erase\.users-erase/, 'nothing left to erase');
  });

  await t.test('a hostile user id is a value, never SQL', async (t) => {
    for (const id of ['1; DROP TABLE users; --', "1' OR '1'='1", '$1']) {
      const r = cli(['erase', '--user', id, '--dry-run'], env);
      t.equal(r.code, 1, `${id} refused`);
      t.match(r.stderr.split('\n')[0], /^error: --user ".*" is not a valid bigint \(the type of public\.users\.id\)$/);
      t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    t.equal(((await sql(j.pgUrl, 'SELECT count(*)::int AS n FROM users'))[0]!.rows[0] as { n: number }).n, 3, 'users is still there');
  });

  await t.test('kill -9 mid-erase: the tombstone is there, a re-run completes it', async (t) => {
    const keysOf2 = await sessionKeys(j, 2);
    // Killed after the tombstone, before any store: the tombstone is recorded, nothing is touched yet.
    const pausedAt = async (point: string) => {
      const child = spawn(process.execPath, [BIN, 'erase', '--user', '2', '--auto-approve'], { env: { ...process.env, ...env, JARVIS_DB_TEST_PAUSE_AT: point }, stdio: ['ignore', 'ignore', 'pipe'] });
      const exited = new Promise((r) => child.once('exit', r));
      await new Promise<void>((resolve, reject) => {
        let err = '';
        child.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes(`test pause at ${point}`)) resolve(); });
        child.once('exit', () => reject(new Error(`exited before the pause: ${err}`)));
      });
      child.kill('SIGKILL');
      await exited;
    };
    const tombstones = async () => (await readdir(join(j.storage, 'tombstones'))).filter((n) => !n.startsWith('.')).length;
    const already = await tombstones();
    await pausedAt('tombstone-before-manifest');
    t.equal(await tombstones(), already, 'killed before its tombstone is published: no tombstone of user 2');
    t.match((await holdings(j) as { rows: Record<string, unknown>[] }).rows[1], { memory: 4, sessions: 2 }, 'and nothing of user 2 touched');
    await pausedAt('erase-after-chroma');
    t.equal(await tombstones(), already + 1, 'the tombstone was recorded before the first store was touched');
    const half = await holdings(j) as { rows: Record<string, unknown>[]; vectors: Record<string, string[]>; keys: string[] };
    t.equal(half.vectors['2'], undefined, 'killed after Chroma: the vectors are gone');
    t.match(half.rows[1], { memory: 4, sessions: 2 }, 'the rows are still there');
    t.ok(keysOf2.every((k) => half.keys.includes(k)), 'the session keys too');
    const again = cli(['erase', '--user', '2', '--auto-approve'], env);
    t.equal(again.code, 0, again.stderr);
    const verify = cli(['erase', '--verify', '--user', '2'], env);
    t.equal(verify.code, 0, verify.stdout);
    const done = await holdings(j) as { keys: string[] };
    t.ok(keysOf2.every((k) => !done.keys.includes(k)), 'its session keys are gone');
  });
});
