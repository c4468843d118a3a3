/**
 * Executes one retention action in batches (batches.ts): each batch its own transaction under
 * a statement and lock timeout; select the next keys by (age, primary key) with
 * FOR UPDATE SKIP LOCKED, act on exactly those keys, commit. Only rows older than the planned
 * cut-off (or at/before the planned maxRows boundary) are touched. Before any row, the policy
 * is checked again against the live catalog (docs/architecture.md §4 rules 3 and 5). archive lives in
 * archive-run.ts. A run that touched a large share of a table vacuums it after (vacuum.ts).
 */
import type { Desired, RetentionPolicy } from '../config/types.js';
import { JarvisError } from '../errors.js';
import { postgresUrl } from '../services/postgres.js';
import { displayName } from './catalog.js';
import { checkPolicy } from './check.js';
import { runArchive } from './archive-run.js';
import { walkKeys, type BatchContext, type RunOptions, type RunParams, type RunResult } from './batches.js';
import { bucketSecondsOf, readPolicyCatalog, saltSet } from './observe.js';
import { DEFAULT_SESSION, openSession } from './session.js';
import { ageBoundOf, anonymizeByKey, compressByKey, deleteByKey, notAnonymized } from './sql.js';
import { tablesToVacuum, vacuumTables } from './vacuum.js';

export type { RunOptions, RunParams, RunResult } from './batches.js';

export async function runPolicy(desired: Desired, policy: RetentionPolicy, params: RunParams, options: RunOptions): Promise<RunResult> {
  const session = options.session ?? DEFAULT_SESSION;
  const client = await openSession(postgresUrl(desired), session);
  try {
    const lock = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok`, [`jarvis-db retention ${policy.name}`]);
    if (!lock.rows[0]!.ok) throw new JarvisError('RETENTION_FAILED', `policy ${policy.name} is being run by another jarvis-db process`, { hint: 'wait for it to finish' });
    // Rule 5 and rule 3 at execution time: the live catalog, not the one the plan saw.
    const catalog = await readPolicyCatalog(client, policy);
    const check = checkPolicy(policy, catalog, { saltSet: saltSet(policy, options.env), bucketSeconds: bucketSecondsOf(policy) });
    if (!check.resolved) {
      throw new JarvisError('RETENTION_FAILED', `policy "${policy.name}": ${check.errors.join('; ')}`, { hint: `fix ${policy.source.file} ${policy.source.path} or the table, then plan again` });
    }
    const resolved = check.resolved;
    const ctx: BatchContext = {
      client, policy, resolved, params, session, retries: options.retries ?? 3, options,
      result: { policy: policy.name, action: policy.action, table: displayName(resolved.table), rows: 0, childRows: {}, batches: 0, longestBatchMs: 0 },
    };
    switch (policy.action) {
      case 'delete': await runDelete(ctx); break;
      case 'archive': await runArchive(ctx, desired); break;
      case 'anonymize': await runAnonymize(ctx); break;
      case 'compress': await runCompress(ctx); break;
      // Its own handler (src/erasure/retention.ts) runs it: every store, not one table.
      case 'erase': throw new JarvisError('INTERNAL', `policy ${policy.name}: an erase policy is run by the retention_erase handler`);
    }
    if (!options.signal?.aborted) {
      const touched = [{ table: resolved.table, rows: ctx.result.rows }, ...resolved.children.map((c) => ({ table: c.info, rows: ctx.result.childRows[displayName(c.info)] ?? 0 }))];
      const vacuum = await vacuumTables(client, tablesToVacuum(touched));
      if (vacuum) ctx.result.vacuum = vacuum;
    }
    return ctx.result;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function runDelete(ctx: BatchContext): Promise<void> {
  const bound = ageBoundOf(ctx.resolved.table, ctx.resolved.age, ctx.resolved.primaryKey);
  const del = deleteByKey(ctx.resolved.table, ctx.resolved.primaryKey, bound);
  await walkKeys(ctx, async (keys, lastAge) => {
    const r = await ctx.client.query(del.text, bound ? [...keys, lastAge] : keys);
    if (r.rowCount !== keys[0]!.length) throw new JarvisError('RETENTION_FAILED', `deleted ${r.rowCount} rows of ${ctx.result.table} for ${keys[0]!.length} locked keys`);
  });
}

async function runAnonymize(ctx: BatchContext): Promise<void> {
  const a = ctx.policy.anonymize!;
  const salt = a.saltEnv ? ctx.options.env[a.saltEnv] ?? '' : '';
  if (Object.values(a.columns).includes('hash') && !salt) throw new JarvisError('RETENTION_FAILED', `policy ${ctx.policy.name}: $${a.saltEnv ?? '(saltEnv)'} is not set`, { hint: 'the hash strategy needs its salt' });
  const sql = anonymizeByKey(ctx.resolved);
  await walkKeys(ctx, async (keys) => {
    const values: unknown[] = [...keys];
    values[sql.saltParam - 1] = salt;
    values[sql.redactionParam - 1] = a.redaction ?? '[redacted]';
    await ctx.client.query(sql.text, values);
  }, notAnonymized(ctx.resolved));
}

async function runCompress(ctx: BatchContext): Promise<void> {
  const sql = compressByKey(ctx.resolved);
  const width = ctx.resolved.rollup!.bucketSeconds;
  await walkKeys(ctx, async (keys) => {
    await ctx.client.query(sql.text, [...keys, width]);
  });
}

