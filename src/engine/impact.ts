/**
 * `plan --base`: the impact of a change of the desired state, in words (issue 3 item 4).
 * Pure: the base and head desired states, and the plans each makes against the observed
 * state, in; one line per config entry that changes, out:
 *   "postgres-nightly: keep daily 14 → 7, 7 backups will be pruned (destructive)"
 *   "messages: retention shortened 2y → 1y, 1,240,112 rows become eligible for deletion"
 * The words about the config are each module's (`DomainModule.describeChange`: the backup
 * module's for schedules, retention's for policies, ...), the storage's and services' the
 * engine's; the consequences come from comparing the two plans' actions, grouped by the config
 * entry they come from (`params.schedule`, `params.policy`, the schema for migrations).
 */
import { changeText } from '../config/changes.js';
import { SERVICE_NAMES, type Desired } from '../config/types.js';
import { formatCount, plural } from '../render/format.js';
import { CHANGE_DESCRIBERS } from './registry.js';
import type { Action, ConfigChange, DomainModule, Plan } from './types.js';

/** What describes the changes of config entries: a module, or the registry's describers. */
export type ChangeDescriber = Pick<DomainModule, 'describeChange'>;

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

/**
 * What is not any module's: the storage and the services. The modules describe their own
 * entries (`DomainModule.describeChange`).
 */
function engineChanges(base: Desired, head: Desired): ConfigChange[] {
  const out: ConfigChange[] = [];
  if (base.storage.path !== head.storage.path) out.push({ subject: 'storage', text: changeText('path', base.storage.path, head.storage.path) });
  const keyBefore = base.storage.encryption?.passphraseEnv;
  const keyAfter = head.storage.encryption?.passphraseEnv;
  if (keyBefore !== keyAfter) out.push({ subject: 'storage', text: changeText('encryption key variable', keyBefore, keyAfter) });
  for (const service of SERVICE_NAMES) {
    const a = base.services[service];
    const b = head.services[service];
    if (!a && b) out.push({ subject: 'services', text: `${service} added` });
    else if (a && !b) out.push({ subject: 'services', text: `${service} removed` });
    else if (a && b && JSON.stringify(a) !== JSON.stringify(b)) out.push({ subject: 'services', text: `${service} connection settings changed` });
  }
  return out;
}

function configChanges(base: Desired, head: Desired, describers: readonly ChangeDescriber[], lines: Lines): void {
  const changes = [...engineChanges(base, head), ...describers.flatMap((m) => m.describeChange?.(base, head) ?? [])];
  for (const change of changes) {
    const line = lineFor(lines, change.subject);
    line.changes.push(change.text);
    if (change.destructive) line.destructive = true;
  }
}

/** The config entry an action comes from. */
export function subjectOf(action: Action): string {
  if (action.type === 'create_partition') return 'partitions';
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
  copy_backup: (n, more) => (more ? `${plural(n, 'backup copy', 'backup copies')} to make` : `${plural(n, 'backup copy', 'backup copies')} fewer`),
  prune_backup: (n, more) => (more ? `${plural(n, 'backup')} will be pruned` : `${plural(n, 'backup')} fewer pruned`),
  prune_wal: (n, more) => (more ? `the WAL of ${plural(n, 'repository', 'repositories')} will be pruned` : `the WAL of ${plural(n, 'repository', 'repositories')} no longer pruned`),
  verify_backup: (n, more) => (more ? `${plural(n, 'restore test')} will run` : `${plural(n, 'restore test')} fewer`),
  migrate_up: (n, more) => (more ? `${plural(n, 'migration')} to apply` : `${plural(n, 'migration')} fewer to apply`),
  migrate_down: (n, more) => (more ? `${plural(n, 'migration')} to revert` : `${plural(n, 'migration')} fewer to revert`),
  copy_archive: (n, more) => (more ? `${plural(n, 'archive copy', 'archive copies')} to make` : `${plural(n, 'archive copy', 'archive copies')} fewer`),
  prune_archive: (n, more) => (more ? `${plural(n, 'archive')} will be deleted` : `${plural(n, 'archive')} fewer deleted`),
  retention_drop_partitions: (n, more) => (more ? `whole partitions of ${plural(n, 'policy', 'policies')} will be dropped` : `whole partitions of ${plural(n, 'policy', 'policies')} no longer dropped`),
  create_partition: (n, more) => (more ? `${plural(n, 'partition')} to create` : `${plural(n, 'partition')} fewer to create`),
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

/**
 * The impact lines, destructive ones first; entries with nothing to say are left out.
 * `describers`: the modules the plans were made with (by default the registered domains').
 */
export function describeImpact(base: Desired, head: Desired, basePlan: Plan, headPlan: Plan, describers: readonly ChangeDescriber[] = CHANGE_DESCRIBERS): ImpactLine[] {
  const lines: Lines = new Map();
  configChanges(base, head, describers, lines);
  planEffects(basePlan, headPlan, lines);
  return [...lines.values()]
    .filter((l) => l.changes.length || l.effects.length)
    .sort((a, b) => Number(b.destructive) - Number(a.destructive) || a.subject.localeCompare(b.subject));
}

/** `postgres-nightly: keep daily 14 → 7, 7 backups will be pruned (destructive)` */
export function impactSentence(line: ImpactLine): string {
  return `${line.subject}: ${[...line.changes, ...line.effects].join(', ')}${line.destructive ? ' (destructive)' : ''}`;
}
