/**
 * `plan --base`: the impact of a change of the desired state, in words (issue 3 item 4).
 * Pure: the base and head desired states, and the plans each makes against the observed
 * state, in; one line per config entry that changes, out:
 *   "postgres-nightly: keep daily 14 → 7, 7 backups will be pruned (destructive)"
 *   "messages: retention shortened 2y → 1y, 1,240,112 rows become eligible for deletion"
 * The words about the config come from comparing the two Desired; the consequences from
 * comparing the two plans' actions, grouped by the config entry they come from
 * (`params.schedule`, `params.policy`, the schema for migrations).
 */
import type { BackupSchedule, Desired, RetentionPolicy, Threshold } from '../config/types.js';
import { parseDuration } from '../config/durations.js';
import { formatCount, plural } from '../render/format.js';
import type { Action, Plan } from './types.js';

export interface ImpactLine {
  /** The config entry: a schedule or policy name, `schema`, `storage`, `services`, `health`. */
  subject: string;
  /** What changes in the config, in words. */
  changes: string[];
  /** What that does against the observed state. */
  effects: string[];
  destructive: boolean;
}

type Lines = Map<string, ImpactLine>;

function lineFor(lines: Lines, subject: string): ImpactLine {
  let l = lines.get(subject);
  if (!l) { l = { subject, changes: [], effects: [], destructive: false }; lines.set(subject, l); }
  return l;
}

const show = (v: unknown): string => (v === undefined || v === null ? 'unset' : typeof v === 'string' ? v : JSON.stringify(v));

function compareField(out: string[], label: string, a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${label} ${show(a)} → ${show(b)}`);
}

const KEEP_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly', 'within'] as const;

function scheduleChanges(a: BackupSchedule, b: BackupSchedule, line: ImpactLine): void {
  const c = line.changes;
  compareField(c, 'cron', a.cron, b.cron);
  compareField(c, 'timezone', a.timezone, b.timezone);
  compareField(c, 'service', a.service, b.service);
  for (const rule of KEEP_RULES) compareField(c, `keep ${rule}`, a.keep[rule], b.keep[rule]);
  compareField(c, 'verify', a.verify, b.verify);
  compareField(c, 'format', a.format, b.format);
  compareField(c, 'jobs', a.jobs, b.jobs);
  compareField(c, 'compression', a.compression, b.compression);
  compareField(c, 'method', a.method, b.method);
  if (Boolean(a.allowPruneLast) !== Boolean(b.allowPruneLast)) {
    c.push(b.allowPruneLast ? 'allowPruneLast turned on (the last valid backup may be pruned)' : 'allowPruneLast turned off');
    if (b.allowPruneLast) line.destructive = true;
  }
}

function durationSeconds(d: string): number | null {
  try {
    return parseDuration(d);
  } catch {
    return null;
  }
}

function policyChanges(a: RetentionPolicy, b: RetentionPolicy, line: ImpactLine): void {
  const c = line.changes;
  if (a.age.olderThan !== b.age.olderThan) {
    const before = durationSeconds(a.age.olderThan);
    const after = durationSeconds(b.age.olderThan);
    const word = before !== null && after !== null ? (after < before ? 'shortened' : 'lengthened') : 'changed';
    c.push(`retention ${word} ${a.age.olderThan} → ${b.age.olderThan}`);
  }
  compareField(c, 'table', a.table, b.table);
  compareField(c, 'age column', a.age.column, b.age.column);
  compareField(c, 'action', a.action, b.action);
  compareField(c, 'maxRows', a.maxRows, b.maxRows);
  compareField(c, 'batchSize', a.batchSize, b.batchSize);
  compareField(c, 'archives deleted after', a.archive?.deleteAfter, b.archive?.deleteAfter);
  compareField(c, 'children', a.children, b.children);
  compareField(c, 'anonymize', a.anonymize, b.anonymize);
  compareField(c, 'compress', a.compress, b.compress);
  if (a.enabled !== b.enabled) c.push(b.enabled ? 'enabled' : 'disabled');
}

function thresholdText(t: Threshold | undefined): string {
  if (!t) return 'unset';
  const op = t.lowerIsWorse ? '< ' : '';
  return [t.warning !== undefined ? `warning ${op}${t.warning}` : null, t.critical !== undefined ? `critical ${op}${t.critical}` : null].filter(Boolean).join(', ') || 'none';
}

function byName<T extends { name: string }>(list: readonly T[]): Map<string, T> {
  return new Map(list.map((x) => [x.name, x]));
}

function configChanges(base: Desired, head: Desired, lines: Lines): void {
  if (base.storage.path !== head.storage.path) lineFor(lines, 'storage').changes.push(`path ${base.storage.path} → ${head.storage.path}`);
  compareField(lineFor(lines, 'storage').changes, 'encryption key variable', base.storage.encryption?.passphraseEnv, head.storage.encryption?.passphraseEnv);
  for (const service of ['postgres', 'redis', 'chroma'] as const) {
    const a = base.services[service];
    const b = head.services[service];
    const l = lineFor(lines, 'services');
    if (!a && b) l.changes.push(`${service} added`);
    else if (a && !b) l.changes.push(`${service} removed`);
    else if (a && b && JSON.stringify(a) !== JSON.stringify(b)) l.changes.push(`${service} connection settings changed`);
  }
  const sa = base.schema;
  const sb = head.schema;
  const schema = lineFor(lines, 'schema');
  if (!sa && sb) schema.changes.push(`now managed (target ${sb.target})`);
  else if (sa && !sb) schema.changes.push('no longer managed');
  else if (sa && sb) {
    compareField(schema.changes, 'target', sa.target, sb.target);
    if (sa.allowDown !== sb.allowDown) {
      schema.changes.push(sb.allowDown ? 'allowDown turned on (down-migrations allowed)' : 'allowDown turned off');
      if (sb.allowDown) schema.destructive = true;
    }
    if (sa.backupBefore !== sb.backupBefore) schema.changes.push(sb.backupBefore ? 'a backup before migrations turned on' : 'no backup before migrations any more');
    compareField(schema.changes, 'migrations folder', sa.migrations, sb.migrations);
  }
  const schedulesA = byName(base.backups);
  const schedulesB = byName(head.backups);
  for (const [name, b] of schedulesB) {
    const a = schedulesA.get(name);
    if (!a) lineFor(lines, name).changes.push(`new backup schedule (${b.service}, \`${b.cron}\` ${b.timezone})`);
    else scheduleChanges(a, b, lineFor(lines, name));
  }
  for (const name of schedulesA.keys()) {
    if (!schedulesB.has(name)) lineFor(lines, name).changes.push('backup schedule removed (its backups stay, and are no longer pruned)');
  }
  const policiesA = byName(base.retention);
  const policiesB = byName(head.retention);
  for (const [name, b] of policiesB) {
    const a = policiesA.get(name);
    if (!a) lineFor(lines, name).changes.push(`new retention policy: ${b.action} rows of ${b.table} older than ${b.age.olderThan}`);
    else policyChanges(a, b, lineFor(lines, name));
  }
  for (const name of policiesA.keys()) {
    if (!policiesB.has(name)) lineFor(lines, name).changes.push('retention policy removed');
  }
  const health = lineFor(lines, 'health');
  for (const check of [...new Set([...Object.keys(base.health.thresholds), ...Object.keys(head.health.thresholds)])].sort()) {
    const a = thresholdText(base.health.thresholds[check]);
    const b = thresholdText(head.health.thresholds[check]);
    if (a !== b) health.changes.push(`${check} ${a} → ${b}`);
  }
  compareField(health.changes, 'check interval (s)', base.health.intervalSeconds, head.health.intervalSeconds);
}

/** The config entry an action comes from. */
export function subjectOf(action: Action): string {
  if ('schedule' in action.params) return action.params.schedule;
  if ('policy' in action.params) return action.params.policy;
  return action.module === 'migrate' ? 'schema' : action.module;
}

const ROW_WORDS: Partial<Record<string, string>> = {
  retention_delete: 'deletion',
  retention_archive: 'archiving',
  retention_anonymize: 'anonymization',
  retention_compress: 'compression',
};

const COUNT_WORDS: Partial<Record<string, (n: number, more: boolean) => string>> = {
  create_backup: (n, more) => (more ? (n === 1 ? 'a backup becomes due' : `${plural(n, 'backup')} become due`) : 'no longer due for a backup'),
  prune_backup: (n, more) => (more ? `${plural(n, 'backup')} will be pruned` : `${plural(n, 'backup')} fewer pruned`),
  verify_backup: (n, more) => (more ? `${plural(n, 'restore test')} will run` : `${plural(n, 'restore test')} fewer`),
  migrate_up: (n, more) => (more ? `${plural(n, 'migration')} to apply` : `${plural(n, 'migration')} fewer to apply`),
  migrate_down: (n, more) => (more ? `${plural(n, 'migration')} to revert` : `${plural(n, 'migration')} fewer to revert`),
  prune_archive: (n, more) => (more ? `${plural(n, 'archive')} will be deleted` : `${plural(n, 'archive')} fewer deleted`),
};

function planEffects(basePlan: Plan, headPlan: Plan, lines: Lines): void {
  const baseById = new Map(basePlan.actions.map((a) => [a.id, a]));
  const headById = new Map(headPlan.actions.map((a) => [a.id, a]));
  // per subject and type: actions gained (+) and lost (-), rows gained or lost
  const tally = new Map<string, { subject: string; type: string; gained: number; lost: number; rows: number; destructive: boolean }>();
  const at = (a: Action) => {
    const key = `${subjectOf(a)}\u0000${a.type}`;
    let t = tally.get(key);
    if (!t) { t = { subject: subjectOf(a), type: a.type, gained: 0, lost: 0, rows: 0, destructive: false }; tally.set(key, t); }
    return t;
  };
  for (const a of headPlan.actions) {
    const before = baseById.get(a.id);
    const t = at(a);
    if (!before) t.gained++;
    // More destructive work than the base plans (a new action, or more rows) makes the change destructive.
    if (a.risk === 'destructive' && (!before || (a.estimate?.rows ?? 0) > (before.estimate?.rows ?? 0))) t.destructive = true;
    t.rows += (a.estimate?.rows ?? 0) - (before?.estimate?.rows ?? 0);
  }
  for (const a of basePlan.actions) {
    if (headById.has(a.id)) continue;
    const t = at(a);
    t.lost++;
    t.rows -= a.estimate?.rows ?? 0;
  }
  for (const t of tally.values()) {
    const line = lineFor(lines, t.subject);
    const rowWord = ROW_WORDS[t.type];
    if (rowWord && t.rows !== 0) {
      line.effects.push(t.rows > 0 ? `${plural(t.rows, 'row')} become${t.rows === 1 ? 's' : ''} eligible for ${rowWord}` : `${plural(-t.rows, 'row')} fewer eligible for ${rowWord}`);
    } else if (t.gained !== t.lost) {
      const words = COUNT_WORDS[t.type] ?? ((n: number, more: boolean) => `${formatCount(n)} ${more ? 'more' : 'fewer'} ${t.type} action${n === 1 ? '' : 's'}`);
      line.effects.push(words(Math.abs(t.gained - t.lost), t.gained > t.lost));
    }
    if (t.destructive) line.destructive = true;
    if (t.type === 'migrate_down' && t.gained > 0) {
      const target = line.changes.findIndex((c) => c.startsWith('target '));
      if (target >= 0) line.changes[target] += ' moves down';
    }
  }
}

/** The impact lines, destructive ones first; entries with nothing to say are left out. */
export function describeImpact(base: Desired, head: Desired, basePlan: Plan, headPlan: Plan): ImpactLine[] {
  const lines: Lines = new Map();
  configChanges(base, head, lines);
  planEffects(basePlan, headPlan, lines);
  return [...lines.values()]
    .filter((l) => l.changes.length || l.effects.length)
    .sort((a, b) => Number(b.destructive) - Number(a.destructive) || a.subject.localeCompare(b.subject));
}

/** `postgres-nightly: keep daily 14 → 7, 7 backups will be pruned (destructive)` */
export function impactSentence(line: ImpactLine): string {
  return `${line.subject}: ${[...line.changes, ...line.effects].join(', ')}${line.destructive ? ' (destructive)' : ''}`;
}
