/**
 * Test fixture for the backup integration tests: a throwaway PostgreSQL from the project's
 * sandbox, a fresh database in it per test, and a `Desired` pointing at it with storage in the
 * test's own directory.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { BackupSchedule, Desired } from '../../src/config/types.js';
import { withSandbox } from '../helpers/sandbox.js';

type T = { testdirName: string; teardown(fn: () => unknown): void; testdir(): string };

export async function pgServerUrl(t: T): Promise<string> {
  const state = await withSandbox(t, ['postgres']);
  return state.postgres!.url;
}

export function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = '/' + db;
  return u.toString();
}

/** A new empty database on the sandbox server, dropped at teardown. */
export async function freshDatabase(t: T, prefix = 'bk'): Promise<{ serverUrl: string; url: string; name: string }> {
  const serverUrl = await pgServerUrl(t);
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    const dbs = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${name}%`]);
    for (const d of dbs.rows) await c.query(`DROP DATABASE IF EXISTS "${d.datname}" WITH (FORCE)`);
    await c.end();
  });
  return { serverUrl, url: withDb(serverUrl, name), name };
}

export function makeDesired(url: string, storagePath: string, schedule: Partial<BackupSchedule> = {}, encryption?: string): Desired {
  return {
    version: 1, project: 'jarvis', configFile: `${storagePath}/jarvis-db.yaml`, configHash: 'test',
    services: { postgres: { url } },
    storage: { path: storagePath, ...(encryption ? { encryption: { passphraseEnv: encryption } } : {}) },
    backups: [{ name: 'nightly', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC', keep: { last: 3 }, verify: 'checksum', format: 'directory', jobs: 2, compression: 1, path: 'backups[0]', ...schedule }],
    retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}

export async function sql(url: string, text: string): Promise<pg.QueryResult[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query(text);
    return Array.isArray(r) ? r : [r];
  } finally {
    await c.end();
  }
}
