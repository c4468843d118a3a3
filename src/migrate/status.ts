/**
 * `migrate status`: each migration's state from an observation, and its text rendering. Pure.
 */
import type { ModulePlan } from '../engine/types.js';
import type { MigrateObserved } from './observe.js';

export type MigrationState = 'applied' | 'pending' | 'changed' | 'vanished' | 'unverified';

export interface MigrationStatusRow {
  name: string;
  state: MigrationState;
  appliedAt: string | null;
}

export interface MigrationStatus {
  database: string;
  databaseExists: boolean;
  /** The applied version: the last applied migration's name, or `0`. */
  version: string;
  applied: number;
  files: number;
  embeddingType: string | null;
  rows: MigrationStatusRow[];
}

export function migrationStatus(observed: MigrateObserved): MigrationStatus {
  const applied = new Map(observed.applied.map((a) => [a.name, a]));
  const rows: MigrationStatusRow[] = observed.files.map((f) => {
    const a = applied.get(f.name);
    if (!a) return { name: f.name, state: 'pending', appliedAt: null };
    const state: MigrationState = a.sha256 === null ? 'unverified' : a.sha256 === f.sha256 ? 'applied' : 'changed';
    return { name: f.name, state, appliedAt: a.runOn };
  });
  const onDisk = new Set(observed.files.map((f) => f.name));
  for (const a of observed.applied) if (!onDisk.has(a.name)) rows.push({ name: a.name, state: 'vanished', appliedAt: a.runOn });
  return {
    database: observed.database,
    databaseExists: observed.databaseExists,
    version: observed.applied.at(-1)?.name ?? '0',
    applied: observed.applied.length,
    files: observed.files.length,
    embeddingType: observed.embeddingType,
    rows,
  };
}

const LABEL: Record<MigrationState, string> = {
  applied: 'applied   ',
  pending: 'pending   ',
  changed: 'CHANGED   ',
  vanished: 'VANISHED  ',
  unverified: 'applied?  ',
};

/** Status, then what reaching the target takes (the plan's actions or its errors). */
export function formatStatus(status: MigrationStatus, target: string, plan: ModulePlan): string {
  const lines: string[] = [];
  if (!status.databaseExists) {
    lines.push(`database ${status.database} does not exist (jarvis-db init creates it)`);
  } else {
    const embedding = status.embeddingType ? `; memory.embedding is ${status.embeddingType}` : '';
    lines.push(`database ${status.database}: at ${status.version} (${status.applied} of ${status.files} migrations applied)${embedding}`);
  }
  const width = Math.max(0, ...status.rows.map((r) => r.name.length));
  for (const r of status.rows) {
    const when = r.appliedAt ? `  ${r.appliedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}` : '';
    lines.push(`  ${LABEL[r.state]}${r.name.padEnd(width)}${when}`.trimEnd());
  }
  if (status.rows.some((r) => r.state === 'unverified')) lines.push('  (applied? = applied by another tool: no checksum recorded, changes cannot be detected)');
  if (plan.errors.length > 0) {
    for (const e of plan.errors) lines.push(`error: ${e.message}`);
  } else if (plan.actions.length === 0) {
    lines.push(`schema.target ${target}: up to date.`);
  } else {
    const ups = plan.actions.filter((a) => a.type === 'migrate_up').length;
    const downs = plan.actions.length - ups;
    const what = [ups ? `${ups} to apply` : '', downs ? `${downs} to roll back (destructive)` : ''].filter(Boolean).join(', ');
    lines.push(`schema.target ${target}: ${what}.`);
  }
  return lines.join('\n');
}
