/**
 * Partition-aware retention, pure (docs/architecture.md §2): which way a policy's rows go.
 *
 * A `delete` or `archive` policy on a table range-partitioned on its age column acts per
 * partition: a partition wholly older than the cut-off (its upper bound at or before it) is
 * detached, archived whole (archive), then dropped (retention_drop_partition); the partition
 * that straddles the cut-off, and the default partition, go through the batches. A table
 * partitioned another way, or whose rows other tables reference, or whose policy takes child
 * rows with it, goes through the batches, and the plan says why. A table a run detached and did
 * not drop (its marker found) is planned to be finished, whatever else the plan holds.
 */
import type { RetentionPolicy } from '../config/types.js';
import type { RetentionDropPartition } from '../engine/types.js';
import { formatCount } from '../render/format.js';
import type { TableInfo } from './catalog.js';
import { boundTime, type DetachedPartition, type PartitionInfo, type Partitioning } from './partition-catalog.js';

/** PostgreSQL 14 brought DETACH PARTITION … CONCURRENTLY. */
export const CONCURRENT_DETACH_VERSION = 140000;

export type PartitionRoute =
  /** Not partitioned, or an action that keeps the rows (anonymize, compress): the batches, nothing to say. */
  | { mode: 'plain' }
  /** Partitioned, but not so that whole partitions can go: the batches, and why. */
  | { mode: 'batches'; why: string }
  /** Whole partitions dropped; `rest` (straddling, default) go through the batches. */
  | { mode: 'partitions'; drop: PartitionInfo[]; rest: PartitionInfo[]; concurrently: boolean; why: string | null };

/** Whether a partition holds only rows older than the cut-off (its upper bound at or before it). */
export function whollyOlder(p: PartitionInfo, cutoffMs: number): boolean {
  if (p.isDefault || !p.range) return false;
  const to = boundTime(p.range.to);
  return to !== null && to <= cutoffMs;
}

/** Whether a partition may hold rows older than the cut-off (its lower bound before it; the default always). */
function mayHoldOlder(p: PartitionInfo, cutoffMs: number): boolean {
  if (p.isDefault || !p.range) return true;
  const from = boundTime(p.range.from);
  return from === null || from < cutoffMs;
}

export function routeOf(policy: Pick<RetentionPolicy, 'action' | 'age' | 'children'>, table: Pick<TableInfo, 'schema' | 'name' | 'references'>, partitioning: Partitioning | null, cutoffMs: number, serverVersion: number): PartitionRoute {
  if (!partitioning || (policy.action !== 'delete' && policy.action !== 'archive')) return { mode: 'plain' };
  const name = `${table.schema}.${table.name}`;
  const age = policy.age.column;
  const key = partitioning.columns.map((c) => c ?? '(expression)').join(', ');
  if (partitioning.strategy !== 'range' || partitioning.columns.length !== 1 || partitioning.columns[0] !== age) {
    return { mode: 'batches', why: `${name} is ${partitioning.strategy}-partitioned on (${key}), not by range on ${age}: its rows go through batches` };
  }
  if (policy.children?.length) return { mode: 'batches', why: `${name} is partitioned on ${age}, but the policy takes child rows with its rows: they go through batches` };
  const refs = table.references.filter((r) => !(r.schema === table.schema && r.table === table.name));
  if (refs.length) return { mode: 'batches', why: `${name} is partitioned on ${age}, but ${refs.map((r) => `${r.schema}.${r.table}`).join(', ')} reference${refs.length === 1 ? 's' : ''} its rows: they go through batches` };
  const attached = partitioning.partitions;
  const drop = attached.filter((p) => whollyOlder(p, cutoffMs));
  const rest = attached.filter((p) => !whollyOlder(p, cutoffMs) && mayHoldOlder(p, cutoffMs));
  const concurrently = serverVersion >= CONCURRENT_DETACH_VERSION && partitioning.defaultPartition === null;
  const why = !drop.length ? null
    : concurrently ? null
      : partitioning.defaultPartition !== null ? `detached without CONCURRENTLY: ${name} has a default partition (${partitioning.defaultPartition}), which PostgreSQL does not allow it with`
        : `detached without CONCURRENTLY: the server is older than PostgreSQL 14`;
  return { mode: 'partitions', drop, rest, concurrently, why };
}

/** How a partition's range reads: `2026-10-01 00:00:00+00 … 2026-10-02 00:00:00+00`. */
export function rangeText(p: Pick<PartitionInfo, 'range' | 'bound'>): string {
  return p.range ? `${p.range.from} … ${p.range.to}` : p.bound;
}

/** The rows of a partition for people: `86,400 rows`, `~86,400 rows` (an estimate), `rows not counted`. */
export function rowsText(rows: { n: number; exact: boolean } | null): string {
  if (!rows) return 'rows not counted';
  return `${rows.exact ? '' : '~'}${formatCount(rows.n)} ${rows.n === 1 ? 'row' : 'rows'}`;
}

export interface DropInput {
  policy: Pick<RetentionPolicy, 'name' | 'action' | 'age'>;
  /** The parent, `schema.name`. */
  table: string;
  cutoff: string;
  concurrently: boolean;
}

/** One retention_drop_partition per partition wholly older than the cut-off. */
export function dropActions(input: DropInput, drop: PartitionInfo[], rows: Record<string, { n: number; exact: boolean } | null>): RetentionDropPartition[] {
  const archiveFirst = input.policy.action === 'archive';
  return drop.map((p) => {
    const partition = `${p.schema}.${p.name}`;
    const count = rows[partition] ?? null;
    const then = archiveFirst ? 'archived first' : 'not archived (policy delete)';
    return {
      id: `retention.drop_partition.${input.policy.name}.${partition}`,
      type: 'retention_drop_partition', module: 'retention', target: partition,
      reason: `drop partition ${p.name}: ${rowsText(count)}, ${then}; wholly older than ${input.policy.age.olderThan} (${rangeText(p)}, ${input.policy.age.column} < ${input.cutoff})`
        + (p.detachPending ? '; its interrupted detach is finished first' : ''),
      risk: 'destructive',
      estimate: count ? { rows: count.n } : null,
      params: {
        policy: input.policy.name, table: input.table, partition, partitionSchema: p.schema, partitionName: p.name, column: input.policy.age.column,
        cutoff: input.cutoff, archiveFirst, detached: false, concurrently: input.concurrently,
        from: p.range?.from ?? 'MINVALUE', to: p.range?.to ?? 'MAXVALUE',
      },
      services: ['postgres'],
    };
  });
}

/** A table an interrupted run detached: finished (archived if the marker says so and not yet, then dropped). */
export function finishDetachedActions(policyName: string, cutoff: string, detached: DetachedPartition[]): RetentionDropPartition[] {
  return detached.filter((d) => d.marker.policy === policyName).map((d) => {
    const partition = `${d.schema}.${d.name}`;
    const rows = d.estimatedRows >= 0 ? { n: d.estimatedRows, exact: false } : null;
    return {
      id: `retention.drop_partition.${policyName}.${partition}`,
      type: 'retention_drop_partition', module: 'retention', target: partition,
      reason: `partition ${d.name} of ${d.marker.parent} was detached by an interrupted run and not dropped: ${rowsText(rows)}, `
        + (d.marker.archiveFirst ? 'archived (unless its archive committed), then dropped' : 'dropped'),
      risk: 'destructive',
      estimate: rows ? { rows: rows.n } : null,
      params: {
        policy: policyName, table: d.marker.parent, partition, partitionSchema: d.schema, partitionName: d.name, column: d.marker.column,
        cutoff, archiveFirst: d.marker.archiveFirst, detached: true, concurrently: false,
        from: d.marker.range?.from ?? 'MINVALUE', to: d.marker.range?.to ?? 'MAXVALUE',
      },
      services: ['postgres'],
    };
  });
}

/** The words the batch action of a partitioned table adds to its reason. */
export function batchNote(route: PartitionRoute): string | null {
  if (route.mode === 'batches') return route.why;
  if (route.mode !== 'partitions') return null;
  const rest = route.rest.map((p) => (p.isDefault ? `${p.name} (the default partition)` : `${p.name} (straddles the cut-off)`));
  return rest.length ? `in ${rest.join(', ')}` : null;
}
