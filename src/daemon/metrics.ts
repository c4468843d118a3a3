/**
 * What the daemon adds to /metrics besides the health check: its runs and actions, when it
 * started, when it last applied. Pure.
 */
import type { MetricFamily } from '../render/prometheus.js';

export interface DaemonCounters {
  startedAt: Date;
  /** Apply runs by status (succeeded, failed, cancelled, nothing_to_do, refused). */
  runs: Map<string, number>;
  /** Actions by `type/status`. */
  actions: Map<string, number>;
  lastRun?: { finishedAt: Date; durationMs: number; status: string };
  healthChecks: number;
  healthCheckFailures: number;
  nextApplyAt?: Date;
}

export function newCounters(startedAt: Date): DaemonCounters {
  return { startedAt, runs: new Map(), actions: new Map(), healthChecks: 0, healthCheckFailures: 0 };
}

export function daemonFamilies(c: DaemonCounters): MetricFamily[] {
  const families: MetricFamily[] = [
    { name: 'jarvis_db_daemon_start_time_seconds', help: 'When the daemon started (Unix time).', type: 'gauge', samples: [{ value: c.startedAt.getTime() / 1000 }] },
    {
      name: 'jarvis_db_daemon_runs_total', help: 'Apply runs of the daemon by status (succeeded, failed, cancelled, nothing_to_do, refused).', type: 'counter',
      samples: [...c.runs].sort().map(([status, n]) => ({ labels: { status }, value: n })),
    },
    {
      name: 'jarvis_db_daemon_actions_total', help: 'Actions the daemon\'s applies ran, by action type and outcome.', type: 'counter',
      samples: [...c.actions].sort().map(([key, n]) => {
        const [type, status] = key.split('/');
        return { labels: { type: type!, status: status! }, value: n };
      }),
    },
    { name: 'jarvis_db_daemon_health_checks_total', help: 'Health checks the daemon ran.', type: 'counter', samples: [{ value: c.healthChecks }] },
    { name: 'jarvis_db_daemon_health_check_failures_total', help: 'Health checks that could not run at all (not unhealthy results: failures of the check itself).', type: 'counter', samples: [{ value: c.healthCheckFailures }] },
  ];
  if (c.lastRun) {
    families.push(
      { name: 'jarvis_db_daemon_last_run_timestamp_seconds', help: 'When the last apply run finished (Unix time).', type: 'gauge', samples: [{ value: c.lastRun.finishedAt.getTime() / 1000 }] },
      { name: 'jarvis_db_daemon_last_run_duration_seconds', help: 'Wall time of the last apply run.', type: 'gauge', samples: [{ value: c.lastRun.durationMs / 1000 }] },
    );
  }
  if (c.nextApplyAt) {
    families.push({ name: 'jarvis_db_daemon_next_run_timestamp_seconds', help: 'When the daemon next applies what is due (Unix time).', type: 'gauge', samples: [{ value: c.nextApplyAt.getTime() / 1000 }] });
  }
  return families;
}
