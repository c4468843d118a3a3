/**
 * What the point-in-time recovery tests on a sandbox server share (test/wal/pitr, pitr-s3,
 * prune-pitr): the CLI, an order-independent digest of the `events` table, pg_ctl as the server
 * user (root runs it through runuser, as the sandbox does), and the URL of a recovered copy.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { postgresBinDir } from '../../src/scratch/servers.js';
import { sql } from '../backup/fixture.js';

export { cli } from './fixture.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The row count and an order-independent checksum of `events`. */
export async function eventsDigest(url: string): Promise<string> {
  const [r] = await sql(url, `SELECT count(*)::text || ':' || coalesce(md5(string_agg(h, '' ORDER BY h)), '') AS f FROM (SELECT md5(x::text) AS h FROM events x) s`);
  return (r!.rows[0] as { f: string }).f;
}

/** pg_ctl with `args`, as the postgres user when the tests run as root. */
export async function pgCtl(args: string[]): Promise<unknown> {
  const tool = join(await postgresBinDir(), 'pg_ctl');
  return isRoot ? run('runuser', ['-u', 'postgres', '--', tool, ...args]) : run(tool, args);
}

/** Stops the server of data directory `dir` when the test ends (if one runs there). */
export function stopOnTeardown(t: Test, dir: string): void {
  t.teardown(() => pgCtl(['-D', dir, '-m', 'fast', '-w', 'stop']).catch(() => undefined));
}

/** `url` pointed at a recovered copy listening on 127.0.0.1:`port`. */
export function onPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}
