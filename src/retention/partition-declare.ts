/**
 * Declared partitions, pure (docs/architecture.md §2): `partitions:` in the YAML names a table,
 * its column, an interval (1d | 1w | 1mo) and how many intervals ahead to make (premake). The
 * partitions from the current interval to `premake` ahead that no existing partition takes are
 * planned (create_partition, named `<table>_pYYYYMMDD` after their first day); a table pg_partman
 * manages is left to it; a default partition that holds rows is a warning.
 * Also the coverage of a range by existing partitions, which restore and create re-check.
 */
import type { PartitionDeclaration } from '../config/types.js';
import type { CreatePartition, Finding, PlanError } from '../engine/types.js';
import { boundTime, type PartitionInfo, type Partitioning } from './partition-catalog.js';

/** Whether existing (non-default) partitions take all of [from, to), and which of them do. */
export function coverage(range: { from: number; to: number }, partitions: PartitionInfo[]): { covered: boolean; by: string[] } {
  const spans = partitions.flatMap((p) => {
    if (p.isDefault || !p.range) return [];
    const from = boundTime(p.range.from);
    const to = boundTime(p.range.to);
    if (from === null || to === null || to <= range.from || from >= range.to) return [];
    return [{ name: p.name, from, to }];
  }).sort((a, b) => a.from - b.from);
  let reached = range.from;
  for (const s of spans) {
    if (s.from > reached) break;
    reached = Math.max(reached, s.to);
  }
  return { covered: reached >= range.to, by: spans.map((s) => s.name) };
}

/** The start of the interval `now` is in (UTC): the day, the ISO week (Monday), the month. */
export function intervalStart(interval: PartitionDeclaration['interval'], now: Date): Date {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  if (interval === '1w') d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  if (interval === '1mo') d.setUTCDate(1);
  return d;
}

export function nextStart(interval: PartitionDeclaration['interval'], start: Date, n = 1): Date {
  const d = new Date(start);
  if (interval === '1d') d.setUTCDate(d.getUTCDate() + n);
  else if (interval === '1w') d.setUTCDate(d.getUTCDate() + 7 * n);
  else d.setUTCMonth(d.getUTCMonth() + n);
  return d;
}

const MAX_NAME_BYTES = 63;

/** `metrics_p20261209`: the table's name (cut to fit PostgreSQL's 63 bytes), `_p`, the first day. */
export function partitionName(table: string, start: Date): string {
  const suffix = `_p${start.toISOString().slice(0, 10).replaceAll('-', '')}`;
  let base = table;
  while (Buffer.byteLength(base + suffix) > MAX_NAME_BYTES) base = [...base].slice(0, -1).join('');
  return base + suffix;
}

export interface DeclaredObserved {
  table: string;
  /** The catalog's names; null when the table does not exist. */
  resolved: { schema: string; name: string } | null;
  partitioning: Partitioning | null;
  /** Whether the default partition holds any row (null: no default partition). */
  defaultHasRows: boolean | null;
}

function where(d: PartitionDeclaration): string {
  return `${d.source.file} ${d.source.path}`;
}

/** A table the pending migrations may still create or convert (0006_partition_metrics) waits for them: a finding, not an error. */
function waiting(d: PartitionDeclaration, why: string): Finding {
  return { check: `partitions.waiting.${d.table}`, service: 'postgres', status: 'UNKNOWN', value: null, threshold: null,
    message: `partitions: ${why}; waits for the pending migrations, the next plan after they are applied holds its partitions` };
}

export function planDeclared(declared: PartitionDeclaration[], observed: DeclaredObserved[], now: Date, context: { migrationsPending?: boolean } = {}): { actions: CreatePartition[]; findings: Finding[]; errors: PlanError[] } {
  const actions: CreatePartition[] = [];
  const findings: Finding[] = [];
  const errors: PlanError[] = [];
  for (const d of declared) {
    const obs = observed.find((o) => o.table === d.table);
    if (!obs?.resolved && context.migrationsPending) {
      findings.push(waiting(d, `table ${d.table} does not exist yet`));
      continue;
    }
    if (!obs?.resolved) {
      errors.push({ module: 'retention', message: `partitions: table ${d.table} does not exist`, path: where(d) });
      continue;
    }
    const display = `${obs.resolved.schema}.${obs.resolved.name}`;
    const p = obs.partitioning;
    if (!p || p.strategy !== 'range' || p.columns.length !== 1 || p.columns[0] !== d.column) {
      const how = p ? `${p.strategy}-partitioned on (${p.columns.map((c) => c ?? '(expression)').join(', ')})` : 'not partitioned';
      if (context.migrationsPending) {
        findings.push(waiting(d, `${display} is ${how} yet`));
        continue;
      }
      errors.push({ module: 'retention', message: `partitions: ${display} is ${how}, not by range on ${d.column}; convert it (a migration) or remove the entry`, path: where(d) });
      continue;
    }
    if (p.partman) {
      findings.push({ check: `partitions.partman.${display}`, service: 'postgres', status: 'HEALTHY', value: p.partman, threshold: null,
        message: `${display}: pg_partman manages its partitions (${p.partman}.part_config); jarvis-db leaves them to it` });
      continue;
    }
    if (obs.defaultHasRows) {
      findings.push({ check: `partitions.default.${display}`, service: 'postgres', status: 'WARNING', value: p.defaultPartition, threshold: null,
        message: `${display}: the default partition ${p.defaultPartition} holds rows that no partition takes; create their partitions and move the rows (a partition whose range has rows in the default cannot be created)` });
    }
    const first = intervalStart(d.interval, now);
    for (let k = 0; k <= d.premake; k++) {
      const from = nextStart(d.interval, first, k);
      const to = nextStart(d.interval, from);
      if (coverage({ from: from.getTime(), to: to.getTime() }, p.partitions).covered) continue;
      const name = partitionName(obs.resolved.name, from);
      if (p.partitions.some((x) => x.name === name && x.schema === obs.resolved!.schema)) {
        errors.push({ module: 'retention', message: `partitions: ${display} has a partition named ${name} that does not take ${from.toISOString()} … ${to.toISOString()}`, path: where(d) });
        continue;
      }
      actions.push({
        id: `retention.create_partition.${display}.${name}`, type: 'create_partition', module: 'retention', target: `${obs.resolved.schema}.${name}`,
        reason: `create partition ${name}: ${d.column} from ${from.toISOString()} to ${to.toISOString()}, ${k === 0 ? 'the current interval' : `${k} of premake ${d.premake} ahead`} (${d.interval})`,
        risk: 'safe', estimate: null,
        params: { table: display, tableSchema: obs.resolved.schema, tableName: obs.resolved.name, partition: name, column: d.column, from: from.toISOString(), to: to.toISOString() },
        services: ['postgres'],
      });
    }
  }
  return { actions, findings, errors };
}
