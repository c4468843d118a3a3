/**
 * Retention's plan, pure: (desired, observed, now) → actions with an absolute cut-off in their
 * params (docs/architecture.md §2: rows ageing past it later do not make a saved plan stale, and apply
 * touches only rows older than it), plan errors naming the policy, findings.
 * Order: archive, compress, anonymize, delete, then the expiry of archives.
 */
import type { Desired, RetentionPolicy, ServiceName } from '../config/types.js';
import { planArchiveCopies } from './archive-copies.js';
import type {
  Action, ActionType, Finding, ModulePlan, PlanError, RetentionAnonymize, RetentionArchive, RetentionCompress, RetentionDelete, Risk,
} from '../engine/types.js';
import type { RetentionParams } from './action-params.js';
import { checkPolicy } from './check.js';
import { bucketSecondsOf, cutoffFor, type PolicyObserved, type RetentionObserved } from './observe.js';
import { batchNote, dropPartitionsAction, routeOf } from './partition-plan.js';
import { planDeclared } from './partition-declare.js';

import { formatCount as n, plural } from '../render/format.js';

const TYPES: Record<RetentionPolicy['action'], 'retention_archive' | 'retention_compress' | 'retention_anonymize' | 'retention_delete' | 'retention_erase'> = {
  archive: 'retention_archive', compress: 'retention_compress', anonymize: 'retention_anonymize', delete: 'retention_delete', erase: 'retention_erase',
};
const RISK: Record<RetentionPolicy['action'], Risk> = { archive: 'safe', compress: 'destructive', anonymize: 'destructive', delete: 'destructive', erase: 'destructive' };
const ORDER: ActionType[] = ['create_partition', 'retention_drop_partitions', 'retention_archive', 'retention_compress', 'retention_anonymize', 'retention_erase', 'retention_delete', 'copy_archive', 'prune_archive'];

/** A retention run (delete, archive, anonymize, compress): an action with RetentionParams. */
export type RetentionRun = RetentionDelete | RetentionArchive | RetentionAnonymize | RetentionCompress;

const RUN_TYPES: readonly string[] = Object.values(TYPES);
export const isRetentionRun = (a: Action): a is RetentionRun => RUN_TYPES.includes(a.type);

/** Where a policy is written: `policies/operational.yaml policies[0]` (shown after its errors). */
function where(policy: RetentionPolicy): string {
  return `${policy.source.file} ${policy.source.path}`;
}

export type { RetentionParams } from './action-params.js';

function reasonFor(policy: RetentionPolicy, obs: PolicyObserved, cutoff: string): string {
  const c = obs.counts!;
  const approx = c.exact ? '' : '~';
  const base = `${approx}${plural(c.eligible, 'row')} older than ${policy.age.olderThan} (${policy.age.column} < ${cutoff})`;
  switch (policy.action) {
    case 'archive': {
      const kids = Object.entries(c.children).map(([t, rows]) => `${plural(rows, 'row')} of ${t}`);
      return kids.length ? `${base}, with ${kids.join(' and ')}` : base;
    }
    case 'erase':
      return `${approx}${plural(c.eligible, 'user')} older than ${policy.age.olderThan} not yet erased (${policy.age.column} < ${cutoff}), erased from every store per the links`;
    case 'anonymize':
      return `${approx}${plural(c.eligible, 'row')} older than ${policy.age.olderThan} not yet anonymized (${policy.age.column} < ${cutoff})`;
    case 'compress':
      return `${base}, rolled up into ${policy.compress!.bucket} buckets of ${policy.compress!.into}`;
    case 'delete':
      return c.capRows > 0 ? `${base}; ${approx}${n(c.capRows)} more beyond maxRows ${n(policy.maxRows!)}` : base;
  }
}

export interface RetentionPlanContext {
  /** Migrations are pending: a table or column they may create is not an error yet. */
  migrationsPending?: boolean;
}

/** An erase policy reaches PostgreSQL and every store a link names. */
function erasedServices(desired: Desired): ServiceName[] {
  return (['postgres', 'redis', 'chroma'] as const).filter((s) => s === 'postgres' || (desired.links ?? []).some((l) => l.side.store === s));
}

export function planRetention(desired: Desired, observed: RetentionObserved, now: Date, context: RetentionPlanContext = {}): ModulePlan {
  const actions: Action[] = [];
  const findings: Finding[] = [];
  const errors: PlanError[] = [];
  for (const policy of desired.retention) {
    if (!policy.enabled) continue;
    const obs = observed.policies.find((p) => p.policy === policy.name);
    if (!obs) {
      errors.push({ module: 'retention', message: `policy "${policy.name}" was not observed`, path: where(policy) });
      continue;
    }
    const check = checkPolicy(policy, obs.catalog, { saltSet: obs.saltSet, bucketSeconds: bucketSecondsOf(policy) });
    if (check.missingObjects && context.migrationsPending) {
      // The same apply runs the migrations first; the next plan holds this policy's actions.
      findings.push({
        check: `retention.waiting.${policy.name}`, service: 'postgres', status: 'UNKNOWN', value: null, threshold: null,
        message: `${policy.name}: waits for the pending migrations (${check.errors.join('; ')}); the next plan after they are applied holds its actions`,
      });
      continue;
    }
    const cutoff = cutoffFor(policy, now).toISOString();
    // A partition an interrupted run detached is finished first, whatever else holds the policy back.
    const detached = obs.partitions?.detached ?? [];
    for (const e of check.errors) errors.push({ module: 'retention', message: `policy "${policy.name}": ${e}`, path: where(policy) });
    for (const w of check.warnings) findings.push({ check: w.check, service: 'postgres', status: 'WARNING', value: w.value, threshold: null, message: `${policy.name}: ${w.message}` });
    const table = check.resolved?.table;
    const route = table && obs.partitions && !check.errors.length && obs.counts
      ? routeOf(policy, table, obs.partitions.partitioning, Date.parse(cutoff), obs.partitions.serverVersion) : { mode: 'plain' as const };
    const drops = dropPartitionsAction(
      { policy, table: table ? `${table.schema}.${table.name}` : detached.find((d) => d.marker.policy === policy.name)?.marker.parent ?? policy.table, cutoff, concurrently: route.mode === 'partitions' && route.concurrently },
      route.mode === 'partitions' ? route.drop : [], obs.partitions?.rows ?? {}, detached,
    );
    if (drops && route.mode === 'partitions' && route.why && drops.params.partitions.some((p) => !p.detached)) drops.reason += `; ${route.why}`;
    if (drops) actions.push(drops);
    if (check.errors.length || !obs.counts) continue;
    const rows = obs.counts.eligible + obs.counts.capRows;
    if (rows === 0) continue;
    const childRows = Object.values(obs.counts.children).reduce((a, b) => a + b, 0);
    const params: RetentionParams = { policy: policy.name, table: `${check.resolved!.table.schema}.${check.resolved!.table.name}`, column: policy.age.column, cutoff, batchSize: policy.batchSize };
    if (obs.counts.capBoundary !== null && obs.counts.capRows > 0) params.capBoundary = obs.counts.capBoundary;
    const note = batchNote(route);
    actions.push({
      id: `retention.${policy.action}.${policy.name}`,
      type: TYPES[policy.action],
      module: 'retention',
      target: params.table,
      reason: [reasonFor(policy, obs, cutoff), ...check.effects.map((e) => `also ${e}`), ...(note ? [note] : [])].join('; '),
      risk: RISK[policy.action],
      estimate: { rows: rows + childRows, bytes: obs.counts.bytes },
      params,
      services: policy.action === 'erase' ? erasedServices(desired) : ['postgres'],
      ...(drops ? { requires: [drops.id] } : {}),
    });
  }
  for (const d of observed.detachedElsewhere ?? []) {
    findings.push({ check: `retention.partition.detached.${d.schema}.${d.name}`, service: 'postgres', status: 'WARNING', value: d.marker.policy, threshold: null,
      message: `${d.schema}.${d.name} was detached from ${d.marker.parent} by policy ${d.marker.policy}, which is not an enabled policy now, and not dropped: enable the policy to finish it, or attach it again` });
  }
  if (desired.partitions?.length) {
    const declared = planDeclared(desired.partitions, observed.declared ?? [], now, { migrationsPending: context.migrationsPending === true });
    actions.push(...declared.actions);
    findings.push(...declared.findings);
    errors.push(...declared.errors);
  }
  for (const archive of observed.archives) {
    if (archive.pending > 0 && !archive.writerAlive) {
      findings.push({ check: `retention.archive.pending.${archive.id}`, service: 'storage', status: 'WARNING', value: archive.pending, threshold: null,
        message: `archive ${archive.id} (${archive.policy}) has ${plural(archive.pending, 'chunk')} whose delete was interrupted; the next run of ${archive.policy} or \`jarvis-db archive verify ${archive.id}\` settles them` });
    }
  }
  const runs = actions.flatMap((a) => (a.type === 'retention_archive' || (a.type === 'retention_drop_partitions' && a.params.partitions.some((p) => p.archiveFirst)) ? [{ id: a.id, policy: a.params.policy }] : []));
  const across = planArchiveCopies(desired, observed.repository ?? 'local', observed.archives, observed.copies ?? [], now, runs);
  actions.push(...across.copies, ...across.prunes);
  errors.push(...across.errors);
  for (const bad of observed.invalidArchives) {
    findings.push({ check: 'retention.archive.invalid', service: 'storage', status: 'WARNING', value: bad.dir, threshold: null, message: `${bad.dir}: ${bad.problem}` });
  }
  actions.sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type));
  markOverlaps(actions, observed);
  return { actions, findings, errors };
}

/**
 * A policy whose table is a child table of a policy that runs before it (messages under
 * conversations-archive) counted rows that the earlier one takes with its parents: its count is
 * an upper bound, and its reason says so and by how much they may overlap (no extra query).
 */
function markOverlaps(actions: Action[], observed: RetentionObserved): void {
  const children = (policy: unknown) => observed.policies.find((p) => p.policy === policy)?.counts?.children ?? {};
  const runs = actions.filter(isRetentionRun);
  runs.forEach((later, i) => {
    const table = later.params.table;
    const rows = later.estimate?.rows ?? 0;
    const before = runs.slice(0, i).filter((a) => (children(a.params.policy)[table] ?? 0) > 0);
    if (!before.length || rows === 0) return;
    const parts = before.map((a) => `up to ${n(Math.min(children(a.params.policy)[table]!, rows))} go with ${a.params.policy} (their parents' policy, which runs first)`);
    later.reason = `≤ ${later.reason.replace(/^~/, '')}; ${parts.join(', ')}`;
    later.params.overlapsWith = before.map((a) => a.params.policy);
  });
}

/** What retention's actions depend on: the structure of the tables and the archives' ids (not row counts). */
export function retentionFingerprint(observed: RetentionObserved): unknown {
  const strip = (t: { estimatedRows?: number; tableBytes?: number } | null | undefined) => {
    if (!t) return null;
    const { estimatedRows: _r, tableBytes: _b, ...rest } = t;
    return rest;
  };
  return {
    policies: observed.policies.map((p) => ({
      policy: p.policy,
      table: strip(p.catalog.table),
      children: p.catalog.children.map((c) => ({ table: c.table, column: c.column, info: strip(c.info) })),
      rollup: strip(p.catalog.rollup),
      saltSet: p.saltSet,
      partitions: p.partitions ? {
        partitions: (p.partitions.partitioning?.partitions ?? []).map((x) => `${x.schema}.${x.name} ${x.bound}`),
        detached: p.partitions.detached.map((d) => `${d.schema}.${d.name}`),
      } : null,
    })),
    archives: observed.archives.map((a) => a.id).sort(),
    declared: (observed.declared ?? []).map((d) => ({ table: d.table, partitions: (d.partitioning?.partitions ?? []).map((p) => `${p.schema}.${p.name} ${p.bound}`) })),
  };
}
