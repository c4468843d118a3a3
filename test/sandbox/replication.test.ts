/**
 * The sandbox PostgreSQL is ready for physical backups: wal_level replica, WAL senders and
 * replication slots to spare, and replication connections from 127.0.0.1 with scram.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { libpqEnv } from '../../src/services/postgres.js';
import { postgresBinDir } from '../../src/scratch/servers.js';
import { withSandbox } from '../helpers/sandbox.js';
import { sql } from '../backup/fixture.js';

t.test('a replication connection answers IDENTIFY_SYSTEM; a wrong password is refused; the WAL settings allow base backups', async (t) => {
  const state = await withSandbox(t, ['postgres']);
  const url = state.postgres!.url;
  const [settings] = await sql(url, `SELECT current_setting('wal_level') AS wal_level, current_setting('max_wal_senders')::int AS senders,
    current_setting('max_replication_slots')::int AS slots, (SELECT system_identifier::text FROM pg_control_system()) AS sysid`);
  const row = settings!.rows[0] as { wal_level: string; senders: number; slots: number; sysid: string };
  t.equal(row.wal_level, 'replica');
  t.ok(row.senders >= 4, `max_wal_senders ${row.senders}`);
  t.ok(row.slots >= 4, `max_replication_slots ${row.slots}`);

  const psql = join(await postgresBinDir(), 'psql');
  const replication = (password: string) => spawnSync(psql, ['-X', '-At', '-d', 'replication=true', '-c', 'IDENTIFY_SYSTEM'], {
    env: { ...process.env, ...libpqEnv(url), PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' }, encoding: 'utf8',
  });
  const ok = replication(libpqEnv(url).PGPASSWORD!);
  t.equal(ok.status, 0, ok.stderr);
  const [systemid, timeline, xlogpos] = ok.stdout.trim().split('|');
  t.equal(systemid, row.sysid, 'IDENTIFY_SYSTEM over the replication protocol names this cluster');
  t.equal(timeline, '1');
  t.match(xlogpos, /^[0-9A-F]+\/[0-9A-F]+$/);
  const wrong = replication('not-the-password');
  t.not(wrong.status, 0, 'a wrong password is refused');
  t.match(wrong.stderr, /password authentication failed/);
});
