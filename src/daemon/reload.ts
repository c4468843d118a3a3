/**
 * What a config reload changes for the daemon, for its log line: the timing it recomputes
 * (schedules, health interval) named one by one, the rest summed up by the config hash. Pure.
 */
import type { Desired } from '../config/types.js';
import { isJarvisError, messageOf } from '../errors.js';

export interface ConfigChange {
  previousHash: string;
  configHash: string;
  /** `health.interval: 3600s → 2s`, `backups.nightly: added (0 3 * * * UTC)`, …; empty when only other settings moved. */
  changed: string[];
}

const scheduleText = (b: Desired['backups'][number]) => `${b.cron} ${b.timezone}`;

export function describeChange(before: Desired, after: Desired): ConfigChange {
  const changed: string[] = [];
  if (before.health.intervalSeconds !== after.health.intervalSeconds) {
    changed.push(`health.interval: ${before.health.intervalSeconds}s → ${after.health.intervalSeconds}s`);
  }
  const old = new Map(before.backups.map((b) => [b.name, b]));
  const next = new Map(after.backups.map((b) => [b.name, b]));
  for (const [name, b] of next) {
    const was = old.get(name);
    if (!was) changed.push(`backups.${name}: added (${scheduleText(b)})`);
    else if (scheduleText(was) !== scheduleText(b)) changed.push(`backups.${name}: ${scheduleText(was)} → ${scheduleText(b)}`);
  }
  for (const name of old.keys()) if (!next.has(name)) changed.push(`backups.${name}: removed`);
  if (before.storage.path !== after.storage.path) changed.push(`storage.path: ${before.storage.path} → ${after.storage.path}`);
  const repositoriesText = (d: Desired) => (d.repositories ?? []).map((r) => `${r.name} (${r.kind === 'local' ? r.dir : `s3://${r.s3.bucket}/${r.s3.prefix}`})`).join(', ') || 'storage.path';
  if (repositoriesText(before) !== repositoriesText(after)) changed.push(`repositories: ${repositoriesText(before)} → ${repositoriesText(after)}`);
  return { previousHash: before.configHash, configHash: after.configHash, changed };
}

/** The fields of the log line for a config that did not load: the problems as `file:line:col path: message`. */
export function describeLoadFailure(e: unknown): { code?: string; error: string; problems: string[] } {
  if (isJarvisError(e)) return { code: e.code, error: e.message, problems: e.details.length ? e.details : [e.message] };
  return { error: messageOf(e), problems: [messageOf(e)] };
}
