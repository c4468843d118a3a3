/**
 * Text for `migrate up/down` and `init` results. Pure.
 */
import { formatBytes, formatDuration, plural } from '../render/format.js';
import type { InitResult } from './init.js';
import type { MigrateResult } from './run.js';

export interface StepLine { name: string; direction: 'up' | 'down'; ms: number | null }

/** The planned steps with the time each took (null: not run). */
export function stepLines(result: MigrateResult): StepLine[] {
  const ran = new Map(result.done.map((d) => [d.step.name, d.ms]));
  return result.plan.actions.map((a) => {
    const s = a.params;
    return { name: s.name, direction: s.direction, ms: ran.get(s.name) ?? null };
  });
}

/** The version after the steps that ran. */
export function versionAfter(result: MigrateResult): string {
  const last = result.done.at(-1);
  return last ? last.step.to : result.from;
}

export function formatSteps(result: MigrateResult, options: { dryRun: boolean; backup?: string | null; backupSchedule?: string }): string {
  const lines: string[] = [];
  if (options.backup) lines.push(`+ backup ${options.backup} (schema.backupBefore)`);
  else if (options.dryRun && options.backupSchedule) lines.push(`+ would back up PostgreSQL first: schedule ${options.backupSchedule} (schema.backupBefore)`);
  const steps = stepLines(result);
  for (const s of steps) {
    const sign = s.direction === 'up' ? '+' : '-';
    lines.push(options.dryRun || result.rehearsedMs !== null
      ? `${sign} would ${s.direction === 'up' ? 'apply' : 'roll back'} ${s.name}${result.rehearsedMs !== null ? ': rehearsed, it runs' : ''}`
      : `${sign} ${s.name} (${formatDuration(s.ms ?? 0)})`);
  }
  if (steps.length === 0) lines.push(`No changes: the schema is at ${result.from}.`);
  else if (result.rehearsedMs !== null) {
    lines.push(`Rehearsed: ${plural(steps.length, 'step')} from ${result.from} ran in one transaction (${formatDuration(result.rehearsedMs)}), rolled back; nothing changed.`);
  } else if (options.dryRun) lines.push(`Dry run: ${plural(steps.length, 'step')} from ${result.from}; nothing changed.`);
  else lines.push(`Schema at ${versionAfter(result)} (was ${result.from}).`);
  return lines.join('\n');
}

export function formatInit(result: InitResult): string {
  const lines: string[] = [result.created ? `+ database ${result.database} created` : `  database ${result.database} exists`];
  for (const e of result.extensions) {
    const sign = e.status === 'created' ? '+' : e.status === 'failed' ? '!' : ' ';
    const what = { created: 'created', present: 'present', unavailable: 'not available', failed: 'could not be created' }[e.status];
    lines.push(`${sign} extension ${e.name}: ${what}${e.note ? ` (${e.note})` : ''}`);
  }
  lines.push(formatSteps(result.migrations, { dryRun: false }));
  const s = result.seed;
  if (s) {
    const c = s.counts;
    lines.push(`+ seeded at scale ${s.scale} in ${formatDuration(s.ms)}: ${plural(c.users, 'user')}, ${plural(c.sessions, 'session')}, `
      + `${plural(c.conversations, 'conversation')}, ${plural(c.messages, 'message')}, ${plural(c.memory, 'memory', 'memories')}, ${plural(c.metrics, 'metric')}, `
      + `${plural(c.metricsHourly, 'hourly roll-up')}, ${plural(c.cacheEntries, 'cache entry', 'cache entries')}; database size ${formatBytes(s.databaseBytes)}`);
    for (const store of s.stores) {
      if ('skipped' in store) lines.push(`  ${store.store} not seeded: ${store.skipped}`);
      else if (store.store === 'chroma') lines.push(`+ seeded chroma in ${formatDuration(store.ms)}: collection ${store.collection}, ${plural(store.records, 'record')}`);
      else lines.push(`+ seeded redis in ${formatDuration(store.ms)}: ${plural(store.sessions, 'live session')}, ${plural(store.cacheEntries, 'cache entry', 'cache entries')}`);
    }
  }
  return lines.join('\n');
}
