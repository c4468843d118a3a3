/**
 * `jarvis-db archive list` as a table, and the per-policy lines of `retention preview` (plans
 * and runs use the engine's renderers).
 */
import type { Desired } from '../config/types.js';
import { formatBytes, formatCount, formatTimestamp, renderTable } from '../render/format.js';
import { cutoffFor, type RetentionObserved } from './observe.js';
import type { ArchiveSummary } from './store.js';
import type { Plan } from '../engine/types.js';
import { partitionWords } from './partition-plan.js';

/** One line of `retention preview` per enabled policy: what it would touch now. */
export interface PolicyPreview {
  policy: string; table: string; action: string; rows: number | null; exact: boolean; cutoff: string;
  /** Per partition dropped whole: `drop partition metrics_p20261001: 86,400 rows, archived first`. */
  partitions?: string[];
}

/** The per-partition words of a plan's retention_drop_partitions actions, by policy. */
export function partitionLines(plan: Pick<Plan, 'actions'>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const a of plan.actions) {
    if (a.type !== 'retention_drop_partitions') continue;
    out.set(a.params.policy, [...(out.get(a.params.policy) ?? []), ...a.params.partitions.map((p) => partitionWords(p, a.params.table))]);
  }
  return out;
}

/** Pure: every enabled policy of the config, with the rows now eligible (null when they could not be counted). */
export function policyPreviews(desired: Desired, observed: RetentionObserved, now: Date): PolicyPreview[] {
  return desired.retention.filter((p) => p.enabled).map((policy) => {
    const counts = observed.policies.find((o) => o.policy === policy.name)?.counts ?? null;
    return {
      policy: policy.name, table: policy.table, action: policy.action,
      rows: counts ? counts.eligible + counts.capRows : null, exact: counts?.exact ?? true,
      cutoff: cutoffFor(policy, now).toISOString(),
    };
  });
}

export function renderPolicyPreviews(previews: PolicyPreview[]): string {
  const rows = [['POLICY', 'TABLE', 'ACTION', 'ELIGIBLE', 'CUT-OFF']];
  for (const p of previews) {
    rows.push([p.policy, p.table, p.action, p.rows === null ? 'not counted' : `${p.exact ? '' : '~'}${formatCount(p.rows)}`, p.cutoff.slice(0, 19) + 'Z']);
  }
  const lines = previews.flatMap((p) => (p.partitions ?? []).map((l) => `  ${p.policy}: ${l}`));
  return renderTable(rows) + (lines.length ? `\nWhole partitions (the ELIGIBLE rows above are the others, through batches):\n${lines.join('\n')}` : '');
}

export function renderArchiveList(archives: ArchiveSummary[]): string {
  const where = archives.some((a) => a.repositories);
  const rows = [['ID', 'POLICY', 'TABLE', 'CREATED', 'CUT-OFF', 'CHUNKS', 'ROWS', 'SIZE', 'STATE', ...(where ? ['REPOSITORIES'] : [])]];
  for (const a of archives) {
    const state = a.writerAlive ? 'being written' : a.damaged ? `${a.damaged} damaged` : a.pending ? `${a.pending} pending` : 'ok';
    rows.push([a.id, a.policy, a.table, formatTimestamp(a.createdAt), formatTimestamp(a.cutoff), formatCount(a.chunks), formatCount(a.rows), formatBytes(a.bytes), state, ...(where ? [(a.repositories ?? []).join(', ')] : [])]);
  }
  return renderTable(rows, { align: [, , , , , 'right', 'right', 'right'] });
}
