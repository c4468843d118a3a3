/**
 * The retention module's words for a change of its config, the policies (`describeChange`,
 * docs/architecture.md §1): one subject per policy, every field compared.
 */
import { fieldChanges, type FieldVocabulary } from '../config/changes.js';
import { parseDuration } from '../config/durations.js';
import type { Desired } from '../config/types.js';
import type { ConfigChange } from '../engine/types.js';

function durationSeconds(d: string): number | null {
  try {
    return parseDuration(d);
  } catch {
    return null;
  }
}

const POLICY_FIELDS: FieldVocabulary = {
  name: { ignore: true },
  // Where the policy was read from: moving it to another file changes nothing it does.
  source: { ignore: true },
  'age.olderThan': {
    words: (before, after) => {
      const a = durationSeconds(String(before));
      const b = durationSeconds(String(after));
      const word = a !== null && b !== null ? (b < a ? 'shortened' : 'lengthened') : 'changed';
      return { text: `retention ${word} ${String(before)} → ${String(after)}` };
    },
  },
  table: {},
  'age.column': { label: 'age column' },
  action: {},
  maxRows: {},
  batchSize: {},
  'archive.deleteAfter': { label: 'archives deleted after' },
  children: { whole: true },
  anonymize: { whole: true },
  compress: { whole: true },
  enabled: { words: (_before, after) => ({ text: after ? 'enabled' : 'disabled' }) },
};

export function describePolicyChanges(base: Desired, head: Desired): ConfigChange[] {
  const before = new Map(base.retention.map((p) => [p.name, p]));
  const out: ConfigChange[] = [];
  for (const policy of head.retention) {
    const old = before.get(policy.name);
    if (!old) out.push({ subject: policy.name, text: `new retention policy: ${policy.action} rows of ${policy.table} older than ${policy.age.olderThan}` });
    else for (const change of fieldChanges(old, policy, POLICY_FIELDS)) out.push({ subject: policy.name, ...change });
  }
  const after = new Set(head.retention.map((p) => p.name));
  for (const name of before.keys()) {
    if (!after.has(name)) out.push({ subject: name, text: 'retention policy removed' });
  }
  return [...out, ...describePartitionChanges(base, head)];
}

const PARTITION_FIELDS: FieldVocabulary = { table: { ignore: true }, source: { ignore: true }, column: {}, interval: {}, premake: {} };

/** `partitions:` entries, by table (subject `partitions`, as their create_partition actions). */
function describePartitionChanges(base: Desired, head: Desired): ConfigChange[] {
  const before = new Map((base.partitions ?? []).map((d) => [d.table, d]));
  const out: ConfigChange[] = [];
  for (const d of head.partitions ?? []) {
    const old = before.get(d.table);
    if (!old) out.push({ subject: 'partitions', text: `${d.table}: partitions of ${d.interval} declared, ${d.premake} ahead` });
    else for (const change of fieldChanges(old, d, PARTITION_FIELDS)) out.push({ subject: 'partitions', ...change, text: `${d.table}: ${change.text}` });
  }
  const after = new Set((head.partitions ?? []).map((d) => d.table));
  for (const table of before.keys()) if (!after.has(table)) out.push({ subject: 'partitions', text: `${table}: no longer declared (its partitions stay; none are made ahead)` });
  return out;
}
