/**
 * Retention test helpers on a real server: observe + plan + execute like apply does, and read
 * tables and archives back as rows of PostgreSQL text (the archives' own representation).
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import type { Desired } from '../../src/config/types.js';
import { makePlan } from '../../src/engine/index.js';
import type { ActionOutcome, ExecuteContext, Handler, Plan } from '../../src/engine/types.js';
import { readChunk, type Row } from '../../src/retention/chunk.js';
import { retentionHandlers } from '../../src/retention/module.js';
import { retentionParts } from '../../src/retention/operations.js';
import { scanArchives, verifyArchive } from '../../src/retention/store.js';
import { sql } from './fixture.js';

const CLI_BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

export const silent = { note: () => undefined, update: () => undefined };

/** The retention part of a plan, made by the engine as `jarvis-db retention preview` does. */
export async function planNow(desired: Desired, now = new Date(), env: NodeJS.ProcessEnv = process.env): Promise<Plan> {
  const { plan } = await makePlan({ desired, parts: await retentionParts(), now, env });
  return plan;
}

/** What a handler gets from the engine's apply loop. */
export function contextFor(desired: Desired, plan: Plan, env: NodeJS.ProcessEnv = process.env): ExecuteContext {
  return { desired, plan, env, signal: new AbortController().signal, runId: 'test', outcomes: new Map(), log: () => undefined };
}

/** Plans and executes every retention action's handler in order, as apply would. Fails on plan errors. */
export async function planAndRun(desired: Desired, now = new Date(), env: NodeJS.ProcessEnv = process.env): Promise<{ plan: Plan; outcomes: ActionOutcome[] }> {
  const plan = await planNow(desired, now, env);
  if (plan.errors.length) throw new Error(plan.errors.map((e) => e.message).join('\n'));
  const outcomes: ActionOutcome[] = [];
  for (const action of plan.actions) {
    // each type's handler takes its own variant, as in the engine's apply loop
    const handler = retentionHandlers[action.type as keyof typeof retentionHandlers] as Handler;
    outcomes.push(await handler(action, contextFor(desired, plan, env), silent));
  }
  return { plan, outcomes };
}

/** Every row of a table as its columns' text (UTC), keyed by the first column. */
export async function rowsAsText(url: string, table: string, key = 'id'): Promise<Map<string, Row>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`SET TimeZone = 'UTC'`);
    const cols = await c.query<{ attname: string }>(`SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [pg.escapeIdentifier(table)]);
    const list = cols.rows.map((r) => `${pg.escapeIdentifier(r.attname)}::text`).join(', ');
    const r = await c.query<{ row: Row; k: string }>(`SELECT ARRAY[${list}]::text[] AS row, ${pg.escapeIdentifier(key)}::text AS k FROM ${pg.escapeIdentifier(table)}`);
    return new Map(r.rows.map((x) => [x.k, x.row]));
  } finally {
    await c.end();
  }
}

/**
 * The rows in the committed chunks of every archive that verifies, per table (`public.x`),
 * as a list (duplicates kept, so that a row archived twice shows).
 */
export async function archivedRows(storage: string): Promise<{ rows: Record<string, Row[]>; pending: number; failed: string[] }> {
  const rows: Record<string, Row[]> = {};
  let pending = 0;
  const failed: string[] = [];
  for (const archive of (await scanArchives(storage)).archives) {
    const v = await verifyArchive(archive, null);
    if (!v.ok) {
      failed.push(`${archive.header.id}: ${v.problems.join('; ')}`);
      continue;
    }
    for (const chunk of archive.chunks) {
      if (chunk.state !== 'committed') {
        pending++;
        continue;
      }
      await readChunk(archive.store.read(archive.key, chunk.manifest.file), chunk.manifest, null, { row: (t, r) => { (rows[t] ??= []).push(r); } });
    }
  }
  return { rows, pending, failed };
}

/**
 * Compares the original rows with what is left in the table plus what the archives hold:
 * returns the problems (a row lost, a row archived twice, a row that changed), none when exact.
 */
export function accountFor(original: Map<string, Row>, left: Map<string, Row>, archived: Row[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  for (const row of archived) {
    const k = row[0]!;
    seen.set(k, (seen.get(k) ?? 0) + 1);
    if (left.has(k)) problems.push(`row ${k} is both in the table and in an archive`);
    const o = original.get(k);
    if (!o) problems.push(`archived row ${k} was never in the table`);
    else if (JSON.stringify(o) !== JSON.stringify(row)) problems.push(`archived row ${k} differs: ${JSON.stringify(row)} vs ${JSON.stringify(o)}`);
  }
  for (const [k, n] of seen) if (n > 1) problems.push(`row ${k} is archived ${n} times`);
  for (const [k, o] of original) {
    if (!left.has(k) && !seen.has(k)) problems.push(`row ${k} is lost`);
    const l = left.get(k);
    if (l && JSON.stringify(l) !== JSON.stringify(o)) problems.push(`row ${k} changed in the table`);
  }
  return problems;
}

/** The compiled CLI, killed with SIGKILL at a pause point or after a delay when asked. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv, kill: { pause?: string; afterMs?: number } = {}): Promise<{ code: number | null; signal: string | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, [CLI_BIN, ...args], { env: { ...env, JARVIS_DB_TEST_PAUSE_AT: kill.pause ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d; });
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  if (kill.pause || kill.afterMs !== undefined) {
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (d: Buffer) => { stderr += d; if (kill.pause && stderr.includes(`test pause at ${kill.pause}`)) resolve(); });
      if (kill.afterMs !== undefined) setTimeout(resolve, kill.afterMs);
      void exited.then(() => resolve());
    });
    child.kill('SIGKILL');
  } else child.stderr.on('data', (d: Buffer) => { stderr += d; });
  return { ...(await exited), stderr, stdout };
}

/** The killed client's server session ends once the server notices; wait for it. */
export async function sessionsGone(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const [{ n }] = await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'jarvis-db retention%' AND datname = current_database()`);
    if (n === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the killed run\'s session did not end');
}
