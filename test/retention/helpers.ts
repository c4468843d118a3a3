/**
 * Retention test helpers on a real server: observe + plan + execute like apply does, and read
 * tables and archives back as rows of PostgreSQL text (the archives' own representation).
 */
import { join } from 'node:path';
import pg from 'pg';
import type { Desired } from '../../src/config/types.js';
import { makePlan } from '../../src/engine/index.js';
import type { ActionOutcome, ExecuteContext, Handler, Plan } from '../../src/engine/types.js';
import { readChunk, type Row } from '../../src/retention/chunk.js';
import { retentionHandlers } from '../../src/retention/module.js';
import { retentionParts } from '../../src/retention/operations.js';
import { scanArchives, verifyArchive } from '../../src/retention/store.js';

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
