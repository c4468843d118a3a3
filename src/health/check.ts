/**
 * A health check: every probe at once, each with its own connection and a time limit, into one
 * observation (read-only); then, for `health check` and the daemon, the evaluation, the history
 * line and the alerts. A service that cannot be reached gives `<service>.up = 0` with the
 * reason, never an exception: the check must report on the others.
 */
import type { Desired } from '../config/types.js';
import type { Finding, Status } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { HEALTH_SERVICES, checkSpec, type HealthService } from './checks.js';
import { evaluate, overallStatus } from './evaluate.js';
import type { HealthObservation, Sample } from './samples.js';
import { cpuTimes } from './probes/system.js';
import type { HealthConnections } from './connections.js';
import { formatDuration } from '../render/format.js';

export interface ObserveOptions {
  env?: NodeJS.ProcessEnv;
  now?: Date;
  /** Only these probes (default: every configured one). */
  services?: HealthService[];
  /** Time limit of each probe (default 10 s). */
  probeTimeoutMs?: number;
  /**
   * Shortest window over which CPU use is measured (default 100 ms). The window always spans the
   * other probes of the check; 0 (a plan) adds no wait beyond them.
   */
  cpuWindowMs?: number;
  /** Connections kept between checks (the daemon); without, each check connects and disconnects. */
  connections?: HealthConnections;
}

/** The probes this config has something for: services it configures, the machine, backups if scheduled. */
export function configuredProbes(desired: Desired): HealthService[] {
  return HEALTH_SERVICES.filter((s) => {
    if (s === 'system') return true;
    if (s === 'backups') return desired.backups.length > 0;
    if (s === 'repository') return Boolean(desired.repositories?.length);
    if (s === 'wal') return desired.services.postgres?.pitr?.enabled === true;
    if (s === 'consistency') return Boolean(desired.links?.length);
    return Boolean(desired.services[s]);
  });
}

function unreachable(service: 'postgres' | 'redis' | 'chroma', e: unknown): Sample[] {
  return [{ check: `${service}.up`, value: 0, problem: messageOf(e) }];
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${formatDuration(ms)}`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

interface Connection<C> {
  open(): Promise<C>;
  /** After a probe: close it (a one-off check), or keep it unless it failed (the daemon's). */
  release(client: C, failed: boolean): Promise<void> | void;
  /** A kept connection may have gone stale: one failure is retried on a fresh one. */
  retry: boolean;
}

async function probeOver<C>(service: 'postgres' | 'redis' | 'chroma', connection: Connection<C>, probe: (client: C) => Promise<Sample[]>, what: string): Promise<Sample[]> {
  for (let attempt = 1; ; attempt++) {
    let client: C;
    try {
      client = await connection.open();
    } catch (e) {
      return unreachable(service, e);
    }
    try {
      const samples = await probe(client);
      await connection.release(client, false);
      return samples;
    } catch (e) {
      await connection.release(client, true);
      if (!connection.retry || attempt > 1) return unreachable(service, new Error(`${what}: ${messageOf(e)}`));
    }
  }
}

async function postgresSamples(desired: Desired, kept?: HealthConnections): Promise<Sample[]> {
  const url = desired.services.postgres!.url;
  const { probePostgres } = await import('./probes/postgres.js');
  const { connectPostgres } = await import('../services/postgres.js');
  const connection: Connection<import('pg').Client> = kept
    ? { open: () => kept.postgres(url), release: (_c, failed) => { if (failed) kept.dropPostgres(); }, retry: true }
    : { open: () => connectPostgres(url, { applicationName: 'jarvis-db health', connectTimeoutMs: 5000 }), release: (c) => c.end().catch(() => undefined), retry: false };
  return probeOver('postgres', connection, probePostgres, 'connected, but the health query failed');
}

async function redisSamples(desired: Desired, kept?: HealthConnections): Promise<Sample[]> {
  const url = desired.services.redis!.url;
  const { probeRedis } = await import('./probes/redis.js');
  const { openRedisProbe } = await import('../services/redis-resp.js');
  const connection: Connection<import('../services/redis-resp.js').RespConnection> = kept
    ? { open: () => kept.redisClient(url), release: (_c, failed) => { if (failed) kept.dropRedis(); }, retry: true }
    : { open: () => openRedisProbe(url, { connectTimeoutMs: 5000, name: 'jarvis-db-health' }), release: (c) => { c.close(); }, retry: false };
  return probeOver('redis', connection, probeRedis, 'connected, but INFO failed');
}

async function chromaSamples(desired: Desired, kept?: HealthConnections): Promise<Sample[]> {
  const { ChromaRest, describeChromaFailure } = await import('../services/chroma.js');
  const { probeChroma } = await import('./probes/chroma.js');
  const { redactUrl } = await import('../services/redact.js');
  const service = desired.services.chroma!;
  // HTTP: a kept client holds only idle keep-alive sockets, nothing goes stale.
  const connection: Connection<import('../services/chroma.js').ChromaRest> = kept
    ? { open: async () => kept.chromaRest(service), release: () => undefined, retry: false }
    : { open: async () => new ChromaRest(service), release: (rest) => rest.close(), retry: false };
  return probeOver('chroma', connection, (c) => probeChroma(c, service.path ? { dataPath: service.path } : {}).catch((e: unknown) => { throw new Error(describeChromaFailure(e), { cause: e }); }), `cannot reach Chroma at ${redactUrl(service.url)}`);
}

/** Takes the samples. Read-only: it changes nothing anywhere (the history is only read). */
export async function observeHealth(desired: Desired, options: ObserveOptions = {}): Promise<HealthObservation> {
  const now = options.now ?? new Date();
  const configured = configuredProbes(desired);
  const services = options.services ?? configured;
  for (const s of services) {
    if (!configured.includes(s)) {
      throw new JarvisError('USAGE', s === 'backups' ? 'there are no backup schedules in the config' : s === 'repository' ? 'there are no repositories in the config' : `services.${s} is not configured`, {
        hint: `configured: ${configured.join(', ')}`,
      });
    }
  }
  const timeout = options.probeTimeoutMs ?? 10_000;
  const cpuBefore = cpuTimes();
  const started = performance.now();
  const probeMs: Partial<Record<HealthService, number>> = {};
  const timed = async (service: HealthService, run: () => Promise<Sample[]>): Promise<Sample[]> => {
    const t0 = performance.now();
    try {
      return await withTimeout(run(), timeout, service);
    } catch (e) {
      if (service === 'postgres' || service === 'redis' || service === 'chroma') return unreachable(service, e);
      const check = { system: 'system.disk_free_ratio', repository: 'repository.up', wal: 'wal.receiver_running', consistency: 'consistency.orphans', backups: 'backups.valid' }[service];
      return [{ check, value: null, problem: messageOf(e) }];
    } finally {
      probeMs[service] = Math.round(performance.now() - t0);
    }
  };
  const { lastRecord } = await import('./history.js');
  const run: Record<HealthService, () => Promise<Sample[]>> = {
    postgres: () => postgresSamples(desired, options.connections),
    redis: () => redisSamples(desired, options.connections),
    chroma: () => chromaSamples(desired, options.connections),
    backups: async () => (await import('./probes/backups.js')).probeBackups(desired, now),
    // Each repository has its own time limit inside, shorter than the probe's.
    repository: async () => (await import('./probes/backups.js')).probeRepositories(desired, now, options.env, Math.max(timeout - 500, 100)),
    wal: async () => (await import('./probes/wal.js')).probeWal(desired, now, options.env),
    consistency: async () => (await import('./probes/consistency.js')).probeConsistency(desired, now),
    system: async () => {
      const { probeSystem } = await import('./probes/system.js');
      const windowMs = options.cpuWindowMs ?? 100;
      const waited = performance.now() - started;
      if (waited < windowMs) await new Promise((r) => setTimeout(r, windowMs - waited));
      return probeSystem({ storagePath: desired.storage.path, cpuBefore });
    },
  };
  // The other probes start first: the system probe's CPU window ends when they have finished.
  const others = services.filter((s) => s !== 'system').map((s) => [s, timed(s, run[s])] as const);
  const probes = new Map<HealthService, Promise<Sample[]>>(others);
  const othersSettled = Promise.allSettled(others.map(([, p]) => p));
  if (services.includes('system')) probes.set('system', othersSettled.then(() => timed('system', run.system)));
  const [previous, ...perService] = await Promise.all([
    lastRecord(desired.storage.path).catch(() => undefined),
    ...services.map((s) => probes.get(s)!),
  ]);
  const observation: HealthObservation = {
    takenAt: now.toISOString(),
    durationMs: Math.round(performance.now() - started),
    services,
    probeMs,
    samples: perService.flat(),
  };
  if (previous) {
    const counters: Record<string, number> = {};
    for (const [key, value] of Object.entries(previous.values)) {
      if (value !== null && checkSpec(key.split('.').slice(0, 2).join('.'))?.judgeIncrease) counters[key] = value;
    }
    observation.previous = { at: previous.at, counters };
  }
  return observation;
}

export interface HealthReport {
  observation: HealthObservation;
  findings: Finding[];
  status: Status;
}

export function report(desired: Desired, observation: HealthObservation): HealthReport {
  const findings = evaluate(observation.samples, desired.health.thresholds, observation.previous);
  return { observation, findings, status: overallStatus(findings) };
}

export interface RecordOutcome {
  /** Alerts that could not be delivered (they are sent again at the next check). */
  alertFailures: string[];
  alertsSent: number;
}

/** Appends the check to the history and raises the alerts it calls for. */
export async function recordCheck(desired: Desired, result: HealthReport, options: { alertBackoffMs?: number; signal?: AbortSignal } = {}): Promise<RecordOutcome> {
  const { appendHistory, toRecord } = await import('./history.js');
  const at = new Date(result.observation.takenAt);
  await appendHistory(desired.storage.path, toRecord(at, result.observation.samples, result.findings), desired.health.historySeconds);
  const alerts = desired.health.alerts;
  if (!alerts) return { alertFailures: [], alertsSent: 0 };
  const { processAlerts } = await import('./alerts.js');
  const results = await processAlerts(desired.storage.path, alerts.webhook, result.findings, at, desired.project, {
    retries: alerts.retries,
    ...(options.alertBackoffMs !== undefined ? { backoffMs: options.alertBackoffMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return {
    alertsSent: results.filter((r) => r.ok).length,
    alertFailures: results.filter((r) => !r.ok).map((r) => `alert "${r.alert.event}" for ${r.alert.check} not delivered after ${r.attempts} attempts: ${r.error}`),
  };
}

/** `health check` and the daemon: observe, evaluate, record. */
export async function runHealthCheck(desired: Desired, options: ObserveOptions & { alertBackoffMs?: number; signal?: AbortSignal } = {}): Promise<HealthReport & RecordOutcome> {
  const result = report(desired, await observeHealth(desired, options));
  const outcome = await recordCheck(desired, result, options);
  return { ...result, ...outcome };
}
