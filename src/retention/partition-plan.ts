/**
 * Partition-aware retention, pure (docs/architecture.md §2): which way a policy's rows go.
 *
 * A `delete` or `archive` policy on a table range-partitioned on its age column acts per
 * partition: a partition wholly older than the cut-off (its upper bound at or before it) is
 * detached, archived whole (archive), then dropped (one retention_drop_partitions per policy); the partition
 * that straddles the cut-off, and the default partition, go through the batches. A table
 * partitioned another way, or whose rows other tables reference, or whose policy takes child
 * rows with it, goes through the batches, and the plan says why. A table a run detached and did
 * not drop (its marker found) is planned to be finished, whatever else the plan holds.
 */
import type { RetentionPolicy } from '../config/types.js';
import type { RetentionDropPartitions } from '../engine/types.js';
import type { PartitionToDrop } from './action-params.js';
import { formatCount, plural } from '../render/format.js';
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

/** The rows of some partitions together: exact only when every one was counted exactly. */
function sumOf(partitions: PartitionToDrop[]): { n: number; exact: boolean } | null {
  const counted = partitions.filter((p) => p.rows !== null);
  if (!counted.length) return null;
  return { n: counted.reduce((a, p) => a + p.rows!, 0), exact: counted.length === partitions.length && counted.every((p) => p.exact) };
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

/** What happens to one partition, for people: `drop partition metrics_p20261001: 86,400 rows, archived first`. */
export function partitionWords(p: PartitionToDrop, parent: string): string {
  const rows = rowsText(p.rows === null ? null : { n: p.rows, exact: p.exact });
  if (p.detached) return `partition ${p.name} of ${parent} was detached by an interrupted run and not dropped: ${rows}, ${p.archiveFirst ? 'archived (unless its archive committed), then dropped' : 'dropped'}`;
  return `drop partition ${p.name}: ${rows}, ${p.archiveFirst ? 'archived first' : 'not archived (policy delete)'}`;
}

/**
 * The one retention_drop_partitions of a policy: its partitions wholly older than the cut-off,
 * and first the tables an interrupted run of it detached and did not drop (finished whatever
 * else the plan holds); null when there are none.
 */
export function dropPartitionsAction(input: DropInput, drop: PartitionInfo[], rows: Record<string, { n: number; exact: boolean } | null>, detached: DetachedPartition[]): RetentionDropPartitions | null {
  const finishing: PartitionToDrop[] = detached.filter((d) => d.marker.policy === input.policy.name).map((d) => ({
    partition: `${d.schema}.${d.name}`, schema: d.schema, name: d.name,
    from: d.marker.range?.from ?? 'MINVALUE', to: d.marker.range?.to ?? 'MAXVALUE',
    archiveFirst: d.marker.archiveFirst, detached: true, rows: d.estimatedRows >= 0 ? d.estimatedRows : null, exact: false,
  }));
  const fresh: PartitionToDrop[] = drop.filter((p) => !finishing.some((f) => f.schema === p.schema && f.name === p.name)).map((p) => {
    const count = rows[`${p.schema}.${p.name}`] ?? null;
    return {
      partition: `${p.schema}.${p.name}`, schema: p.schema, name: p.name, from: p.range?.from ?? 'MINVALUE', to: p.range?.to ?? 'MAXVALUE',
      archiveFirst: input.policy.action === 'archive', detached: false, rows: count?.n ?? null, exact: count?.exact ?? false,
    };
  });
  const partitions = [...finishing, ...fresh];
  if (!partitions.length) return null;
  const total = sumOf(partitions);
  const parts: string[] = [];
  if (fresh.length) {
    const names = fresh.length === 1 ? fresh[0]!.name : `${fresh[0]!.name} … ${fresh[fresh.length - 1]!.name}`;
    parts.push(`drop ${plural(fresh.length, 'partition')} wholly older than ${input.policy.age.olderThan} (${input.policy.age.column} < ${input.cutoff}): ${names}, `
      + `${rowsText(sumOf(fresh))}, ${fresh[0]!.archiveFirst ? 'archived first' : 'not archived (policy delete)'}`);
  }
  parts.push(...finishing.map((p) => partitionWords(p, input.table)));
  return {
    id: `retention.drop_partitions.${input.policy.name}`,
    type: 'retention_drop_partitions', module: 'retention', target: input.table,
    reason: parts.join('; '),
    risk: 'destructive',
    estimate: total ? { rows: total.n } : null,
    params: { policy: input.policy.name, table: input.table, column: input.policy.age.column, cutoff: input.cutoff, concurrently: input.concurrently, partitions },
    services: ['postgres'],
  };
}

/** The words the batch action of a partitioned table adds to its reason. */
export function batchNote(route: PartitionRoute): string | null {
  if (route.mode === 'batches') return route.why;
  if (route.mode !== 'partitions') return null;
  const rest = route.rest.map((p) => (p.isDefault ? `${p.name} (the default partition)` : `${p.name} (straddles the cut-off)`));
  return rest.length ? `in ${rest.join(', ')}` : null;
}
