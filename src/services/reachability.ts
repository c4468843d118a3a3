/**
 * Whether each configured service answers, for the engine's observation: the planner stops only
 * the actions that reach a service found down (a PostgreSQL outage must not stop the Redis
 * backup). One cheap round trip per service, all in parallel with the modules' observation.
 */
import { SERVICE_NAMES, type Desired, type ServiceName } from '../config/types.js';
import { messageOf } from '../errors.js';
import { redact } from './redact.js';
import { formatDuration } from '../render/format.js';

export type Reachability = { ok: true } | { ok: false; error: string };

const PROBE_TIMEOUT_MS = 5000;

async function probe(service: ServiceName, desired: Desired): Promise<void> {
  if (service === 'postgres') {
    const { connectPostgres, postgresUrl, sqlState } = await import('./postgres.js');
    try {
      const client = await connectPostgres(postgresUrl(desired), { applicationName: 'jarvis-db plan', connectTimeoutMs: PROBE_TIMEOUT_MS });
      await client.end().catch(() => undefined);
    } catch (e) {
      // The server answered: the database is created by `init` (and a backup of it fails on its own).
      if (sqlState(e) === '3D000') return;
      throw e;
    }
  } else if (service === 'redis') {
    const { redisUrl } = await import('./redis.js');
    const { openRedisProbe } = await import('./redis-resp.js');
    const conn = await openRedisProbe(redisUrl(desired), { connectTimeoutMs: PROBE_TIMEOUT_MS, name: 'jarvis-db-plan' });
    conn.close();
  } else {
    const { chromaHeartbeat, chromaService } = await import('./chroma.js');
    await withTimeout(chromaHeartbeat(chromaService(desired)), `no answer within ${formatDuration(PROBE_TIMEOUT_MS)}`);
  }
}

async function withTimeout<T>(work: Promise<T>, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), PROBE_TIMEOUT_MS); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every service the config names, probed in parallel; a failure is recorded (redacted), never thrown. */
export async function probeServices(desired: Desired, env: NodeJS.ProcessEnv = process.env): Promise<Partial<Record<ServiceName, Reachability>>> {
  const configured = SERVICE_NAMES.filter((s) => desired.services[s]?.url);
  const entries = await Promise.all(configured.map(async (s): Promise<[ServiceName, Reachability]> => {
    try {
      await probe(s, desired);
      return [s, { ok: true }];
    } catch (e) {
      return [s, { ok: false, error: redact(messageOf(e), env) }];
    }
  }));
  return Object.fromEntries(entries);
}
