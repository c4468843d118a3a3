/**
 * The Grafana dashboard, generated from the checks table (checks.ts) and the config's thresholds
 * (`jarvis-db alerts dashboard`): the layout below says which checks share a panel; units, help
 * texts and threshold lines come from each check, so a threshold changed in the YAML moves its
 * line and a check added to the table without a panel fails its test. Pure.
 */
import type { Desired, Threshold } from '../config/types.js';
import { checkSpec, metricName, type CheckSpec } from './checks.js';
import { effectiveThreshold } from './evaluate.js';

type PanelKind = 'timeseries' | 'stat' | 'status' | 'up' | 'unhealthy';

interface PanelLayout {
  title: string;
  kind: PanelKind;
  /** What it plots: a check (its metric, selected by instance) or a PromQL with `{I}` for the selector. */
  targets: { check?: string; expr?: string; legend: string }[];
  /** The unit, when the first target is not a check (else that check's, whose threshold lines the panel also shows). */
  unit?: CheckSpec['display'];
  w?: number;
  h?: number;
  min?: number;
  max?: number;
  description?: string;
}

interface RowLayout { title: string; panels: PanelLayout[] }

const c = (check: string, legend: string) => ({ check, legend });
const q = (expr: string, legend: string) => ({ expr, legend });

/** Which checks share a panel, by row. Every check in checks.ts appears here (test/health/grafana.test.ts). */
export const DASHBOARD_LAYOUT: RowLayout[] = [
  {
    title: 'Overview',
    panels: [
      { title: 'Overall status', kind: 'status', w: 6, h: 5, targets: [q('max(jarvis_db_health_status{I})', 'worst')], description: 'The worst status of all checks: the exit code of `jarvis-db health check`.' },
      { title: 'PostgreSQL', kind: 'up', w: 6, h: 5, targets: [c('postgres.up', 'postgres')] },
      { title: 'Redis', kind: 'up', w: 6, h: 5, targets: [c('redis.up', 'redis')] },
      { title: 'Chroma', kind: 'up', w: 6, h: 5, targets: [c('chroma.up', 'chroma')] },
      { title: 'Checks that are not healthy', kind: 'unhealthy', w: 16, targets: [q('jarvis_db_health_status{I} > 0', '{{check}}')], description: 'Every check whose status is WARNING (1), CRITICAL (2) or UNKNOWN (3).' },
      { title: 'Health check duration', kind: 'timeseries', targets: [q('jarvis_db_health_check_duration_seconds{I}', 'check')], unit: 'seconds' },
    ],
  },
  {
    title: 'PostgreSQL',
    panels: [
      { title: 'Connections used', kind: 'timeseries', min: 0, max: 1, targets: [c('postgres.connections_used_ratio', 'used of available')] },
      { title: 'Connections', kind: 'timeseries', targets: [c('postgres.connections', 'open'), c('postgres.connections_max', 'available')] },
      { title: 'Cache hit ratio', kind: 'timeseries', max: 1, targets: [c('postgres.cache_hit_ratio', 'hit ratio')] },
      { title: 'Longest transaction and query', kind: 'timeseries', targets: [c('postgres.longest_transaction_seconds', 'transaction'), c('postgres.longest_query_seconds', 'query')] },
      { title: 'Database size', kind: 'timeseries', targets: [c('postgres.database_size_bytes', 'size')] },
      { title: 'Dead tuples (largest tables)', kind: 'timeseries', min: 0, targets: [c('postgres.dead_tuple_ratio', '{{table}}')] },
      { title: 'Waiting locks', kind: 'timeseries', min: 0, targets: [c('postgres.waiting_locks', 'waiting')] },
      { title: 'Transaction ID wraparound', kind: 'timeseries', min: 0, targets: [c('postgres.xid_wraparound_ratio', 'of 2^31')] },
      {
        title: 'Replication lag and slow statements', kind: 'timeseries',
        targets: [c('postgres.replication_lag_seconds', 'replication lag (s)'), c('postgres.slow_statements', 'statements with mean >= 1 s'), c('postgres.slowest_statement_mean_seconds', 'slowest mean (s)')],
        description: 'Replication lag appears on replicas only; slow statements need pg_stat_statements.',
      },
    ],
  },
  {
    title: 'Point-in-time recovery',
    panels: [
      { title: 'WAL receiver', kind: 'up', w: 6, h: 8, targets: [c('wal.receiver_running', 'receiver')] },
      { title: 'Archive lag against the rpo', kind: 'timeseries', w: 6, min: 0, targets: [c('wal.archive_lag_rpo_ratio', 'lag / rpo')] },
      { title: 'Archive lag', kind: 'timeseries', w: 6, unit: 'seconds', targets: [c('wal.archive_lag_seconds', 'lag'), c('wal.last_archived_segment_age_seconds', 'last archived segment age')] },
      { title: 'Recoverable since', kind: 'timeseries', w: 6, targets: [q(`time() - ${metricName('wal.window_start_timestamp_seconds')}{I}`, '{{repository}}')], unit: 'seconds', description: 'How far back a point-in-time restore can go, per repository: the age of the window\'s start.' },
    ],
  },
  {
    title: 'Redis',
    panels: [
      { title: 'Memory used', kind: 'timeseries', min: 0, targets: [c('redis.memory_used_ratio', 'of maxmemory')] },
      { title: 'Memory', kind: 'timeseries', targets: [c('redis.memory_used_bytes', 'used'), c('redis.memory_max_bytes', 'limit')] },
      {
        title: 'Keyspace hit ratio (5m)', kind: 'timeseries', max: 1, unit: 'ratio',
        targets: [q('rate(jarvis_db_redis_keyspace_hits_total{I}[5m]) / (rate(jarvis_db_redis_keyspace_hits_total{I}[5m]) + rate(jarvis_db_redis_keyspace_misses_total{I}[5m]))', 'hits / lookups'), c('redis.keyspace_hit_ratio', 'since start')],
      },
      { title: 'Operations per second', kind: 'timeseries', targets: [c('redis.ops_per_second', 'instantaneous'), q('rate(jarvis_db_redis_commands_processed_total{I}[5m])', 'commands (5m rate)')] },
      { title: 'Clients', kind: 'timeseries', targets: [c('redis.connected_clients', 'connected'), c('redis.blocked_clients', 'blocked'), q('increase(jarvis_db_redis_rejected_connections_total{I}[5m])', 'rejected (5m)')] },
      {
        title: 'Fragmentation and persistence', kind: 'timeseries',
        targets: [c('redis.memory_fragmentation_ratio', 'fragmentation'), c('redis.rdb_last_bgsave_success', 'last BGSAVE ok'), c('redis.clients_used_ratio', 'clients of maxclients')],
      },
      { title: 'Keys', kind: 'timeseries', targets: [c('redis.keys', 'db{{db}}')] },
    ],
  },
  {
    title: 'Chroma',
    panels: [
      { title: 'Heartbeat latency', kind: 'timeseries', targets: [c('chroma.heartbeat_seconds', 'heartbeat')] },
      { title: 'Records per collection', kind: 'timeseries', targets: [c('chroma.records', '{{collection}}')] },
      { title: 'Data directory', kind: 'timeseries', targets: [c('chroma.data_bytes', 'data directory')] },
      { title: 'Collections', kind: 'stat', w: 8, h: 5, targets: [c('chroma.collections', 'collections')] },
      { title: 'Unreadable collections', kind: 'stat', w: 8, h: 5, targets: [c('chroma.unreadable_collections', 'unreadable')] },
      { title: 'Chroma version', kind: 'stat', w: 8, h: 5, targets: [c('chroma.build_info', '{{version}}')] },
    ],
  },
  {
    title: 'Consistency across the stores',
    panels: [
      { title: 'Orphans per link and side', kind: 'timeseries', min: 0, targets: [c('consistency.orphans', '{{link}} {{side}}')] },
      { title: 'Keys compared per link', kind: 'timeseries', min: 0, targets: [c('consistency.keys_compared', '{{link}}')] },
      { title: 'Broken links', kind: 'stat', w: 24, h: 5, targets: [c('consistency.broken_links', 'broken')] },
    ],
  },
  {
    title: 'Machine',
    panels: [
      { title: 'Load per CPU', kind: 'timeseries', w: 6, targets: [c('system.load_per_cpu', '1-minute load / CPUs')] },
      { title: 'CPU use', kind: 'timeseries', w: 6, min: 0, max: 1, targets: [c('system.cpu_usage_ratio', 'busy')] },
      { title: 'Memory available', kind: 'timeseries', w: 6, min: 0, max: 1, targets: [c('system.memory_available_ratio', 'available')] },
      { title: 'Disk free (storage)', kind: 'timeseries', w: 6, min: 0, max: 1, targets: [c('system.disk_free_ratio', 'free')] },
      { title: 'Disk free bytes (storage)', kind: 'timeseries', w: 24, targets: [c('system.disk_free_bytes', 'free')] },
    ],
  },
  {
    title: 'Backups',
    panels: [
      { title: 'Age of the newest backup', kind: 'timeseries', targets: [c('backups.age_seconds', '{{schedule}}')] },
      { title: 'Age in cron intervals', kind: 'timeseries', min: 0, targets: [c('backups.age_interval_ratio', '{{schedule}}')], description: 'Age of the newest valid backup over the interval of the schedule\'s cron.' },
      { title: 'Valid backups', kind: 'timeseries', targets: [c('backups.valid', '{{schedule}}'), c('backups.damaged', '{{schedule}} damaged')] },
      { title: 'Last verification', kind: 'up', w: 12, h: 5, targets: [c('backups.last_verification_success', '{{schedule}}')] },
      { title: 'Newest backup', kind: 'stat', w: 12, h: 5, unit: 'seconds', targets: [q(`time() - ${metricName('backups.newest_timestamp_seconds')}{I}`, '{{schedule}}')] },
    ],
  },
  {
    title: 'Repositories',
    panels: [
      { title: 'Repository reachable', kind: 'up', w: 24, h: 5, targets: [c('repository.up', '{{repository}}')] },
      { title: 'Age of the newest backup per repository', kind: 'timeseries', targets: [c('repository.backup_age_seconds', '{{repository}} {{schedule}}')] },
      { title: 'Age in cron intervals per repository', kind: 'timeseries', min: 0, targets: [c('repository.backup_age_interval_ratio', '{{repository}} {{schedule}}')] },
      { title: 'Valid backups per repository', kind: 'timeseries', targets: [c('repository.backups_valid', '{{repository}} {{schedule}}')] },
    ],
  },
  {
    title: 'Daemon',
    panels: [
      { title: 'Apply runs (1h)', kind: 'timeseries', targets: [q('increase(jarvis_db_daemon_runs_total{I}[1h])', '{{status}}')], unit: 'count', description: 'Runs of `jarvis-db daemon` applying what is due, by outcome.' },
      { title: 'Actions (1h)', kind: 'timeseries', targets: [q('increase(jarvis_db_daemon_actions_total{I}[1h])', '{{type}} {{status}}')], unit: 'count' },
      {
        title: 'Last and next run', kind: 'timeseries', unit: 'seconds',
        targets: [q('time() - jarvis_db_daemon_last_run_timestamp_seconds{I}', 'since the last run'), q('jarvis_db_daemon_next_run_timestamp_seconds{I} - time()', 'until the next run'), q('jarvis_db_daemon_last_run_duration_seconds{I}', 'last run took')],
      },
      {
        title: 'Daemon health checks', kind: 'timeseries', w: 24, unit: 'count',
        targets: [q('rate(jarvis_db_daemon_health_checks_total{I}[5m]) * 60', 'checks per minute'), q('increase(jarvis_db_daemon_health_check_failures_total{I}[1h])', 'failed checks (1h)'), q('time() - jarvis_db_daemon_start_time_seconds{I}', 'uptime (s)')],
      },
    ],
  },
];

const INSTANCE = '{instance=~"$instance"}';
const DATASOURCE = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };
const STATUS_MAPPING = { type: 'value', options: { 0: { text: 'HEALTHY', color: 'green' }, 1: { text: 'WARNING', color: 'orange' }, 2: { text: 'CRITICAL', color: 'red' }, 3: { text: 'UNKNOWN', color: 'purple' } } };
const UNITS: Record<CheckSpec['display'], string> = { ratio: 'percentunit', bytes: 'bytes', seconds: 's', count: 'short', bool: 'short', number: 'short', timestamp: 'dateTimeAsIso' };

/** Grafana threshold steps: green, then orange at the warning and red at the critical (reversed when lower is worse). */
export function thresholdSteps(t: Threshold | undefined): { color: string; value: number | null }[] {
  if (!t) return [{ color: 'green', value: null }];
  if (!t.lowerIsWorse) {
    return [{ color: 'green', value: null }, ...(t.warning !== undefined ? [{ color: 'orange', value: t.warning }] : []), ...(t.critical !== undefined ? [{ color: 'red', value: t.critical }] : [])];
  }
  const bottom = t.critical !== undefined ? 'red' : 'orange';
  return [{ color: bottom, value: null }, ...(t.critical !== undefined && t.warning !== undefined ? [{ color: 'orange', value: t.critical }] : []), { color: 'green', value: t.warning ?? t.critical! }];
}

function target(t: PanelLayout['targets'][number], i: number, instant: boolean): Record<string, unknown> {
  const expr = t.check ? metricName(t.check) + INSTANCE : t.expr!.replaceAll('{I}', INSTANCE);
  return { refId: String.fromCharCode(65 + i), datasource: DATASOURCE, expr, legendFormat: t.legend, ...(instant ? { instant: true } : {}) };
}

function panelJson(p: PanelLayout, id: number, gridPos: { x: number; y: number; w: number; h: number }, thresholds: Record<string, Threshold>): Record<string, unknown> {
  const first = p.targets[0]!.check;
  const spec = first ? checkSpec(first) : undefined;
  if (first && !spec) throw new Error(`dashboard panel ${p.title}: no check ${first}`);
  const threshold = first ? effectiveThreshold(first, thresholds) : undefined;
  const unit = UNITS[p.unit ?? spec?.display ?? 'count'];
  const description = p.description ?? (p.targets.length === 1 && spec ? spec.help : undefined);
  const base = { type: p.kind === 'timeseries' ? 'timeseries' : p.kind === 'unhealthy' ? 'table' : 'stat', title: p.title, id, datasource: DATASOURCE, gridPos, ...(description ? { description } : {}) };
  const statOptions = { colorMode: 'background', graphMode: 'none', reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, textMode: 'value_and_name' };
  switch (p.kind) {
    case 'timeseries':
      return {
        ...base,
        fieldConfig: {
          defaults: { unit, thresholds: { mode: 'absolute', steps: thresholdSteps(threshold) }, custom: { thresholdsStyle: { mode: threshold ? 'line' : 'off' } }, ...(p.min !== undefined ? { min: p.min } : {}), ...(p.max !== undefined ? { max: p.max } : {}) },
          overrides: [],
        },
        options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
        targets: p.targets.map((t, i) => target(t, i, false)),
      };
    case 'unhealthy':
      return {
        ...base,
        fieldConfig: { defaults: { mappings: [STATUS_MAPPING] }, overrides: [] },
        options: { showHeader: true },
        transformations: [{ id: 'labelsToFields', options: {} }, { id: 'organize', options: { excludeByName: { Time: true, __name__: true, job: true } } }],
        targets: p.targets.map((t, i) => ({ ...target(t, i, true), format: 'table' })),
      };
    default: {
      const mappings = p.kind === 'status' ? [STATUS_MAPPING] : p.kind === 'up' ? [{ type: 'value', options: { 1: { text: 'UP', color: 'green' }, 0: { text: 'DOWN', color: 'red' } } }] : [];
      const steps = p.kind === 'status' ? [{ color: 'green', value: null }, { color: 'orange', value: 1 }, { color: 'red', value: 2 }, { color: 'purple', value: 3 }] : thresholdSteps(threshold);
      return {
        ...base,
        fieldConfig: { defaults: { unit: p.kind === 'up' || p.kind === 'status' ? 'short' : unit, mappings, thresholds: { mode: 'absolute', steps }, color: { mode: 'thresholds' } }, overrides: [] },
        options: statOptions,
        targets: p.targets.map((t, i) => target(t, i, true)),
      };
    }
  }
}

/** The dashboard as Grafana imports it (`__inputs` asks for the Prometheus data source). */
export function grafanaDashboard(desired: Pick<Desired, 'health'>): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of DASHBOARD_LAYOUT) {
    panels.push({ type: 'row', title: row.title, id: id++, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y: y++ }, panels: [] });
    let x = 0;
    let lineHeight = 0;
    for (const p of row.panels) {
      const w = p.w ?? 8;
      const h = p.h ?? 8;
      if (x + w > 24) { y += lineHeight; x = 0; lineHeight = 0; }
      panels.push(panelJson(p, id++, { h, w, x, y }, desired.health.thresholds));
      x += w;
      lineHeight = Math.max(lineHeight, h);
    }
    y += lineHeight;
  }
  return {
    __inputs: [{ name: 'DS_PROMETHEUS', label: 'Prometheus', description: 'The Prometheus that scrapes `jarvis-db daemon` (/metrics)', type: 'datasource', pluginId: 'prometheus', pluginName: 'Prometheus' }],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      ...['timeseries:Time series', 'stat:Stat', 'table:Table'].map((s) => ({ type: 'panel', id: s.split(':')[0], name: s.split(':')[1], version: '' })),
    ],
    title: 'jarvis-db',
    uid: 'jarvis-db-health',
    description: 'PostgreSQL, Redis, Chroma, point-in-time recovery, the machine and the backups, as `jarvis-db daemon` exports them on /metrics. Generated by `jarvis-db alerts dashboard`.',
    tags: ['jarvis-db', 'postgresql', 'redis', 'chroma'],
    timezone: 'browser',
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '1m',
    time: { from: 'now-24h', to: 'now' },
    templating: {
      list: [{
        name: 'instance', label: 'instance', type: 'query', datasource: DATASOURCE,
        query: { query: 'label_values(jarvis_db_health_check_timestamp_seconds, instance)', refId: 'instance' },
        definition: 'label_values(jarvis_db_health_check_timestamp_seconds, instance)', includeAll: true, allValue: '.*', multi: true, refresh: 2, current: {},
      }],
    },
    annotations: { list: [] },
    links: [],
    panels,
  };
}
