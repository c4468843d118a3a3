/** The pure halves of the probes, on fixtures. The probes on real servers are in sandbox.test.ts. */
import t from 'tap';
import type { BackupSchedule } from '../../src/config/types.js';
import { evaluate } from '../../src/health/evaluate.js';
import { backupSamples, cronIntervalSeconds, type BackupFacts } from '../../src/health/probes/backups.js';
import { parseInfo, redisSamples } from '../../src/health/probes/redis.js';
import { memoryFromMeminfo } from '../../src/health/probes/system.js';
import { sampleKey } from '../../src/health/samples.js';

const INFO = [
  '# Server', 'redis_version:7.0.15', '',
  '# Clients', 'connected_clients:12', 'blocked_clients:2', 'maxclients:100', '',
  '# Memory', 'used_memory:900000', 'used_memory_rss:3000000', 'total_system_memory:8000000000', 'maxmemory:1000000',
  'mem_fragmentation_ratio:3.33', 'mem_fragmentation_bytes:2100000', '',
  '# Persistence', 'rdb_last_bgsave_status:err', '',
  '# Stats', 'total_commands_processed:5000', 'instantaneous_ops_per_sec:17', 'rejected_connections:0', 'keyspace_hits:900', 'keyspace_misses:100', '',
  '# Keyspace', 'db0:keys=10,expires=0,avg_ttl=0', 'db3:keys=4,expires=1,avg_ttl=100',
].join('\r\n');

t.test('Redis INFO becomes samples: memory against maxmemory, hit ratio, clients against maxclients, keys per database', async (t) => {
  const samples = redisSamples(parseInfo(INFO));
  const byKey = new Map(samples.map((s) => [sampleKey(s), s]));
  t.equal(byKey.get('redis.memory_used_ratio')!.value, 0.9);
  t.equal(byKey.get('redis.memory_max_bytes')!.detail, 'maxmemory');
  t.equal(byKey.get('redis.keyspace_hit_ratio')!.value, 0.9);
  t.equal(byKey.get('redis.clients_used_ratio')!.value, 0.12);
  t.equal(byKey.get('redis.blocked_clients')!.value, 2);
  t.equal(byKey.get('redis.ops_per_second')!.value, 17);
  t.equal(byKey.get('redis.keys.0')!.value, 10);
  t.equal(byKey.get('redis.keys.3')!.value, 4);
  t.equal(byKey.get('redis.rdb_last_bgsave_success')!.value, 0);
  const findings = new Map(evaluate(samples, {}).map((f) => [f.check, f.status]));
  t.equal(findings.get('redis.memory_used_ratio'), 'WARNING', '90% of maxmemory is the exporter\'s RedisOutOfMemory');
  t.equal(findings.get('redis.rdb_last_bgsave_success'), 'CRITICAL');
  t.equal(findings.get('redis.memory_fragmentation_ratio'), 'HEALTHY', '2 MB fragmented is below Redis\'s own 100 MB floor');
});

t.test('with maxmemory 0, Redis memory is measured against the machine\'s memory', async (t) => {
  const samples = redisSamples(parseInfo(INFO.replace('maxmemory:1000000', 'maxmemory:0').replace('maxclients:100', '')), 50);
  const byKey = new Map(samples.map((s) => [sampleKey(s), s]));
  t.equal(byKey.get('redis.memory_max_bytes')!.value, 8e9);
  t.match(byKey.get('redis.memory_used_ratio')!.detail, /maxmemory is 0/);
  t.equal(byKey.get('redis.clients_used_ratio')!.value, 12 / 50, 'maxclients from CONFIG GET when INFO lacks it');
});

t.test('/proc/meminfo gives MemAvailable over MemTotal', async (t) => {
  t.same(memoryFromMeminfo('MemTotal:       16000 kB\nMemFree:     100 kB\nMemAvailable:    4000 kB\n'), { available: 4000 * 1024, total: 16000 * 1024 });
  t.equal(memoryFromMeminfo('nothing'), null);
});

const schedule = (over: Partial<BackupSchedule> = {}): BackupSchedule =>
  ({ name: 'nightly', service: 'postgres', cron: '0 3 * * *', timezone: 'UTC', keep: { last: 3 }, verify: 'checksum', path: 'backups[0]', ...over });
const backup = (id: string, startedAt: string, verification: BackupFacts['verification'] = null): BackupFacts =>
  ({ id, service: 'postgres', schedule: 'nightly', startedAt, verification });

t.test('the cron interval is the gap between the last two fire times, in the schedule\'s timezone', async (t) => {
  t.equal(cronIntervalSeconds(schedule(), new Date('2026-11-24T10:00:00Z')), 86_400);
  t.equal(cronIntervalSeconds(schedule({ cron: '*/15 * * * *' }), new Date('2026-11-24T10:07:00Z')), 900);
  t.equal(cronIntervalSeconds(schedule({ cron: '0 3 * * 1-5' }), new Date('2026-11-23T12:00:00Z')), 3 * 86_400, 'Friday to Monday');
  t.equal(cronIntervalSeconds(schedule({ cron: '0 3 * * *', timezone: 'Europe/Paris' }), new Date('2026-03-29T12:00:00Z')), 23 * 3600, 'the spring DST day is 23 hours');
});

t.test('backup age against the cron interval: WARNING past 1.5 intervals, CRITICAL past 3, CRITICAL with none', async (t) => {
  const now = new Date('2026-11-24T10:00:00Z');
  const status = (facts: BackupFacts[]) => {
    const f = evaluate(backupSamples([schedule()], facts, [], now), {}).find((x) => x.check === 'backups.age_interval_ratio.nightly')!;
    return [f.status, f.message];
  };
  t.match(status([backup('20261124T030000Z-aaaa', '2026-11-24T03:00:00Z')]), ['HEALTHY', /7h 00m old, `0 3 \* \* \*` runs every 1d 0h/]);
  t.match(status([backup('20261122T220000Z-aaaa', '2026-11-22T22:00:00Z')]), ['WARNING']);
  t.match(status([backup('20261120T030000Z-aaaa', '2026-11-20T03:00:00Z')]), ['CRITICAL']);
  t.match(status([]), ['CRITICAL', /no valid backup of postgres schedule nightly/]);
});

t.test('backups of other schedules or services do not count, the newest one does', async (t) => {
  const now = new Date('2026-11-24T10:00:00Z');
  const samples = backupSamples([schedule()], [
    backup('20261124T030000Z-aaaa', '2026-11-24T03:00:00Z'),
    backup('20261101T030000Z-aaaa', '2026-11-01T03:00:00Z'),
    { ...backup('20261124T090000Z-bbbb', '2026-11-24T09:00:00Z'), schedule: 'other' },
    { ...backup('20261124T090000Z-cccc', '2026-11-24T09:00:00Z'), service: 'redis' },
  ], [{ id: '20261123T030000Z-dddd', service: 'postgres', schedule: 'nightly', problem: 'manifest.json fails its own checksum' }], now);
  const byKey = new Map(samples.map((s) => [sampleKey(s), s]));
  t.equal(byKey.get('backups.valid.nightly')!.value, 2);
  t.equal(byKey.get('backups.age_seconds.nightly')!.value, 7 * 3600);
  t.equal(byKey.get('backups.damaged.nightly')!.value, 1);
  t.match(byKey.get('backups.damaged.nightly')!.detail, /fails its own checksum/);
  const findings = new Map(evaluate(samples, {}).map((f) => [f.check, f.status]));
  t.equal(findings.get('backups.damaged.nightly'), 'WARNING');
});

t.test('the most recent verification decides: a failed one is CRITICAL, none is no finding', async (t) => {
  const now = new Date('2026-11-24T10:00:00Z');
  const verdict = (facts: BackupFacts[]) => evaluate(backupSamples([schedule()], facts, [], now), {}).find((f) => f.check.startsWith('backups.last_verification_success'));
  t.equal(verdict([backup('20261124T030000Z-aaaa', '2026-11-24T03:00:00Z')]), undefined);
  const failed = verdict([
    backup('20261124T030000Z-aaaa', '2026-11-24T03:00:00Z', { at: '2026-11-24T04:00:00Z', ok: false, message: 'damaged: toc.dat (SHA-256 mismatch)' }),
    backup('20261123T030000Z-aaaa', '2026-11-23T03:00:00Z', { at: '2026-11-23T04:00:00Z', ok: true, message: 'ok' }),
  ]);
  t.match(failed, { status: 'CRITICAL', message: /SHA-256 mismatch/ });
  const passed = verdict([backup('20261123T030000Z-aaaa', '2026-11-23T03:00:00Z', { at: '2026-11-24T05:00:00Z', ok: true, message: 'ok' })]);
  t.equal(passed!.status, 'HEALTHY');
});
