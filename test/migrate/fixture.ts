/**
 * Shared pieces of the migrate integration tests: one sandbox PostgreSQL per test file
 * (test/helpers/sandbox.ts), a fresh database per test, the sandbox's own pg_dump for schema
 * comparisons, migration folders made for a test, and the compiled CLI (build first: npx tsc).
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Desired } from '../../src/config/types.js';
import { libpqEnv, withDatabase } from '../../src/services/postgres.js';
import { withSandbox, type SandboxState } from '../helpers/sandbox.js';

const run = promisify(execFile);

export const PROJECT_MIGRATIONS = new URL('../../migrations/', import.meta.url).pathname;
export const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

export type T = { teardown(fn: () => unknown): void; testdir(fixture?: Record<string, string>): string };

export interface PgServer { url: string; binDir: string; state: SandboxState }

export async function pgServer(t: T): Promise<PgServer> {
  const state = await withSandbox(t, ['postgres']);
  return { url: state.postgres!.url, binDir: state.postgres!.binDir, state };
}

export async function sql<R extends pg.QueryResultRow = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

/** The URL of a database name on the server that does not exist yet (dropped at teardown if created). */
export function newDatabaseUrl(t: T, server: PgServer, prefix = 'mig'): { url: string; name: string } {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  t.teardown(() => sql(server.url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined));
  return { url: withDatabase(server.url, name), name };
}

export async function freshDatabase(t: T, server: PgServer, prefix = 'mig'): Promise<{ url: string; name: string }> {
  const db = newDatabaseUrl(t, server, prefix);
  await sql(server.url, `CREATE DATABASE ${db.name}`);
  return db;
}

/** `pg_dump --schema-only` of the sandbox server's own version (with a fixed \restrict key, random otherwise). */
export async function schemaDump(server: PgServer, url: string): Promise<string> {
  const { stdout } = await run(join(server.binDir, 'pg_dump'), ['--schema-only', '--restrict-key=jarvisdbtest'], { env: { ...process.env, ...libpqEnv(url) }, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/**
 * The runner's mechanics are tested on the project's first five migrations (users … cache
 * entries) and a test's own 0006: 0006_partition_metrics has its own test (partition-metrics.test.ts).
 */
export const MECHANICS = 5;

/** A migrations folder for one test: the project's migrations (the first `keep` of them) and extra files. */
export async function migrationsFolder(t: T, extra: Record<string, string> = {}, keep = Infinity): Promise<string> {
  const dir = join(t.testdir(), 'migrations');
  await mkdir(dir, { recursive: true });
  const names = (await readdir(PROJECT_MIGRATIONS)).filter((n) => n.endsWith('.sql')).sort().slice(0, keep);
  for (const n of names) await copyFile(join(PROJECT_MIGRATIONS, n), join(dir, n));
  for (const [name, content] of Object.entries(extra)) await writeFile(join(dir, name), content);
  return dir;
}

/**
 * A config file for the CLI in `dir` (a test's own directory, never the project root):
 * postgres from $JARVIS_PG_URL, the given schema section, extra lines.
 */
export async function configFile(dir: string, migrations: string, schema: Record<string, unknown> = {}, extra: string[] = []): Promise<string> {
  const file = join(dir, 'jarvis-db.yaml');
  const s = { target: 'latest', allowDown: false, backupBefore: false, ...schema };
  await writeFile(file, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'storage:', '  path: ./backups',
    'schema:', `  migrations: ${JSON.stringify(migrations)}`, ...Object.entries(s).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`), ...extra, '',
  ].join('\n'));
  return file;
}

export function cli(args: string[], env: Record<string, string>, config: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env, JARVIS_DB_CONFIG: config, NO_COLOR: '1' }, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A Desired for module-level calls (no config file). */
export function makeDesired(url: string, migrations: string, schema: Partial<NonNullable<Desired['schema']>> = {}): Desired {
  return {
    version: 1, project: 'jarvis', configFile: join(migrations, '..', 'jarvis-db.yaml'), configHash: 'test',
    services: { postgres: { url } }, storage: { path: join(migrations, '..', 'storage') },
    schema: { migrations, target: 'latest', allowDown: false, backupBefore: false, ...schema },
    backups: [], retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}

export const noLog = { lockTimeoutMs: 10_000 };
