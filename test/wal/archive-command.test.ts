/**
 * `wal push` as PostgreSQL's own archive_command on the sandbox server (archive_mode = on, the
 * server restarted): every segment the server switches away from is archived by the CLI, run as
 * the server's user, with nothing failing in pg_stat_archiver; the chain has no gap and a fetch
 * of the last segment gives what the server wrote.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startService, stopService } from '../../src/sandbox/index.js';
import { gapsIn } from '../../src/wal/segments.js';
import { withSandbox } from '../helpers/sandbox.js';
import { sql } from '../backup/fixture.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;

t.test('archive_command = jarvis-db wal push %p archives every switched segment, none failing', async (t) => {
  const state = await withSandbox(t, ['postgres']);
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-archive-command-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const storage = join(dir, 'backups');
  await mkdir(storage);
  // The server runs the command as its own user: the repository must be its to write.
  if (isRoot) await run('chown', ['postgres:postgres', storage]);
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, ['version: 1', 'services:', '  postgres: { url: "postgres://archiver@127.0.0.1:1/none" }', 'storage:', `  path: ${storage}`, ''].join('\n'));
  const command = `${process.execPath} ${BIN} -c ${config} wal push %p`;
  await sql(state.postgres!.url, 'ALTER SYSTEM SET archive_mode = on');
  await sql(state.postgres!.url, `ALTER SYSTEM SET archive_command = '${command}'`);
  await stopService(state.dir, 'postgres');
  const restarted = await startService(state.dir, 'postgres');
  const url = restarted.postgres!.url;

  await sql(url, 'CREATE TABLE w AS SELECT i, md5(i::text) AS v FROM generate_series(1, 20000) i');
  let last = '';
  for (let i = 0; i < 3; i++) {
    await sql(url, `INSERT INTO w SELECT i, md5(i::text) FROM generate_series(1, 5000) i`);
    const [r] = await sql(url, 'SELECT pg_walfile_name(pg_switch_wal()) AS last');
    last = (r!.rows[0] as { last: string }).last;
  }
  const deadline = Date.now() + 60_000;
  let archiver: { last_archived_wal: string | null; failed_count: string; last_failed_wal: string | null } = { last_archived_wal: null, failed_count: '0', last_failed_wal: null };
  while (Date.now() < deadline) {
    const [r] = await sql(url, 'SELECT last_archived_wal, failed_count::text, last_failed_wal FROM pg_stat_archiver');
    archiver = r!.rows[0] as typeof archiver;
    if (archiver.last_archived_wal === last) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.equal(archiver.last_archived_wal, last, 'the server archived up to the last switched segment');
  t.equal(archiver.failed_count, '0', `no archive_command failed (${archiver.last_failed_wal ?? 'none'})`);
  const names = (await readdir(join(storage, 'wal', '00000001'))).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  t.ok(names.includes(last));
  t.same(gapsIn(names, 16 * 1024 * 1024), [], 'no gap');
  const [dd] = await sql(url, `SELECT current_setting('data_directory') AS d`);
  const original = await readFile(join((dd!.rows[0] as { d: string }).d, 'pg_wal', last)).catch(() => null);
  const dest = join(dir, 'fetched');
  await run(process.execPath, [BIN, '-c', config, 'wal', 'fetch', last, dest]);
  if (original) t.ok((await readFile(dest)).equals(original), 'the fetched segment is what the server wrote');
  else t.pass('the server recycled the segment already');
});
