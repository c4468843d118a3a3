/**
 * The catalogue of health checks: every sample a probe can take, its Prometheus type and help,
 * and the default thresholds. A check name is `<service>.<metric>_<unit>` and the Prometheus
 * name is `jarvis_db_` followed by the same with `_` for the dot, so the YAML threshold key,
 * the `--check` filter, the history and the metric all use one name.
 *
 * Defaults follow the alert rules that ship with postgres_exporter (postgres_mixin),
 * redis_exporter (redis-mixin) and node_exporter where one exists; where they have none, the
 * value is ours and the comment says so. Pure data, loaded by config validation too.
 */
import type { Threshold } from '../config/types.js';

export const HEALTH_SERVICES = ['postgres', 'redis', 'chroma', 'system', 'backups', 'repository', 'wal', 'consistency'] as const;
export type HealthService = (typeof HEALTH_SERVICES)[number];

export type MetricType = 'gauge' | 'counter';

/** A sample is judged only when a context number reaches a minimum (small numbers mislead). */
export interface JudgeWhen {
  context: string;
  atLeast: number;
  /** Why, for the message when the sample is not judged. */
  why: string;
}

export interface CheckSpec {
  service: HealthService;
  type: MetricType;
  help: string;
  /** Label names the samples of this check carry, in order (they extend the check key). */
  labels?: readonly string[];
  threshold?: Threshold;
  /** Where the default threshold comes from. */
  source?: string;
  judgeWhen?: JudgeWhen;
  /** Counters: the threshold applies to the increase since the previous check (or since the server started). */
  judgeIncrease?: boolean;
  /** The status when the probe could not give a value because the thing measured does not exist yet. */
  whenMissing?: 'CRITICAL' | 'WARNING';
  /** How to show a value to people. */
  display: 'ratio' | 'bytes' | 'seconds' | 'count' | 'bool' | 'number' | 'timestamp';
}

const up = (service: HealthService, what: string): CheckSpec => ({
  service, type: 'gauge', help: `1 when ${what} answered the health check, 0 when it could not be reached.`,
  threshold: { critical: 1, lowerIsWorse: true }, source: `${service}_up == 0 (exporter "Down" rules)`, display: 'bool',
});

export const CHECKS = {
  'postgres.up': up('postgres', 'PostgreSQL'),
  'postgres.connections': { service: 'postgres', type: 'gauge', help: 'Client connections open on the server (pg_stat_activity).', display: 'count' },
  'postgres.connections_max': { service: 'postgres', type: 'gauge', help: 'Connections available to clients: max_connections minus the reserved ones.', display: 'count' },
  'postgres.connections_used_ratio': {
    service: 'postgres', type: 'gauge', help: 'Client connections over the connections available to them.',
    threshold: { warning: 0.8, critical: 0.95, lowerIsWorse: false }, source: 'postgres_mixin PostgreSQLHighConnections (> 80%); critical ours, before PostgreSQLMaxConnectionsReached', display: 'ratio',
  },
  'postgres.database_size_bytes': { service: 'postgres', type: 'gauge', help: 'Size of the configured database on disk (pg_database_size).', display: 'bytes' },
  'postgres.cache_hit_ratio': {
    service: 'postgres', type: 'gauge', help: 'Share of block reads served from shared buffers since the statistics were reset (pg_stat_database).',
    threshold: { warning: 0.98, critical: 0.9, lowerIsWorse: true }, source: 'postgres_mixin PostgreSQLCacheHitRatio (< 0.98); critical ours',
    judgeWhen: { context: 'blocks', atLeast: 10_000, why: 'too few block reads to judge' }, display: 'ratio',
  },
  'postgres.longest_transaction_seconds': {
    service: 'postgres', type: 'gauge', help: 'Age of the oldest open transaction of a client.',
    threshold: { warning: 120, critical: 1800, lowerIsWorse: false }, source: 'postgres_mixin PostgreSQLSlowQueries (max_tx_duration > 2 min); critical ours', display: 'seconds',
  },
  'postgres.longest_query_seconds': {
    service: 'postgres', type: 'gauge', help: 'Run time of the longest running active query.',
    threshold: { warning: 60, critical: 300, lowerIsWorse: false }, source: 'ours', display: 'seconds',
  },
  'postgres.slow_statements': {
    service: 'postgres', type: 'gauge', help: 'Statements in pg_stat_statements whose mean execution time is 1 s or more (absent without the extension).', display: 'count',
  },
  'postgres.slowest_statement_mean_seconds': {
    service: 'postgres', type: 'gauge', help: 'Highest mean execution time of a statement in pg_stat_statements.', display: 'seconds',
  },
  'postgres.xid_wraparound_ratio': {
    service: 'postgres', type: 'gauge', help: 'Oldest age(datfrozenxid) of the databases over the 2^31 transactions of wraparound.',
    threshold: { warning: 0.5, critical: 0.75, lowerIsWorse: false }, source: 'pgmonitor ccp_transaction_wraparound (50% / 75%)', display: 'ratio',
  },
  'postgres.replication_lag_seconds': {
    service: 'postgres', type: 'gauge', help: 'How far a replica\'s replay is behind (absent on a primary).',
    threshold: { warning: 3600, lowerIsWorse: false }, source: 'postgres_mixin PostgresReplicationLaggingMore1Hour', display: 'seconds',
  },
  'postgres.dead_tuple_ratio': {
    service: 'postgres', type: 'gauge', help: 'Dead tuples over all tuples of each of the largest tables.', labels: ['table'],
    threshold: { warning: 0.1, lowerIsWorse: false }, source: 'postgres_mixin PostgresHasTooManyDeadTuples (>= 0.1 with > 10000 dead)',
    judgeWhen: { context: 'dead', atLeast: 10_000, why: 'fewer than 10000 dead tuples' }, display: 'ratio',
  },
  'postgres.waiting_locks': {
    service: 'postgres', type: 'gauge', help: 'Lock requests waiting to be granted (pg_locks).',
    threshold: { warning: 5, lowerIsWorse: false }, source: 'ours', display: 'count',
  },

  'redis.up': up('redis', 'Redis'),
  'redis.memory_used_bytes': { service: 'redis', type: 'gauge', help: 'Memory Redis has allocated (used_memory).', display: 'bytes' },
  'redis.memory_max_bytes': { service: 'redis', type: 'gauge', help: 'maxmemory, or the machine\'s memory when maxmemory is 0.', display: 'bytes' },
  'redis.memory_used_ratio': {
    service: 'redis', type: 'gauge', help: 'used_memory over maxmemory (or the machine\'s memory when maxmemory is 0).',
    threshold: { warning: 0.9, critical: 0.95, lowerIsWorse: false }, source: 'redis-mixin RedisOutOfMemory (> 90%); critical ours', display: 'ratio',
  },
  'redis.keyspace_hit_ratio': {
    service: 'redis', type: 'gauge', help: 'keyspace_hits over keyspace lookups since the server started.',
    judgeWhen: { context: 'lookups', atLeast: 1000, why: 'too few lookups to judge' }, display: 'ratio',
  },
  'redis.keyspace_hits_total': { service: 'redis', type: 'counter', help: 'Successful key lookups since the server started.', display: 'count' },
  'redis.keyspace_misses_total': { service: 'redis', type: 'counter', help: 'Failed key lookups since the server started.', display: 'count' },
  'redis.connected_clients': { service: 'redis', type: 'gauge', help: 'Client connections.', display: 'count' },
  'redis.clients_used_ratio': {
    service: 'redis', type: 'gauge', help: 'Client connections over maxclients.',
    threshold: { warning: 0.8, critical: 0.95, lowerIsWorse: false }, source: 'redis-mixin RedisTooManyConnections, as a share of maxclients', display: 'ratio',
  },
  'redis.blocked_clients': { service: 'redis', type: 'gauge', help: 'Clients waiting in a blocking command (BLPOP, WAIT, ...).', display: 'count' },
  'redis.ops_per_second': { service: 'redis', type: 'gauge', help: 'Commands per second as Redis measures it (instantaneous_ops_per_sec).', display: 'number' },
  'redis.commands_processed_total': { service: 'redis', type: 'counter', help: 'Commands processed since the server started.', display: 'count' },
  'redis.rejected_connections_total': {
    service: 'redis', type: 'counter', help: 'Connections refused because of maxclients since the server started.',
    threshold: { warning: 1, lowerIsWorse: false }, source: 'redis_exporter RedisRejectedConnections (increase > 0)', judgeIncrease: true, display: 'count',
  },
  'redis.memory_fragmentation_ratio': {
    service: 'redis', type: 'gauge', help: 'Resident memory over used memory (mem_fragmentation_ratio).',
    threshold: { warning: 1.5, lowerIsWorse: false }, source: 'redis_exporter dashboards; judged past Redis\'s own active-defrag-ignore-bytes (100 MB)',
    judgeWhen: { context: 'fragmentation_bytes', atLeast: 100_000_000, why: 'less than 100 MB fragmented' }, display: 'number',
  },
  'redis.rdb_last_bgsave_success': {
    service: 'redis', type: 'gauge', help: '1 when the last background save succeeded (rdb_last_bgsave_status), 0 when it failed.',
    threshold: { critical: 1, lowerIsWorse: true }, source: 'ours: a failed BGSAVE makes Redis refuse writes', display: 'bool',
  },
  'redis.keys': { service: 'redis', type: 'gauge', help: 'Keys in each database.', labels: ['db'], display: 'count' },

  'chroma.up': up('chroma', 'Chroma'),
  'chroma.heartbeat_seconds': {
    service: 'chroma', type: 'gauge', help: 'Time Chroma took to answer its heartbeat.',
    threshold: { warning: 0.5, critical: 2, lowerIsWorse: false }, source: 'ours', display: 'seconds',
  },
  'chroma.build_info': { service: 'chroma', type: 'gauge', help: 'Always 1; the server version is the label.', labels: ['version'], display: 'number' },
  'chroma.collections': { service: 'chroma', type: 'gauge', help: 'Collections in the configured tenant and database.', display: 'count' },
  'chroma.records': { service: 'chroma', type: 'gauge', help: 'Records in each collection.', labels: ['collection'], display: 'count' },
  'chroma.unreadable_collections': {
    service: 'chroma', type: 'gauge', help: 'Collections that failed to answer a count (integrity).',
    threshold: { critical: 1, lowerIsWorse: false }, source: 'ours', display: 'count',
  },
  'chroma.data_bytes': { service: 'chroma', type: 'gauge', help: 'Size of the Chroma data directory (when services.chroma.path is set).', display: 'bytes' },

  'system.load_per_cpu': {
    service: 'system', type: 'gauge', help: 'One-minute load average divided by the number of CPUs.',
    threshold: { warning: 2, critical: 4, lowerIsWorse: false }, source: 'ours', display: 'number',
  },
  'system.cpu_usage_ratio': { service: 'system', type: 'gauge', help: 'Share of CPU time not idle during the check.', display: 'ratio' },
  'system.memory_available_ratio': {
    service: 'system', type: 'gauge', help: 'MemAvailable over MemTotal.',
    threshold: { warning: 0.1, critical: 0.05, lowerIsWorse: true }, source: 'node_exporter HostOutOfMemory (< 10%); critical ours', display: 'ratio',
  },
  'system.disk_free_ratio': {
    service: 'system', type: 'gauge', help: 'Free space over size of the file system that holds storage.path.',
    threshold: { warning: 0.1, critical: 0.05, lowerIsWorse: true }, source: 'node_exporter HostOutOfDiskSpace (< 10%); critical ours', display: 'ratio',
  },
  'system.disk_free_bytes': { service: 'system', type: 'gauge', help: 'Free space on the file system that holds storage.path.', display: 'bytes' },

  'backups.valid': { service: 'backups', type: 'gauge', help: 'Published backups of each schedule whose manifest holds.', labels: ['schedule'], display: 'count' },
  'backups.age_seconds': { service: 'backups', type: 'gauge', help: 'Age of the newest valid backup of each schedule.', labels: ['schedule'], display: 'seconds' },
  'backups.newest_timestamp_seconds': { service: 'backups', type: 'gauge', help: 'Start time of the newest valid backup of each schedule (Unix time).', labels: ['schedule'], display: 'timestamp' },
  'backups.age_interval_ratio': {
    service: 'backups', type: 'gauge', help: 'Age of the newest valid backup over the interval of the schedule\'s cron.', labels: ['schedule'],
    threshold: { warning: 1.5, critical: 3, lowerIsWorse: false }, source: 'ours: 1.5 and 3 intervals of the schedule', whenMissing: 'CRITICAL', display: 'number',
  },
  'backups.last_verification_success': {
    service: 'backups', type: 'gauge', help: '1 when the most recent verification of a backup of the schedule passed, 0 when it failed (absent before any).', labels: ['schedule'],
    threshold: { critical: 1, lowerIsWorse: true }, source: 'ours', display: 'bool',
  },
  'backups.damaged': {
    service: 'backups', type: 'gauge', help: 'Published-looking backups of each schedule whose manifest does not hold.', labels: ['schedule'],
    threshold: { warning: 1, lowerIsWorse: false }, source: 'ours', display: 'count',
  },

  // With `repositories:` in the config; backups.* above keep their names (existing alerts keep
  // working), these carry a `repository` label. The age is judged per repository when there are
  // several: with one, backups.age_interval_ratio already judges it.
  'repository.up': {
    service: 'repository', type: 'gauge', help: '1 when the repository could be listed, 0 when it could not (unreachable, wrong credentials, missing bucket).', labels: ['repository'],
    threshold: { critical: 1, lowerIsWorse: true }, source: 'ours, like the exporters\' "Down" rules', display: 'bool',
  },
  'repository.backups_valid': { service: 'repository', type: 'gauge', help: 'Published backups of each schedule whose manifest holds, in each repository.', labels: ['repository', 'schedule'], display: 'count' },
  'repository.backup_age_seconds': { service: 'repository', type: 'gauge', help: 'Age of the newest valid backup of each schedule in each repository.', labels: ['repository', 'schedule'], display: 'seconds' },
  'repository.backup_age_interval_ratio': {
    service: 'repository', type: 'gauge', help: 'Age of the newest valid backup of each schedule in each repository (when there are several), over the interval of the schedule\'s cron.', labels: ['repository', 'schedule'],
    threshold: { warning: 1.5, critical: 3, lowerIsWorse: false }, source: 'ours: as backups.age_interval_ratio', whenMissing: 'CRITICAL', display: 'number',
  },

  // With services.postgres.pitr.enabled (src/health/probes/wal.ts, the facts and lag of src/wal/findings.ts).
  'wal.receiver_running': {
    service: 'wal', type: 'gauge', help: '1 when a WAL receiver (wal stream, the daemon) holds the replication slot, 0 when none does.',
    threshold: { critical: 1, lowerIsWorse: true }, source: 'ours: without it nothing is archived', display: 'bool',
  },
  'wal.archive_lag_seconds': {
    service: 'wal', type: 'gauge', help: 'Age of the oldest WAL not yet in the first repository (an upper bound: since the last archived segment was complete, 0 when nothing was written after it).', display: 'seconds',
  },
  'wal.archive_lag_rpo_ratio': {
    service: 'wal', type: 'gauge', help: 'The archive lag over services.postgres.pitr.rpo.',
    threshold: { warning: 1, critical: 2, lowerIsWorse: false }, source: 'ours: WARNING past the rpo, CRITICAL past twice it', display: 'number',
  },
  'wal.last_archived_segment_age_seconds': {
    service: 'wal', type: 'gauge', help: 'Seconds since the newest segment of the first repository was archived.', display: 'seconds',
  },
  'wal.window_start_timestamp_seconds': {
    service: 'wal', type: 'gauge', help: 'Start of the recoverable window of each repository (Unix time): the end of the oldest base backup the WAL chain continues from.', labels: ['repository'],
    display: 'timestamp',
  },

  // With `links:` in the config (src/links/live.ts): the stores compared through each link.
  'consistency.orphans': {
    service: 'consistency', type: 'gauge', labels: ['link', 'side'],
    help: 'Orphans of each link on each side: rows whose record or key the other store lacks (side postgres), records or keys whose row is gone (side chroma or redis); of every key, or of a sample on large stores.',
    threshold: { warning: 1, lowerIsWorse: false }, source: 'ours: any orphan means the stores disagree', display: 'count',
  },
  'consistency.keys_compared': {
    service: 'consistency', type: 'gauge', labels: ['link'], help: 'Keys of both sides each link compared (all of them, or a sample on large stores: the detail says which).', display: 'count',
  },
  'consistency.broken_links': {
    service: 'consistency', type: 'gauge', help: 'Links that name a table, column or collection that does not exist (config errors naming the link\'s file:line).',
    threshold: { critical: 1, lowerIsWorse: false }, source: 'ours: a broken link checks nothing', display: 'count',
  },
} as const satisfies Record<string, CheckSpec>;

export type CheckName = keyof typeof CHECKS;
export const CHECK_NAMES = Object.keys(CHECKS) as CheckName[];

export function checkSpec(name: string): CheckSpec | undefined {
  return (CHECKS as Record<string, CheckSpec>)[name];
}

export function isHealthService(name: string): name is HealthService {
  return (HEALTH_SERVICES as readonly string[]).includes(name);
}

/** `postgres.cache_hit_ratio` → `jarvis_db_postgres_cache_hit_ratio`. */
export function metricName(check: string): string {
  return 'jarvis_db_' + check.replace('.', '_');
}

/** The closest known check names, for "did you mean" in config errors. */
export function similarChecks(name: string, limit = 3): string[] {
  const [service, metric = ''] = name.split('.', 2);
  const words = metric.split('_').filter(Boolean);
  const scored = CHECK_NAMES.map((c) => {
    const [s, m = ''] = c.split('.', 2);
    const shared = words.filter((w) => m.split('_').includes(w)).length;
    return { c, score: shared * 2 + (s === service || (service === 'backup' && s === 'backups') ? 1 : 0) };
  }).filter((x) => x.score > 1);
  return scored.sort((a, b) => b.score - a.score).slice(0, limit).map((x) => x.c);
}
