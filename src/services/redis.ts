/**
 * Redis connections for every domain (backup, health): the configured URL parsed once
 * (host, port, user, password, database, TLS), connected with a clear redacted error.
 */
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import type { Desired } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { endpointOf, isNetworkErrno, runningHint } from './endpoint.js';
import { redactUrl } from './redact.js';
import { formatDuration } from '../render/format.js';

export interface RedisTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
  tls: boolean;
}

/** The configured Redis URL, or a clear error when the config has none. */
export function redisUrl(desired: Desired): string {
  const url = desired.services.redis?.url;
  if (!url) throw new JarvisError('CONFIG_INVALID', 'services.redis.url is not set', { hint: 'set services.redis.url in jarvis-db.yaml' });
  return url;
}

/** `redis://user:pass@host:port/db` (or `rediss://` for TLS) as its parts. */
export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new JarvisError('CONFIG_INVALID', `services.redis.url is not a URL: ${redactUrl(url)}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new JarvisError('CONFIG_INVALID', `a redis URL must start with redis:// or rediss:// (got ${u.protocol}//…)`);
  }
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  const target: RedisTarget = { host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: u.port ? Number(u.port) : 6379, db, tls: u.protocol === 'rediss:' };
  if (u.username) target.username = decodeURIComponent(u.username);
  if (u.password) target.password = decodeURIComponent(u.password);
  return target;
}

export interface RedisConnectOptions {
  /** Database to select (default: the URL's). */
  db?: number;
  connectTimeoutMs?: number;
  /** Shown in CLIENT LIST. */
  connectionName?: string;
}

/** A connected ioredis client that fails fast instead of retrying forever, or SERVICE_UNREACHABLE. */
export async function connectRedis(url: string, options: RedisConnectOptions = {}): Promise<RedisClient> {
  const target = parseRedisUrl(url);
  const { Redis } = await import('ioredis');
  const redisOptions: RedisOptions = {
    host: target.host,
    port: target.port,
    db: options.db ?? target.db,
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectionName: options.connectionName ?? 'jarvis-db',
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.tls ? { tls: {} } : {}),
  };
  const client = new Redis(redisOptions);
  // Errors surface through the rejected command; an unhandled 'error' event would kill the process.
  // The socket's own error (ECONNREFUSED) says more than the "Connection is closed." connect rejects with.
  let socketError: unknown;
  client.on('error', (e) => { socketError ??= e; });
  try {
    await client.connect();
  } catch (e) {
    client.disconnect();
    const reason = socketError ?? e;
    throw new JarvisError('SERVICE_UNREACHABLE', `cannot connect to Redis at ${redactUrl(url)}: ${messageOf(reason)}`, { cause: reason, hint: connectHint(url, reason) });
  }
  guardCommands(client, url);
  return client;
}

/** ioredis's own errors for a client whose connection ended (no retries, no offline queue). */
const LOST_MESSAGES = /Connection is closed|Stream isn't writeable|max retries per request/i;

function isConnectionLost(e: unknown): boolean {
  if (isNetworkErrno(e)) return true;
  return e instanceof Error && LOST_MESSAGES.test(e.message);
}

function connectHint(url: string, e: unknown): string {
  if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(messageOf(e))) return 'check the user and password in services.redis.url';
  return runningHint('redis', url);
}

/** Every command of `client` rejects, on a lost connection, with an error naming Redis and its host:port. */
function guardCommands(client: RedisClient, url: string): void {
  const send = client.sendCommand.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { sendCommand: (...args: unknown[]) => unknown }).sendCommand = (...args: unknown[]) => {
    const result = send(...args);
    if (!(result instanceof Promise)) return result;
    return result.catch((e: unknown) => {
      if (e instanceof JarvisError || !isConnectionLost(e)) throw e;
      throw new JarvisError('SERVICE_UNREACHABLE', `lost the connection to Redis at ${endpointOf('redis', url)}: ${messageOf(e)}`, { cause: e, hint: runningHint('redis', url) });
    });
  };
}

export type RedisSocket = import('node:net').Socket;

/**
 * A raw TCP (or TLS for rediss://) socket to the configured Redis, for the protocol-level
 * clients of the backup code (replication SYNC, pipelined DUMP/RESTORE) that ioredis's
 * per-command objects make too slow. SERVICE_UNREACHABLE with the URL redacted on failure.
 */
export async function openRedisSocket(url: string, options: { connectTimeoutMs?: number } = {}): Promise<RedisSocket> {
  const target = parseRedisUrl(url);
  const timeout = options.connectTimeoutMs ?? 10_000;
  const net = await import('node:net');
  const tls = await import('node:tls');
  return new Promise<RedisSocket>((resolve, reject) => {
    const socket: RedisSocket = target.tls
      ? tls.connect({ host: target.host, port: target.port, servername: net.isIP(target.host) ? undefined : target.host })
      : net.connect({ host: target.host, port: target.port });
    const fail = (e: Error) => {
      socket.destroy();
      reject(new JarvisError('SERVICE_UNREACHABLE', `cannot connect to Redis at ${redactUrl(url)}: ${messageOf(e)}`, { cause: e, hint: runningHint('redis', url) }));
    };
    socket.setTimeout(timeout, () => fail(new Error(`no answer within ${formatDuration(timeout)}`)));
    socket.once('error', fail);
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      socket.setTimeout(0);
      socket.removeListener('error', fail);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
