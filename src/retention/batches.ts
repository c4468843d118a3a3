/**
 * What every retention batch loop shares: the run's parameters and result, one batch as its
 * own transaction under the session's statement and lock timeouts (retried when a lock could
 * not be had), and the walk over (age, primary key) with a keyset.
 */
import type pg from 'pg';
import type { RetentionPolicy } from '../config/types.js';
import type { Progress } from '../engine/types.js';
import { sqlState } from '../services/postgres.js';
import type { ResolvedPolicy } from './check.js';
import type { Row } from './chunk.js';
import { beginSql, RAW, type SessionSettings } from './session.js';
import { selectBatch, type Phase } from './sql.js';

export interface RunParams {
  cutoff: string;
  capBoundary?: string;
  batchSize?: number;
}

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  progress?: Progress;
  signal?: AbortSignal;
  session?: SessionSettings;
  /** Attempts of a batch that failed on a lock timeout, deadlock or serialization failure. */
  retries?: number;
  /** Expected rows (from the plan), for progress. */
  expectedRows?: number;
  log?: (event: string, fields?: Record<string, unknown>) => void;
  now?: () => Date;
}

export interface RunResult {
  policy: string;
  action: RetentionPolicy['action'];
  table: string;
  rows: number;
  childRows: Record<string, number>;
  batches: number;
  /** The longest batch transaction, BEGIN to COMMIT. */
  longestBatchMs: number;
  archiveId?: string;
  chunks?: number;
  archiveBytes?: number;
  /** Chunks of earlier interrupted runs settled before this one started. */
  resolved?: { committed: number; voided: number; pending: number };
  /** archive: milliseconds spent locking keys, deleting (and returning) rows, writing chunks durably, committing. */
  timings?: { selectMs: number; deleteMs: number; writeMs: number; commitMs: number };
  /** The VACUUM (ANALYZE) after the run, of the tables it touched a large share of (vacuum.ts). */
  vacuum?: { tables: string[]; ms: number; problem?: string };
}

/** Lock timeout, deadlock, serialization failure: the batch is rolled back and tried again. */
const TRANSIENT = new Set(['40001', '40P01', '55P03']);

type Client = pg.Client;

export function isTransient(e: unknown): boolean {
  const state = sqlState(e);
  return state !== undefined && TRANSIENT.has(state);
}

/** One batch's transaction, retried (after its rollback) when a lock could not be had. */
export async function batchTransaction<T>(client: Client, o: Required<Pick<RunOptions, 'retries'>> & { session: SessionSettings }, body: () => Promise<T>): Promise<{ value: T; ms: number }> {
  for (let attempt = 1; ; attempt++) {
    const started = performance.now();
    await client.query(beginSql(o.session));
    try {
      const value = await body();
      await client.query('COMMIT');
      return { value, ms: performance.now() - started };
    } catch (e) {
      const rolledBack = await client.query('ROLLBACK').then(() => true, () => false);
      if (rolledBack && isTransient(e) && attempt < o.retries) continue;
      throw e;
    }
  }
}

export function keysOf(rows: Row[], positions: number[]): (string | null)[][] {
  return positions.map((p) => rows.map((r) => r[p] ?? null));
}

export interface Walk {
  phase: Phase;
  keyset: Row | null;
}

export function selectValues(w: Walk, batchSize: number): unknown[] {
  return [w.phase.bound, ...(w.keyset ?? []), batchSize];
}

/** The phases of a run: rows older than the cut-off, then (delete with maxRows) rows beyond the cap. */
export function phasesOf(params: RunParams): Phase[] {
  const phases: Phase[] = [{ op: '<', bound: params.cutoff }];
  if (params.capBoundary) phases.push({ op: '<=', bound: params.capBoundary });
  return phases;
}

export interface BatchContext {
  client: Client;
  policy: RetentionPolicy;
  resolved: ResolvedPolicy;
  params: RunParams;
  session: SessionSettings;
  retries: number;
  options: RunOptions;
  result: RunResult;
}

export function batchSizeOf(ctx: BatchContext): number {
  return ctx.params.batchSize ?? ctx.policy.batchSize;
}

export function account(ctx: BatchContext, rows: number, ms: number): void {
  ctx.result.rows += rows;
  ctx.result.batches++;
  ctx.result.longestBatchMs = Math.max(ctx.result.longestBatchMs, Math.round(ms));
  ctx.options.progress?.update(ctx.result.rows, ctx.options.expectedRows);
}

/**
 * The common walk: for each phase, batches of keys in (age, key) order; `act` does the work
 * on those keys inside the batch's transaction (given also the batch's last, greatest, age).
 */
export async function walkKeys(ctx: BatchContext, act: (keys: (string | null)[][], lastAge: string | null) => Promise<void>, extraWhere?: string): Promise<void> {
  const positions = [ctx.resolved.age, ...ctx.resolved.primaryKey].map((_, i) => i);
  const keyPositions = positions.slice(1);
  for (const phase of phasesOf(ctx.params)) {
    const walk: Walk = { phase, keyset: null };
    for (;;) {
      if (ctx.options.signal?.aborted) return;
      const { value: rows, ms } = await batchTransaction(ctx.client, { retries: ctx.retries, session: ctx.session }, async () => {
        const sql = selectBatch(ctx.resolved, phase, { keyset: walk.keyset !== null, extraWhere });
        const sel = await ctx.client.query<Row>({ text: sql.text, values: selectValues(walk, batchSizeOf(ctx)), rowMode: 'array', types: RAW });
        if (sel.rows.length === 0) return sel.rows;
        await act(keysOf(sel.rows, keyPositions), sel.rows[sel.rows.length - 1]![0] ?? null);
        return sel.rows;
      });
      if (rows.length === 0) break;
      walk.keyset = positions.map((p) => rows[rows.length - 1]![p] ?? null);
      account(ctx, rows.length, ms);
    }
  }
}

