/**
 * Retention's observation (read-only): for each enabled policy, what the catalog says about
 * its tables, how many rows are eligible at the cut-off computed from `now`, and the archives
 * in storage.
 *
 * Counts: a number of rows is only shown (the plan's reason and estimate), but whether it is
 * zero decides whether an action is planned at all. So a table of up to EXACT_COUNT_ROWS rows
 * (by its statistics) is counted exactly, within a time budget; a bigger one gets the planner's
 * estimate of the number (shown with "~") and an exact EXISTS for "any at all", which stops at
 * the first row instead of reading every eligible one (a plan of a 350 MB database spent
 * 300–400 ms counting rows it only displays).
 *
 * Partitions (partition-catalog.ts): each policy table's partitioning, and once per observation
 * pg_partman's configuration and the tables a run detached without dropping. On a table whose
 * old partitions are dropped whole (partition-plan.ts), the eligible rows are counted in the
 * partitions that are not (straddling, default), and the dropped ones' rows per partition.
 */
import type pg from 'pg';
import type { Desired, RetentionPolicy } from '../config/types.js';
import { parseDuration } from '../config/durations.js';
import { sqlState } from '../services/postgres.js';
import { displayName, ident, inspectTable, regclassText, type TableInfo } from './catalog.js';
import { checkPolicy, type PolicyCatalog, type ResolvedPolicy } from './check.js';
import { openSession, serverVersion } from './session.js';
import { anyOfCount, capBoundary, countCapped, countChildren, countEligible, notAnonymized, rowsOfCount, sampleRowBytes, type Phase, type Sql } from './sql.js';
import type { ArchiveCopiesObserved } from './archive-copies.js';
import { observeCopies } from './archive-copy.js';
import { archiveRepository, findArchiveDebris, scanArchives, summarize, type ArchiveSummary } from './store.js';
import { countPartition, findDetached, inspectPartitioning, partmanSchemas, type DetachedPartition, type Partitioning } from './partition-catalog.js';
import { routeOf, type PartitionRoute } from './partition-plan.js';
import type { DeclaredObserved } from './partition-declare.js';

export interface PolicyCounts {
  /** Rows older than the cut-off (not yet anonymized, for anonymize). */
  eligible: number;
  /** false when a count ran out of time and the planner's estimate stands in. */
  exact: boolean;
  /** archive: rows of each child table that go with the eligible rows (`schema.name` → rows). */
  children: Record<string, number>;
  /** delete with maxRows: the age (server text) at or before which rows are beyond the cap. */
  capBoundary: string | null;
  /** delete with maxRows: rows beyond the cap that the cut-off does not already take. */
  capRows: number;
  /** Estimated bytes of the eligible rows (and their children) in the table. */
  bytes: number;
}

/** A policy's table as partitions (partition-catalog.ts): what partition-plan.ts decides from. */
export interface PolicyPartitions {
  /** null: the table is not partitioned. */
  partitioning: Partitioning | null;
  serverVersion: number;
  /** The rows of each partition wholly older than the cut-off (`schema.name`); null when not counted. */
  rows: Record<string, { n: number; exact: boolean } | null>;
  /** Tables an interrupted run of this policy detached and did not drop. */
  detached: DetachedPartition[];
}

export interface PolicyObserved {
  policy: string;
  /** Partitioned or not; absent in observations made before partitions were observed. */
  partitions?: PolicyPartitions;
  /** The cut-off the counts were taken at (ISO). */
  cutoff: string;
  catalog: PolicyCatalog;
  /** anonymize: whether the salt variable is set (never its value). */
  saltSet: boolean;
  counts: PolicyCounts | null;
  /** Milliseconds the observation of this policy took. */
  ms: number;
}

export interface RetentionObserved {
  policies: PolicyObserved[];
  /** Tables detached by a run of a policy that is not an enabled policy of the config now. */
  detachedElsewhere?: DetachedPartition[];
  /** The tables of `partitions:` (absent in observations made before they were declared). */
  declared?: DeclaredObserved[];
  archives: ArchiveSummary[];
  invalidArchives: { dir: string; problem: string }[];
  debris: number;
  /** The first repository's name, where `archives` are (absent in older observations: `local`). */
  repository?: string;
  /** What each other repository holds (absent: there is none). */
  copies?: ArchiveCopiesObserved[];
}

/** The cut-off of a policy at `now`: rows older than this are eligible. */
export function cutoffFor(policy: Pick<RetentionPolicy, 'age'>, now: Date): Date {
  return new Date(now.getTime() - parseDuration(policy.age.olderThan) * 1000);
}

export function bucketSecondsOf(policy: RetentionPolicy): number | undefined {
  return policy.compress ? parseDuration(policy.compress.bucket) : undefined;
}

export function saltSet(policy: RetentionPolicy, env: NodeJS.ProcessEnv): boolean {
  const name = policy.anonymize?.saltEnv;
  return Boolean(name && env[name]);
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The catalog entries of the tables a policy names (table, children in order, rollup). */
export async function readPolicyCatalog(client: Queryable, policy: RetentionPolicy): Promise<PolicyCatalog> {
  const table = await inspectTable(client, policy.table);
  const children: PolicyCatalog['children'] = [];
  for (const child of policy.children ?? []) children.push({ ...child, info: await inspectTable(client, child.table) });
  const catalog: PolicyCatalog = { table, children };
  if (policy.compress) catalog.rollup = await inspectTable(client, policy.compress.into);
  return catalog;
}

/** Tables up to this many rows (pg_class.reltuples) are counted exactly; bigger ones estimated. */
export const EXACT_COUNT_ROWS = 50_000;

/** The planner's estimate of how many rows the count counts. */
async function plannerEstimate(client: Queryable, sql: Sql, values: unknown[]): Promise<number> {
  const plan = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(`EXPLAIN (FORMAT JSON) ${rowsOfCount(sql).text}`, values);
  return Math.round(plan.rows[0]!['QUERY PLAN'][0].Plan['Plan Rows']);
}

/**
 * The count (exact: a small table, or none at all), else the planner's estimate. The exact
 * queries run within the budget; past it, the estimate stands in (never 0 when rows may exist).
 */
async function countWithin(client: Queryable, sql: Sql, values: unknown[], budgetMs: number, table: TableInfo): Promise<{ n: number; exact: boolean }> {
  const small = table.estimatedRows <= EXACT_COUNT_ROWS;
  await client.query(`BEGIN READ ONLY; SET LOCAL statement_timeout = ${Math.max(1, Math.floor(budgetMs))}`);
  try {
    if (small) {
      const r = await client.query<{ n: number }>(sql.text, values);
      return { n: Number(r.rows[0]!.n), exact: true };
    }
    const r = await client.query<{ any: boolean }>(anyOfCount(sql).text, values);
    if (!r.rows[0]!.any) return { n: 0, exact: true };
    return { n: Math.max(1, await plannerEstimate(client, sql, values)), exact: false };
  } catch (e) {
    if (sqlState(e) !== '57014') throw e;
    await client.query('ROLLBACK');
    await client.query('BEGIN READ ONLY');
    return { n: Math.max(small ? 0 : 1, await plannerEstimate(client, sql, values)), exact: false };
  } finally {
    await client.query('COMMIT').catch(() => undefined);
  }
}

/** Bytes per row on disk: from the statistics, or from a sample of rows before the first ANALYZE. */
async function rowBytes(client: Queryable, table: TableInfo): Promise<number> {
  if (table.estimatedRows > 0) return table.tableBytes / table.estimatedRows;
  const r = await client.query<{ b: number | null }>(sampleRowBytes(table).text);
  return r.rows[0]!.b ?? 0;
}

/** The rows older than the cut-off: in the whole table, or (whole partitions dropped) in the partitions that are not. */
async function countOlder(client: Queryable, resolved: ResolvedPolicy, cutoff: string, budgetMs: number, route: PartitionRoute): Promise<{ n: number; exact: boolean }> {
  const phase: Phase = { op: '<', bound: cutoff };
  if (route.mode !== 'partitions') return countWithin(client, countEligible(resolved, phase, notAnonymized(resolved)), [cutoff], budgetMs, resolved.table);
  const total = { n: 0, exact: true };
  for (const p of route.rest) {
    const table = { ...resolved.table, schema: p.schema, name: p.name, estimatedRows: Math.max(0, p.estimatedRows) };
    const c = await countWithin(client, countEligible({ ...resolved, table }, phase), [cutoff], budgetMs, table);
    total.n += c.n;
    total.exact &&= c.exact;
  }
  return total;
}

async function countPolicy(client: Queryable, policy: RetentionPolicy, resolved: ResolvedPolicy, cutoff: string, budgetMs: number, route: PartitionRoute): Promise<PolicyCounts> {
  const eligible = await countOlder(client, resolved, cutoff, budgetMs, route);
  const counts: PolicyCounts = { eligible: eligible.n, exact: eligible.exact, children: {}, capBoundary: null, capRows: 0, bytes: 0 };
  const parentRow = await rowBytes(client, resolved.table);
  let bytes = eligible.n * parentRow;
  for (const child of resolved.children) {
    const c = await countWithin(client, countChildren(resolved, child), [cutoff], budgetMs, child.info);
    counts.children[displayName(child.info)] = c.n;
    counts.exact &&= c.exact;
    bytes += c.n * (await rowBytes(client, child.info));
  }
  if (policy.action === 'delete' && policy.maxRows !== undefined) {
    const r = await client.query<{ bound: string }>(capBoundary(resolved).text, [policy.maxRows]);
    const bound = r.rows[0]?.bound ?? null;
    if (bound !== null) {
      const capped = await countWithin(client, countCapped(resolved), [cutoff, bound], budgetMs, resolved.table);
      if (capped.n > 0) {
        counts.capBoundary = bound;
        counts.capRows = capped.n;
        counts.exact &&= capped.exact;
        bytes += capped.n * parentRow;
      }
    }
  }
  counts.bytes = Math.round(bytes);
  return counts;
}

export interface ObserveOptions {
  /** Time budget of each exact count before the estimate is used. Default 5 s. */
  countBudgetMs?: number;
}

/** The declared tables: their catalog names, partitions, and whether the default partition holds a row. */
async function observeDeclared(client: Queryable, tables: string[], partman: string[]): Promise<DeclaredObserved[]> {
  const out: DeclaredObserved[] = [];
  for (const table of tables) {
    const r = await client.query<{ schema: string; name: string }>(`SELECT n.nspname::text AS schema, c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`, [regclassText(table)]);
    const resolved = r.rows[0] ?? null;
    const partitioning = resolved ? await inspectPartitioning(client, resolved, partman) : null;
    let defaultHasRows: boolean | null = null;
    const def = partitioning?.partitions.find((p) => p.isDefault);
    if (def) {
      const e = await client.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${ident(def.schema)}.${ident(def.name)}) AS any`);
      defaultHasRows = e.rows[0]!.any;
    }
    out.push({ table, resolved, partitioning, defaultHasRows });
  }
  return out;
}

export async function observeRetention(desired: Desired, env: NodeJS.ProcessEnv, now: Date, options: ObserveOptions = {}): Promise<RetentionObserved> {
  const first = archiveRepository(desired, env);
  const scan = await scanArchives(first);
  const out: RetentionObserved = {
    policies: [],
    archives: scan.archives.map(summarize),
    invalidArchives: scan.invalid,
    debris: (await findArchiveDebris(first)).length,
    repository: first.name,
  };
  if ((desired.repositories?.length ?? 0) > 1) out.copies = await observeCopies(desired, env);
  const policies = desired.retention.filter((p) => p.enabled);
  const declared = desired.partitions ?? [];
  if (policies.length === 0 && declared.length === 0) return out;
  const { postgresUrl } = await import('../services/postgres.js');
  const client = await openSession(postgresUrl(desired), undefined, 'jarvis-db retention observe');
  try {
    const version = await serverVersion(client);
    const partman = await partmanSchemas(client);
    const detached = await findDetached(client);
    const budget = options.countBudgetMs ?? 5_000;
    if (declared.length) out.declared = await observeDeclared(client, declared.map((d) => d.table), partman);
    const orphans = detached.filter((d) => !policies.some((p) => p.name === d.marker.policy));
    if (orphans.length) out.detachedElsewhere = orphans;
    for (const policy of policies) {
      const started = Date.now();
      const cutoff = cutoffFor(policy, now).toISOString();
      const catalog = await readPolicyCatalog(client, policy);
      const salt = saltSet(policy, env);
      const check = checkPolicy(policy, catalog, { saltSet: salt, bucketSeconds: bucketSecondsOf(policy) });
      const partitioning = catalog.table ? await inspectPartitioning(client, catalog.table, partman) : null;
      const route = catalog.table ? routeOf(policy, catalog.table, partitioning, Date.parse(cutoff), version) : { mode: 'plain' as const };
      const partitions: PolicyPartitions = { partitioning, serverVersion: version, rows: {}, detached: detached.filter((d) => d.marker.policy === policy.name) };
      if (route.mode === 'partitions') {
        for (const p of route.drop) {
          const n = p.estimatedRows <= EXACT_COUNT_ROWS ? await countPartition(client, p, budget) : null;
          partitions.rows[`${p.schema}.${p.name}`] = n !== null ? { n, exact: true } : p.estimatedRows >= 0 ? { n: Math.round(p.estimatedRows), exact: false } : null;
        }
      }
      const counts = check.resolved ? await countPolicy(client, policy, check.resolved, cutoff, budget, route) : null;
      out.policies.push({ policy: policy.name, cutoff, catalog, saltSet: salt, counts, partitions, ms: Date.now() - started });
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  return out;
}
