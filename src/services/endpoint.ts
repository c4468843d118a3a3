/**
 * Where a service is, for error messages: `host:port` of its URL (never its credentials), and
 * the hint every connection error of that service ends with.
 */

export type ServiceKind = 'postgres' | 'redis' | 'chroma';

const LABEL: Record<ServiceKind, string> = { postgres: 'PostgreSQL', redis: 'Redis', chroma: 'Chroma' };

function defaultPort(kind: ServiceKind, protocol: string): number {
  if (kind === 'postgres') return 5432;
  if (kind === 'redis') return 6379;
  return protocol === 'https:' ? 443 : 80;
}

/** `127.0.0.1:5432` (the URL's port or the service's default); the URL itself when it does not parse. */
export function endpointOf(kind: ServiceKind, url: string): string {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? u.hostname;
    return `${host || '127.0.0.1'}:${u.port || defaultPort(kind, u.protocol)}`;
  } catch {
    return '(an unparsable URL)';
  }
}

/** `is PostgreSQL running at 127.0.0.1:5432? check services.postgres.url` */
export function runningHint(kind: ServiceKind, url: string): string {
  return `is ${LABEL[kind]} running at ${endpointOf(kind, url)}? check services.${kind}.url`;
}
