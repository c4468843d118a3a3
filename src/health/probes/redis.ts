/**
 * Redis samples from one connection: a single INFO (O(1) on the server), and CONFIG GET
 * maxclients only on servers whose INFO does not carry it.
 */
import { RespError } from '../../services/redis-resp-codec.js';
import type { RespConnection } from '../../services/redis-resp.js';
import type { Sample } from '../samples.js';

/** `INFO` text → field → value. Keyspace lines (`db0:keys=1,expires=0`) stay whole. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i), line.slice(i + 1));
  }
  return fields;
}

/** Pure: INFO fields (and maxclients when INFO lacks it) → samples. */
export function redisSamples(info: Map<string, string>, maxclientsFallback?: number): Sample[] {
  const num = (name: string): number | undefined => {
    const v = info.get(name);
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  const samples: Sample[] = [{ check: 'redis.up', value: 1 }];
  const used = num('used_memory');
  const maxmemory = num('maxmemory') ?? 0;
  const system = num('total_system_memory') ?? 0;
  const limit = maxmemory > 0 ? maxmemory : system;
  if (used !== undefined) {
    samples.push({ check: 'redis.memory_used_bytes', value: used });
    if (limit > 0) {
      samples.push({ check: 'redis.memory_max_bytes', value: limit, detail: maxmemory > 0 ? 'maxmemory' : 'machine memory (maxmemory is 0)' });
      samples.push({ check: 'redis.memory_used_ratio', value: used / limit, detail: maxmemory > 0 ? 'of maxmemory' : 'of the machine\'s memory, maxmemory is 0' });
    }
  }
  const hits = num('keyspace_hits');
  const misses = num('keyspace_misses');
  if (hits !== undefined && misses !== undefined) {
    const lookups = hits + misses;
    samples.push({ check: 'redis.keyspace_hits_total', value: hits });
    samples.push({ check: 'redis.keyspace_misses_total', value: misses });
    samples.push({ check: 'redis.keyspace_hit_ratio', value: lookups > 0 ? hits / lookups : 1, context: { lookups }, detail: `${lookups} lookups` });
  }
  const connected = num('connected_clients');
  const maxclients = num('maxclients') ?? maxclientsFallback;
  if (connected !== undefined) {
    samples.push({ check: 'redis.connected_clients', value: connected });
    if (maxclients) samples.push({ check: 'redis.clients_used_ratio', value: connected / maxclients, detail: `${connected} of ${maxclients}` });
  }
  const simple: [string, string][] = [
    ['blocked_clients', 'redis.blocked_clients'],
    ['instantaneous_ops_per_sec', 'redis.ops_per_second'],
    ['total_commands_processed', 'redis.commands_processed_total'],
    ['rejected_connections', 'redis.rejected_connections_total'],
  ];
  for (const [field, check] of simple) {
    const v = num(field);
    if (v !== undefined) samples.push({ check, value: v });
  }
  const fragmentation = num('mem_fragmentation_ratio');
  if (fragmentation !== undefined) {
    const rss = num('used_memory_rss') ?? 0;
    const fragmentedBytes = num('mem_fragmentation_bytes') ?? Math.max(rss - (used ?? 0), 0);
    samples.push({ check: 'redis.memory_fragmentation_ratio', value: fragmentation, context: { fragmentation_bytes: fragmentedBytes } });
  }
  const bgsave = info.get('rdb_last_bgsave_status');
  if (bgsave !== undefined) {
    samples.push(bgsave === 'ok'
      ? { check: 'redis.rdb_last_bgsave_success', value: 1 }
      : { check: 'redis.rdb_last_bgsave_success', value: 0, problem: `rdb_last_bgsave_status is ${bgsave}; with stop-writes-on-bgsave-error Redis refuses writes` });
  }
  for (const [field, value] of info) {
    const db = /^db(\d+)$/.exec(field);
    const keys = /(?:^|,)keys=(\d+)/.exec(value);
    if (db && keys) samples.push({ check: 'redis.keys', labels: { db: db[1]! }, value: Number(keys[1]) });
  }
  return samples;
}

export async function probeRedis(conn: RespConnection): Promise<Sample[]> {
  const reply = await conn.call('INFO');
  if (reply instanceof RespError) throw new Error(reply.message);
  const info = parseInfo(String(reply));
  let fallback: number | undefined;
  if (!info.has('maxclients')) {
    const config = await conn.call('CONFIG', 'GET', 'maxclients').catch(() => []);
    const value = Array.isArray(config) ? config[1] : undefined;
    if (value && !(value instanceof RespError) && !Array.isArray(value)) fallback = Number(String(value));
  }
  return redisSamples(info, fallback);
}
