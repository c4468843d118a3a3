/**
 * What probes return and what a health check observes: plain, JSON-serialisable data.
 */
import { checkSpec, type HealthService } from './checks.js';

export interface Sample {
  /** A name from the catalogue (`checks.ts`): `postgres.connections_used_ratio`. */
  check: string;
  /** The labels the catalogue names for this check, e.g. `{ schedule: 'postgres-nightly' }`. */
  labels?: Record<string, string>;
  /** null when it could not be measured; `problem` says why. */
  value: number | null;
  problem?: string;
  /** Context for people: `81 of 97`, `held by pg_dump`. */
  detail?: string;
  /** Numbers a check's `judgeWhen` looks at (`blocks`, `dead`, `lookups`). */
  context?: Record<string, number>;
}

export interface HealthObservation {
  takenAt: string;
  /** Wall time of the probes, all run at once. */
  durationMs: number;
  /** The probes that ran (all, or the one `--service` named). */
  services: HealthService[];
  /** Wall time of each probe. */
  probeMs: Partial<Record<HealthService, number>>;
  samples: Sample[];
  /** The previous check's counter values by key (from the history), for counters judged on their increase. */
  previous?: { at: string; counters: Record<string, number> };
}

/** `backups.age_interval_ratio.postgres-nightly`: the check, then its label values in catalogue order. */
export function sampleKey(sample: Pick<Sample, 'check' | 'labels'>): string {
  const names = checkSpec(sample.check)?.labels ?? Object.keys(sample.labels ?? {});
  const values = names.map((n) => sample.labels?.[n]).filter((v): v is string => v !== undefined);
  return [sample.check, ...values].join('.');
}

/** True when `key` is the check `name` or one of its labelled samples (`--check backups.age_seconds`). */
export function keyMatches(key: string, name: string): boolean {
  return key === name || key.startsWith(name + '.');
}
