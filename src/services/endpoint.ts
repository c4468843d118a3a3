/**
 * Where a service is, for error messages: `host:port` of its URL (never its credentials), and
 * the hint every connection error of that service ends with.
 */
import type { ServiceName } from '../config/types.js';

/** Socket errors that mean the server cannot be reached or went away (not an error of a request). */
const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

/** Whether an error's `code` is one of NETWORK_ERRNOS. */
export function isNetworkErrno(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && NETWORK_ERRNOS.has(code);
}

const LABEL: Record<ServiceName, string> = { postgres: 'PostgreSQL', redis: 'Redis', chroma: 'Chroma' };

function defaultPort(kind: ServiceName, protocol: string): number {
  if (kind === 'postgres') return 5432;
  if (kind === 'redis') return 6379;
  return protocol === 'https:' ? 443 : 80;
}

/** `127.0.0.1:5432` (the URL's port or the service's default); the URL itself when it does not parse. */
export function endpointOf(kind: ServiceName, url: string): string {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? u.hostname;
    return `${host || '127.0.0.1'}:${u.port || defaultPort(kind, u.protocol)}`;
  } catch {
    return '(an unparsable URL)';
  }
}

/** `is PostgreSQL running at 127.0.0.1:5432? check services.postgres.url` */
export function runningHint(kind: ServiceName, url: string): string {
  return `is ${LABEL[kind]} running at ${endpointOf(kind, url)}? check services.${kind}.url`;
}
