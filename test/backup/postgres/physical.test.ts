/**
 * Physical PostgreSQL backups (method: physical, pg_basebackup) on the sandbox server: a base
 * backup restores into a data directory that starts with a stock pg_ctl and holds the data of
 * the backup's moment; encrypted too; verify runs pg_verifybackup; kill -9 in the middle leaves
 * nothing listed and the next run removes the debris; format with physical is a config error.
 */
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findBackup, listBackups } from '../../../src/backup/catalog.js';
import { createBackup, restoreBackup, verifyBackup } from '../../../src/backup/operations.js';
import { chooseCompression, INCOMPLETE_MARKER, progressOf, walRangeOf } from '../../../src/backup/postgres/physical.js';
import { MANIFEST, hashFile, sealManifest, type CatalogEntry } from '../../../src/backup/storage.js';
import { loadConfig } from '../../../src/config/load.js';
import type { Desired } from '../../../src/config/types.js';
import { freePort, postgresBinDir } from '../../../src/scratch/servers.js';
import { backupKiller, hiddenDirs } from '../../helpers/kill.js';
import { freshDatabase, makeDesired, sql } from '../fixture.js';

const run = promisify(execFile);
const BIN = new URL('../../../bin/jarvis-db.js', import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;

const SEED = `
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(10,2), placed_at timestamptz, notes jsonb);
INSERT INTO orders SELECT i, 'customer ' || (i % 97), (i % 1000) / 3.0, timestamptz '2026-11-01' + (i || ' minutes')::interval,
  jsonb_build_object('i', i, 'tag', 'ünïcødé ' || (i % 5)) FROM generate_series(1, 30000) i;
CREATE TABLE lines (order_id bigint REFERENCES orders(id), sku text, qty int);
INSERT INTO lines SELECT 1 + i % 30000, 'sku-' || (i % 321), i % 7 FROM generate_series(1, 50000) i;
CREATE INDEX lines_order ON lines(order_id);
`;

/** Row counts and an order-independent digest of every row of each table. */
async function fingerprint(url: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of ['orders', 'lines']) {
    const [r] = await sql(url, `SELECT count(*)::text || ':' || coalesce(md5(string_agg(h, '' ORDER BY h)), '') AS f FROM (SELECT md5(x::text) AS h FROM ${table} x) s`);
    out[table] = (r!.rows[0] as { f: string }).f;
  }
  return out;
}

function physicalDesired(url: string, storage: string, schedule: Record<string, unknown> = {}, encryption?: string): Desired {
  const desired = makeDesired(url, storage, { method: 'physical', ...schedule }, encryption);
  delete desired.backups[0]!.format;
  delete desired.backups[0]!.jobs;
  return desired;
}

/** A directory the postgres user can reach (test dirs may sit under a 0700 parent). */
async function restoreTarget(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), 'jarvis-db-physical-'));
  await chmod(parent, 0o755);
  t.teardown(() => rm(parent, { recursive: true, force: true }));
  return join(parent, 'restored');
}

const asPostgres = (cmd: string, args: string[]) => (isRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));

/** Starts the restored directory with a stock `pg_ctl start` (its own port), returns its URL and a stop function. */
async function startRestored(t: { teardown(fn: () => unknown): void }, dir: string, sourceUrl: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const bin = await postgresBinDir();
  const port = await freePort();
  const log = join(dir, '..', 'restored.log');
  if (isRoot) { await writeFile(log, ''); await run('chown', ['postgres', log]); }
  await asPostgres(join(bin, 'pg_ctl'), ['-D', dir, '-l', log, '-o', `-p ${port}`, '-w', '-t', '120', 'start']);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await asPostgres(join(bin, 'pg_ctl'), ['-D', dir, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
  };
  t.teardown(stop);
  const u = new URL(sourceUrl);
  u.port = String(port);
  return { url: u.toString(), stop };
}

t.test('pure parts: compression choice, the WAL range of a backup_manifest, progress lines', async (t) => {
  t.same(chooseCompression(3, ['gzip', 'zstd', 'lz4']), { algorithm: 'zstd', level: 3 }, 'zstd first');
  t.same(chooseCompression(3, ['gzip', 'lz4']), { algorithm: 'lz4', level: 3 });
  t.same(chooseCompression(1, ['gzip']), { algorithm: 'gzip', level: 1 });
  t.same(chooseCompression(0, ['gzip', 'zstd']), { algorithm: 'none', level: 0 }, 'level 0 is no compression');
  const manifest = JSON.stringify({ 'PostgreSQL-Backup-Manifest-Version': 1, Files: [], 'WAL-Ranges': [{ Timeline: 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/2000100' }] });
  t.same(walRangeOf(manifest), { timeline: 1, startLsn: '0/2000028', stopLsn: '0/2000100' });
  t.throws(() => walRangeOf('{}'), { code: 'BACKUP_FAILED' });
  t.same(progressOf('   12345/67890 kB (18%), 0/1 tablespace'), { doneKb: 12345, totalKb: 67890 });
  t.equal(progressOf('pg_basebackup: checkpoint completed'), null);
});

t.test('a physical backup restores into a directory that starts with pg_ctl and holds the data of the backup', async (t) => {
  const db = await freshDatabase(t, 'phys');
  await sql(db.url, SEED);
  const before = await fingerprint(db.url);
  const storage = t.testdir();
  const desired = physicalDesired(db.url, storage);
  const updates: [number, number | undefined][] = [];
  const progress = { note: () => undefined, update: (n: number, total?: number) => updates.push([n, total]) };
  const entry = await createBackup(desired, desired.backups[0]!, process.env, progress);
  const m = entry.manifest;
  t.equal(m.method, 'pg_basebackup');
  t.equal(m.format, 'tar');
  t.match(m.compression, /^(zstd|lz4|gzip):1$/, `compression recorded (${m.compression})`);
  const names = m.files.map((f) => f.name);
  t.ok(names.includes('backup_manifest'), 'backup_manifest kept');
  t.ok(names.some((n) => /^base\.tar(\.(zst|lz4|gz))?$/.test(n)), `base tar stored (${names.join(', ')})`);
  t.ok(names.some((n) => /^pg_wal\.tar/.test(n)), 'the streamed WAL stored beside it');
  t.match(m.extra, { timeline: 1, startLsn: /^[0-9A-F]+\/[0-9A-F]+$/, stopLsn: /^[0-9A-F]+\/[0-9A-F]+$/, label: `jarvis-db ${m.id}` });
  const [sys] = await sql(db.url, 'SELECT system_identifier::text AS s FROM pg_control_system()');
  t.equal(m.extra.systemIdentifier, (sys!.rows[0] as { s: string }).s, 'system identifier recorded');
  t.same((m.extra.rowCounts as Record<string, number>), { 'public.lines': 50000, 'public.orders': 30000 });
  t.ok(updates.some(([, total]) => (total ?? 0) > 0), 'pg_basebackup -P progress reached ctx.progress');
  const label = await readFile(join(entry.dir, 'backup_manifest'), 'utf8');
  t.match(JSON.parse(label), { 'WAL-Ranges': [{ 'Start-LSN': m.extra.startLsn }] }, 'the stored backup_manifest is pg_basebackup\'s');

  // Written after the backup: the restored cluster must not have it.
  await sql(db.url, `INSERT INTO orders VALUES (999999, 'late', 1, now(), '{}'); DELETE FROM lines WHERE qty = 3`);

  const dir = await restoreTarget(t);
  const result = await restoreBackup(desired, m.id, { force: false, targetDir: dir, env: process.env });
  t.match(result.summary, new RegExp(`restored ${m.id} into ${dir} .*pg_ctl -D ${dir}`));
  const s = await stat(dir);
  t.equal(s.mode & 0o777, 0o700, 'the data directory is 0700');
  if (isRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    t.equal(s.uid, Number(stdout.trim()), 'owned by postgres when running as root');
  }
  t.ok((await readdir(join(dir, 'pg_wal'))).some((n) => /^[0-9A-F]{24}$/.test(n)), 'pg_wal holds the streamed segments');

  const restored = await startRestored(t, dir, db.url);
  t.same(await fingerprint(restored.url), before, 'identical rows: counts and digests of every table');
  const [late] = await sql(restored.url, 'SELECT count(*)::int AS n FROM orders WHERE id = 999999');
  t.equal((late!.rows[0] as { n: number }).n, 0, 'what was written after the backup is not there');
  await restored.stop();

  await t.rejects(restoreBackup(desired, m.id, { force: false, targetDir: dir, env: process.env }), { code: 'RESTORE_REFUSED', message: /is not empty/ }, 'a non-empty directory is refused');
  await t.rejects(restoreBackup(desired, m.id, { force: false, target: 'x', env: process.env }), { code: 'USAGE', message: /--target-dir/ }, '--target-db does not apply');
  await t.rejects(restoreBackup(desired, m.id, { force: false, env: process.env }), { code: 'USAGE', message: /pass --target-dir DIR/ });
  const interrupted = await restoreTarget(t);
  await mkdir(interrupted);
  await writeFile(join(interrupted, INCOMPLETE_MARKER), `${m.id} 12345 2026-12-03T07:00:00Z\n`);
  await t.rejects(restoreBackup(desired, m.id, { force: false, targetDir: interrupted, env: process.env }), { code: 'RESTORE_REFUSED', message: /is not empty \(an interrupted restore\)/ }, 'the leftover of an interrupted restore says so');
  const again = await restoreBackup(desired, m.id, { force: true, targetDir: dir, env: process.env });
  t.equal(again.target, dir, '--force replaces what was in it');

  // A flipped byte inside the compressed base tar, its checksum resealed.
  const base = m.files.find((f) => f.name.startsWith('base.tar'))!;
  const compressed = await readFile(join(entry.dir, base.name));
  compressed[Math.floor(compressed.length / 2)]! ^= 0x10;
  await writeFile(join(entry.dir, base.name), compressed);
  await reseal(await findBackup(storage, m.id), base.name);
  const damaged = await verifyBackup(desired, await findBackup(storage, m.id), { restoreTest: false, env: process.env });
  t.notOk(damaged.ok, 'a damaged compressed tar fails verification although its checksum was resealed');
  // The decompressor notices (gzip's CRC) or, where frames carry no checksum (pg_basebackup's zstd),
  // pg_verifybackup does, on the file the flipped byte landed in.
  t.match(damaged.message, new RegExp(`^content check failed: (unpacking ${base.name.replace(/\./g, '\\.')} of ${m.id} failed: |pg_verifybackup: checksum mismatch for file "base/)`));
});

t.test('an encrypted physical backup stores only encrypted files and restores to identical data', async (t) => {
  const db = await freshDatabase(t, 'physenc');
  await sql(db.url, SEED);
  const before = await fingerprint(db.url);
  process.env.JARVIS_TEST_PHYSICAL_KEY = 'correct horse battery staple';
  t.teardown(() => { delete process.env.JARVIS_TEST_PHYSICAL_KEY; });
  const storage = t.testdir();
  const desired = physicalDesired(db.url, storage, {}, 'JARVIS_TEST_PHYSICAL_KEY');
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  t.ok(entry.manifest.encrypted);
  t.ok(entry.manifest.files.every((f) => f.name.endsWith('.enc')), 'every stored file is encrypted');
  const manifestFile = entry.manifest.files.find((f) => f.name === 'backup_manifest.enc')!;
  const stored = await readFile(join(entry.dir, manifestFile.name));
  t.notOk(stored.includes(Buffer.from('WAL-Ranges')), 'the backup_manifest is not readable in the store');
  const dir = await restoreTarget(t);
  await restoreBackup(desired, entry.manifest.id, { force: false, targetDir: dir, env: process.env });
  const restored = await startRestored(t, dir, db.url);
  t.same(await fingerprint(restored.url), before, 'identical rows after decrypting');
  await restored.stop();
  const v = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: false, env: process.env });
  t.ok(v.ok, v.message);
  t.match(v.message, /pg_verifybackup/);
});

/** Flips a byte in the middle of the first large member of an uncompressed tar (file data, not a header). */
function flipInsideMember(tar: Buffer): { member: string; at: number } {
  let offset = 0;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    const name = header.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    if (!name) break;
    const size = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    if (size > 16384 && /^base\/\d+\/\d+$/.test(name)) {
      const at = offset + 512 + Math.floor(size / 2);
      tar[at]! ^= 0x20;
      return { member: name, at };
    }
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error('no large relation file in the tar');
}

async function reseal(entry: CatalogEntry, name: string): Promise<void> {
  const { manifestSha256: _s, ...rest } = entry.manifest;
  const files = await Promise.all(rest.files.map(async (f) => (f.name === name ? { name, ...(await hashFile(join(entry.dir, name))) } : f)));
  await writeFile(join(entry.dir, MANIFEST), JSON.stringify(sealManifest({ ...rest, files }), null, 2));
}

t.test('verify runs pg_verifybackup: a flipped byte in a data file is caught by the checksum, and by pg_verifybackup once resealed; the restore test starts the copy', async (t) => {
  const db = await freshDatabase(t, 'physver');
  await sql(db.url, SEED);
  const storage = t.testdir();
  const desired = physicalDesired(db.url, storage, { compression: 0 });
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  t.ok(entry.manifest.files.some((f) => f.name === 'base.tar'), 'compression 0: a plain base.tar');
  const good = await verifyBackup(desired, entry, { restoreTest: false, env: process.env });
  t.ok(good.ok, good.message);
  t.match(good.message, /checksums match; pg_verifybackup: every file matches backup_manifest/);

  const restoreTest = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: true, env: process.env });
  t.ok(restoreTest.ok, restoreTest.message);
  t.match(restoreTest.message, /scratch server that recovered and answers: 2 tables, 80,?000 rows, row counts match/);
  t.same((await readdir(join(storage, 'postgres', 'nightly'))).filter((n) => n.startsWith('.')), [], 'no scratch directory left');

  // A machine with the client tools only (Debian's postgresql-client: no pg_waldump, no pg_ctl).
  const clientOnly = await mkdtemp(join(tmpdir(), 'jarvis-db-client-bin-'));
  t.teardown(() => rm(clientOnly, { recursive: true, force: true }));
  await symlink(join(await postgresBinDir(), 'pg_verifybackup'), join(clientOnly, 'pg_verifybackup'));
  const clientEnv = { ...process.env, JARVIS_PG_BINDIR: clientOnly };
  const noWaldump = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: false, env: clientEnv });
  t.ok(noWaldump.ok, noWaldump.message);
  t.match(noWaldump.message, /pg_verifybackup: every file matches backup_manifest \(WAL not parsed: pg_waldump is not installed\)/);
  await t.rejects(verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: true, env: clientEnv }),
    { code: 'TOOL_MISSING', message: /starts a PostgreSQL 15 server: pg_ctl and postgres are not installed here/ }, 'no server binaries: a clear error, not a failed backup');

  const tarPath = join(entry.dir, 'base.tar');
  const tar = await readFile(tarPath);
  const { member } = flipInsideMember(tar);
  await writeFile(tarPath, tar);
  const damaged = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: false, env: process.env });
  t.notOk(damaged.ok);
  t.same(damaged.badFiles, ['base.tar'], 'the store checksum names base.tar');

  await reseal(await findBackup(storage, entry.manifest.id), 'base.tar');
  const resealed = await verifyBackup(desired, await findBackup(storage, entry.manifest.id), { restoreTest: false, env: process.env });
  t.notOk(resealed.ok, 'checksums resealed: pg_verifybackup still catches it');
  t.match(resealed.message, new RegExp(`^content check failed: pg_verifybackup: checksum mismatch for file "${member}"$`));
  t.same((await listBackups(storage)).map((e) => e.manifest.verification?.ok), [false], 'the failed verification is recorded');
});

t.test('kill -9 at every step of a physical backup, pg_basebackup writing included, leaves no listed backup; the next run removes the debris', async (t) => {
  const db = await freshDatabase(t, 'physkill');
  await sql(db.url, SEED);
  const storage = t.testdir();
  const desired = physicalDesired(db.url, storage);
  const childDir = await mkdtemp(join(tmpdir(), 'jarvis-db-killer-'));
  t.teardown(() => rm(childDir, { recursive: true, force: true }));
  const kill = await backupKiller(childDir);
  for (const pause of ['basebackup-running', 'basebackup-finished', 'file-written']) {
    const outcome = await kill(desired, { pause });
    t.ok(outcome.paused && !outcome.completed, `${pause}: killed there`);
    t.same(await listBackups(storage), [], `${pause}: nothing listed`);
    t.ok((await hiddenDirs(storage, 'postgres', 'nightly')).length > 0, `${pause}: debris left`);
  }
  // Killed once pg_basebackup reported data written (the pause point does not stop it).
  const mid = await kill(desired, { pause: 'basebackup-writing' });
  t.ok(mid.paused && !mid.completed, 'killed while pg_basebackup writes');
  t.same(await listBackups(storage), [], 'nothing listed');
  const staged = await Promise.all((await hiddenDirs(storage, 'postgres', 'nightly')).map((d) => readdir(join(storage, 'postgres', 'nightly', d, 'basebackup')).then(
    async (names) => Promise.all(names.map(async (n) => (await stat(join(storage, 'postgres', 'nightly', d, 'basebackup', n))).size)), () => [] as number[])));
  t.ok(staged.flat().some((size) => size > 0), 'the debris holds data pg_basebackup wrote');
  // pg_basebackup's guard kills it once its jarvis-db is gone; the server then ends the WAL sender.
  const count = async (query: string) => ((await sql(db.url, query))[0]!.rows[0] as { n: number }).n;
  const settled = async (query: string) => {
    const deadline = Date.now() + 15_000;
    while ((await count(query)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    return count(query);
  };
  t.equal(await settled('SELECT count(*)::int AS n FROM pg_stat_replication'), 0, 'no WAL sender left (pg_basebackup died with the run)');
  t.equal(await settled('SELECT count(*)::int AS n FROM pg_replication_slots'), 0, 'no replication slot left (the temporary one went with its connection)');
  const entry = await createBackup(desired, desired.backups[0]!, process.env);
  t.same(await hiddenDirs(storage, 'postgres', 'nightly'), [], 'the next run removed the debris');
  const listed = (await listBackups(storage)).map((e) => e.manifest.id);
  t.ok(listed.includes(entry.manifest.id), 'the new backup is listed');
  t.equal(listed.length, 1, 'and nothing else');
});

t.test('config: method physical on postgres is accepted; format or jobs with it is an error naming the field', async (t) => {
  const dir = t.testdir();
  const yaml = (extra: string[]) => [
    'version: 1', 'services:', '  postgres: { url: "postgres://u@127.0.0.1:5999/d" }', 'backups:',
    '  - name: base', '    service: postgres', '    cron: "0 3 * * *"', '    keep: { last: 3 }', '    method: physical', ...extra,
  ].join('\n') + '\n';
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, yaml([]));
  const ok = await loadConfig(file, {});
  t.match(ok.backups[0], { method: 'physical', compression: 1 });
  t.equal(ok.backups[0]!.format, undefined, 'no pg_dump format for a physical schedule');
  await writeFile(file, yaml(['    format: custom']));
  await t.rejects(loadConfig(file, {}), { code: 'CONFIG_INVALID', details: [/jarvis-db\.yaml:10:13: backups\[0\]\.format: format applies to method logical \(pg_dump\) only; .*: remove format$/] });
  await writeFile(file, yaml(['    jobs: 4']));
  await t.rejects(loadConfig(file, {}), { code: 'CONFIG_INVALID', details: [/jarvis-db\.yaml:10:11: backups\[0\]\.jobs: jobs applies to method logical/] });
  await writeFile(file, yaml([]).replace('method: physical', 'method: rdb'));
  await t.rejects(loadConfig(file, {}), { code: 'CONFIG_INVALID', details: [/backups\[0\]\.method: method "rdb" is not available for postgres \(expected one of: logical, physical\)/] });
  await writeFile(file, yaml([]).replace('    method: physical\n', ''));
  t.match((await loadConfig(file, {})).backups[0], { method: 'logical', format: 'directory' }, 'logical (pg_dump) stays the default');
});

t.test('through the CLI: backup create, verify (with pg_verifybackup) and restore --target-dir of a physical schedule', async (t) => {
  const db = await freshDatabase(t, 'physcli');
  await sql(db.url, SEED);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./backups',
    'backups:', '  - { name: base, service: postgres, cron: "0 3 * * *", method: physical, compression: 3, keep: { last: 3 } }', '',
  ].join('\n'));
  const env = { ...process.env, JARVIS_PG_URL: db.url, JARVIS_DB_CONFIG: config };
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' });
    t.notMatch(r.stdout + r.stderr, decodeURIComponent(new URL(db.url).password), `${args[0]} ${args[1] ?? ''}: the password is never printed`);
    return r;
  };
  const create = cli(['backup', 'create', '--service', 'postgres']);
  t.equal(create.status, 0, create.stderr);
  const list = JSON.parse(cli(['backup', 'list', '--json']).stdout) as { backups: { id: string; schedule: string }[] };
  t.equal(list.backups.length, 1);
  const id = list.backups[0]!.id;
  const verify = cli(['backup', 'verify', id]);
  t.equal(verify.status, 0, verify.stderr);
  t.match(verify.stdout, /pg_verifybackup: every file matches backup_manifest/);
  const noDir = cli(['restore', id]);
  t.equal(noDir.status, 1);
  t.match(noDir.stderr, /is a physical backup: pass --target-dir DIR/);
  t.notMatch(noDir.stderr, /\n\s+at /, 'one clear line, no stack');
  const target = await restoreTarget(t);
  const restored = cli(['restore', id, '--target-dir', target]);
  t.equal(restored.status, 0, restored.stderr);
  t.match(restored.stdout, new RegExp(`restored ${id} into ${target} .*pg_ctl -D ${target}`));
  const server = await startRestored(t, target, db.url);
  const [r] = await sql(server.url, 'SELECT count(*)::int AS n FROM lines');
  t.equal((r!.rows[0] as { n: number }).n, 50000);
  await server.stop();
});

t.test('a user without the REPLICATION attribute gets one clear error, and nothing is left behind', async (t) => {
  const db = await freshDatabase(t, 'physrole');
  const password = 'Role-Secret-77';
  await sql(db.serverUrl, `CREATE ROLE norepl LOGIN PASSWORD '${password}'`);
  t.teardown(() => sql(db.serverUrl, 'DROP ROLE IF EXISTS norepl'));
  const u = new URL(db.url);
  u.username = 'norepl';
  u.password = password;
  const storage = t.testdir();
  const desired = physicalDesired(u.toString(), storage);
  const failed = await createBackup(desired, desired.backups[0]!, process.env).then(() => null, (e: Error & { code?: string; hint?: string }) => e);
  t.match(failed, { code: 'BACKUP_FAILED', message: /has no REPLICATION permission: pg_basebackup needs it/, hint: /ALTER ROLE <user> REPLICATION/ });
  t.notMatch(`${failed?.message} ${failed?.hint}`, password, 'the password is not in the error');
  t.same(await listBackups(storage), []);
  t.same(await hiddenDirs(storage, 'postgres', 'nightly'), [], 'the failed backup removed what it staged');
});
