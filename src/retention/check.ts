/**
 * A policy against the live catalog, pure: whether its table and columns exist and have the
 * right types (plan errors naming the policy), whether deleting its rows would cascade into
 * rows nobody archived (docs/architecture.md §4 rule 3), and what an operator should know (findings).
 * Plan calls it on the observation; every handler calls it again on a fresh catalog read
 * before touching a row, so a table altered after planning is refused, not guessed at.
 */
import type { RetentionPolicy } from '../config/types.js';
import { column, displayName, hasLeadingIndex, sameTable, TIMESTAMP_TYPES, type ColumnInfo, type ReferenceInfo, type TableInfo } from './catalog.js';

/** What the catalog says about the tables one policy names. Plain JSON. */
export interface PolicyCatalog {
  table: TableInfo | null;
  /** One entry per `children` item of the policy, in the same order. */
  children: { table: string; column: string; info: TableInfo | null }[];
  /** compress: the rollup table (`compress.into`). */
  rollup?: TableInfo | null;
}

export interface CheckWarning {
  check: string;
  message: string;
  value: string | null;
}

/** A child table as the batches use it: its rows whose `column` is one of the parents' `refColumn`. */
export interface ResolvedChild {
  info: TableInfo;
  column: ColumnInfo;
  parentColumn: ColumnInfo;
}

/** Everything the SQL of a policy is built from: catalog objects only, never YAML text. */
export interface ResolvedPolicy {
  table: TableInfo;
  age: ColumnInfo;
  primaryKey: ColumnInfo[];
  children: ResolvedChild[];
  /** References that block a delete (NO ACTION / RESTRICT): rows still referenced are skipped. */
  blockers: ReferenceInfo[];
  rollup?: { info: TableInfo; groupBy: ColumnInfo[]; value: ColumnInfo; bucketSeconds: number };
  anonymize?: { columns: { column: ColumnInfo; strategy: string }[]; marker: ColumnInfo };
}

export interface CheckResult {
  errors: string[];
  warnings: CheckWarning[];
  /**
   * What the policy's deletes do to other tables by the schema's own design (ON DELETE SET NULL or
   * SET DEFAULT): said in the action's reason, not as a finding, since nothing is wrong.
   */
  effects: string[];
  resolved: ResolvedPolicy | null;
  /** A table or column the policy names does not exist (yet: pending migrations may create it). */
  missingObjects: boolean;
}

export interface CheckEnv {
  /** Whether the salt variable (`anonymize.saltEnv`) is set; the value itself never enters a plan. */
  saltSet: boolean;
  /** compress: the bucket width in seconds (from the config's duration). */
  bucketSeconds?: number;
}

/** The marker an erased (anonymized) users row carries: the default of `anonymize.marker`. */
const ERASED_MARKER = 'anonymized_at';

const isTimestamp = (c: ColumnInfo) => (TIMESTAMP_TYPES as readonly string[]).includes(c.baseType);

function describeRef(ref: ReferenceInfo): string {
  return `${ref.schema}.${ref.table}(${ref.columns.join(', ')})`;
}

/** The reference from a configured child to the table, if the child's column is a foreign key to it. */
function childReference(table: TableInfo, child: TableInfo, columnName: string): ReferenceInfo | undefined {
  return table.references.find((r) => r.schema === child.schema && r.table === child.name && r.columns.length === 1 && r.columns[0] === columnName);
}

export function checkPolicy(policy: RetentionPolicy, catalog: PolicyCatalog, env: CheckEnv): CheckResult {
  const errors: string[] = [];
  const warnings: CheckWarning[] = [];
  const effects: string[] = [];
  let missingObjects = false;
  const missing = (message: string) => { missingObjects = true; errors.push(message); };
  const fail = (): CheckResult => ({ errors, warnings, effects, resolved: null, missingObjects });
  const table = catalog.table;
  if (!table) {
    missing(`table "${policy.table}" does not exist`);
    return fail();
  }
  const name = displayName(table);
  const age = column(table, policy.age.column);
  if (!age) missing(`column "${policy.age.column}" does not exist in table ${name}`);
  else if (!isTimestamp(age)) errors.push(`column "${policy.age.column}" of ${name} is ${age.type}, not a timestamp (timestamptz, timestamp or date)`);
  if (table.primaryKey.length === 0) errors.push(`table ${name} has no primary key (retention works in batches by primary key)`);
  if (errors.length) return fail();
  const primaryKey = table.primaryKey.map((c) => column(table, c)!);
  if (!hasLeadingIndex(table, age!.name)) {
    warnings.push({
      check: `retention.index.${name}.${age!.name}`,
      value: null,
      message: `no index on ${name}(${age!.name}): counting and every batch of ${policy.name} scan the table; add one (CREATE INDEX ON ${name} (${age!.name}))`,
    });
  }
  const resolved: ResolvedPolicy = { table, age: age!, primaryKey, children: [], blockers: [] };

  if (policy.action === 'delete' || policy.action === 'archive' || policy.action === 'compress') {
    const verb = policy.action === 'archive' ? 'archiving' : 'deleting';
    for (const ref of table.references) {
      const isSelf = ref.schema === table.schema && ref.table === table.name;
      const listed = policy.action === 'archive' && !isSelf && ref.columns.length === 1
        && (policy.children ?? []).some((c, i) => c.column === ref.columns[0] && sameTable(c.table, { schema: ref.schema, name: ref.table }, catalog.children[i]?.info));
      if (listed) continue;
      if (ref.onDelete === 'cascade') {
        errors.push(policy.action === 'archive'
          ? `${verb} rows of ${name} would delete rows of ${describeRef(ref)} through ON DELETE CASCADE (${ref.constraint}) without archiving them: add { table: ${ref.table}, column: ${ref.columns[0]} } to the children of ${policy.name}`
          : `${verb} rows of ${name} would delete rows of ${describeRef(ref)} through ON DELETE CASCADE (${ref.constraint}), and those are not archived: use an archive policy with { table: ${ref.table}, column: ${ref.columns[0]} } as a child`);
      } else if (ref.onDelete === 'set null' || ref.onDelete === 'set default') {
        effects.push(`sets ${describeRef(ref)} to ${ref.onDelete === 'set null' ? 'NULL' : 'its default'} (ON DELETE ${ref.onDelete.toUpperCase()})`);
      } else {
        resolved.blockers.push(ref);
        warnings.push({ check: `retention.reference.${name}.${ref.constraint}`, value: ref.onDelete, message: `rows of ${name} still referenced by ${describeRef(ref)} (ON DELETE ${ref.onDelete.toUpperCase()}) are skipped by ${policy.name}` });
      }
    }
  }

  if (policy.action === 'archive') {
    for (const [i, child] of (policy.children ?? []).entries()) {
      const info = catalog.children[i]?.info ?? null;
      if (!info) {
        missing(`child table "${child.table}" does not exist`);
        continue;
      }
      const childName = displayName(info);
      const col = column(info, child.column);
      if (!col) {
        missing(`column "${child.column}" does not exist in child table ${childName}`);
        continue;
      }
      if (info.primaryKey.length === 0) errors.push(`child table ${childName} has no primary key (its archived rows could not be restored without duplicates)`);
      const ref = childReference(table, info, child.column);
      if (!ref) {
        errors.push(`${childName}.${child.column} is not a foreign key to ${name}`);
        continue;
      }
      const parentColumn = column(table, ref.refColumns[0]!)!;
      for (const grand of info.references) {
        if (grand.onDelete === 'cascade' || grand.onDelete === 'no action' || grand.onDelete === 'restrict') {
          errors.push(`child table ${childName} is itself referenced by ${describeRef(grand)} (ON DELETE ${grand.onDelete.toUpperCase()}); archive policies take one level of children`);
        }
      }
      if (!hasLeadingIndex(info, child.column)) {
        warnings.push({ check: `retention.index.${childName}.${child.column}`, value: null, message: `no index on ${childName}(${child.column}): every batch of ${policy.name} scans ${childName} to find the children (CREATE INDEX ON ${childName} (${child.column}))` });
      }
      resolved.children.push({ info, column: col, parentColumn });
    }
  }

  if (policy.action === 'anonymize' && policy.anonymize) {
    const marker = column(table, policy.anonymize.marker);
    if (!marker) missing(`marker column "${policy.anonymize.marker}" does not exist in table ${name} (anonymize sets it so that a row is anonymized once; add it: ALTER TABLE ${name} ADD COLUMN ${policy.anonymize.marker} timestamptz)`);
    else if (!isTimestamp(marker) || marker.baseType === 'date') errors.push(`marker column "${marker.name}" of ${name} is ${marker.type}, not a timestamp`);
    const columns: { column: ColumnInfo; strategy: string }[] = [];
    for (const [columnName, strategy] of Object.entries(policy.anonymize.columns)) {
      const c = column(table, columnName);
      if (!c) {
        missing(`column "${columnName}" to anonymize does not exist in table ${name}`);
        continue;
      }
      if (table.primaryKey.includes(c.name)) errors.push(`column "${c.name}" is part of the primary key of ${name} and cannot be anonymized`);
      if (strategy === 'null' && c.notNull) errors.push(`column "${c.name}" of ${name} is NOT NULL: the null strategy cannot apply (use redact, hash or email)`);
      if (strategy !== 'null' && c.category !== 'S') errors.push(`column "${c.name}" of ${name} is ${c.type}: the ${strategy} strategy writes text (use null)`);
      columns.push({ column: c, strategy });
    }
    if (Object.values(policy.anonymize.columns).includes('hash') && !env.saltSet) {
      errors.push(`the hash strategy needs a salt, but ${policy.anonymize.saltEnv ? `$${policy.anonymize.saltEnv} is not set` : 'anonymize.saltEnv is not configured'}`);
    }
    if (marker) resolved.anonymize = { columns, marker };
  }

  if (policy.action === 'erase') {
    // An erased user keeps an anonymized row (erasure's default): its marker keeps it from being counted again.
    const marker = column(table, ERASED_MARKER);
    if (marker && isTimestamp(marker)) resolved.anonymize = { columns: [], marker };
    effects.push('each user erased from every store the links reach, a tombstone first (docs/erasure.md)');
  }

  if (policy.action === 'compress' && policy.compress) {
    const c = policy.compress;
    const rollup = catalog.rollup;
    const groupBy: ColumnInfo[] = [];
    for (const g of c.groupBy) {
      const col = column(table, g);
      if (!col) missing(`groupBy column "${g}" does not exist in table ${name}`);
      else groupBy.push(col);
    }
    const value = column(table, c.value);
    if (!value) missing(`value column "${c.value}" does not exist in table ${name}`);
    else if (value.category !== 'N') errors.push(`value column "${c.value}" of ${name} is ${value.type}, not a number`);
    if (!rollup) {
      missing(`rollup table "${c.into}" does not exist`);
    } else {
      const rollupName = displayName(rollup);
      const needed = [...c.groupBy, 'bucket_start', 'count', 'sum', 'min', 'max'];
      const missing = needed.filter((n) => !column(rollup, n));
      if (missing.length) errors.push(`rollup table ${rollupName} lacks the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (it needs ${needed.join(', ')})`);
      const key = new Set([...c.groupBy, 'bucket_start']);
      const unique = rollup.indexes.some((i) => i.unique && !i.partial && i.columns.length === key.size && i.columns.every((x) => x !== null && key.has(x)));
      if (!unique) errors.push(`rollup table ${rollupName} has no unique key on (${[...key].join(', ')}), so buckets cannot be merged`);
      if (!errors.length && value) resolved.rollup = { info: rollup, groupBy, value, bucketSeconds: env.bucketSeconds ?? 3600 };
    }
  }
  return errors.length ? fail() : { errors, warnings, effects, resolved, missingObjects };
}
