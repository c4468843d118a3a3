/**
 * Chroma connections for every domain (backup, health): the configured URL, tenant and
 * database turned into a chromadb client, and a heartbeat that fails with a clear error.
 *
 * `ChromaRest` is the same server's REST API (v2, the one the chromadb 3.x client speaks) at
 * the level of request and response bytes. Backups need it where the client would change
 * data: the client runs every body through JSON.parse / JSON.stringify, which turns a float
 * metadata value 3.0 into the int 3 and rounds ints above 2^53. node:http with keep-alive
 * receives a page of embeddings with half the CPU that fetch takes.
 */
import http from 'node:http';
import https from 'node:https';
import type { ChromaClient } from 'chromadb';
import type { ChromaService, Desired } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { runningHint } from './endpoint.js';
import { redactUrl } from './redact.js';

/** The configured Chroma service, or a clear error when the config has none. */
export function chromaService(desired: Desired): ChromaService {
  const service = desired.services.chroma;
  if (!service?.url) throw new JarvisError('CONFIG_INVALID', 'services.chroma.url is not set', { hint: 'set services.chroma.url in jarvis-db.yaml' });
  return service;
}

/** A chromadb client for the service (no request is made yet). */
export async function chromaClient(service: Pick<ChromaService, 'url' | 'tenant' | 'database'>): Promise<ChromaClient> {
  let u: URL;
  try {
    u = new URL(service.url);
  } catch {
    throw new JarvisError('CONFIG_INVALID', `services.chroma.url is not a URL: ${redactUrl(service.url)}`);
  }
  const { ChromaClient: Client } = await import('chromadb');
  const ssl = u.protocol === 'https:';
  const headers: Record<string, string> = {};
  if (u.username || u.password) {
    headers.Authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
  }
  return new Client({
    host: u.hostname,
    port: u.port ? Number(u.port) : ssl ? 443 : 80,
    ssl,
    ...(service.tenant ? { tenant: service.tenant } : {}),
    ...(service.database ? { database: service.database } : {}),
    ...(Object.keys(headers).length ? { headers } : {}),
  });
}

/**
 * Why a chromadb client call failed, for a server-side reader. When its fetch fails the client
 * says only "Failed to connect", plus advice for code running in a browser (CORS) that does not
 * apply here: say what it means for jarvis-db instead.
 */
export function describeChromaFailure(e: unknown): string {
  if (e instanceof Error && e.name === 'ChromaConnectionError') return NO_HTTP_ANSWER;
  // ChromaRest's own "cannot reach Chroma at …" (no HTTP answer at all) says the same.
  if (e instanceof JarvisError && e.code === 'SERVICE_UNREACHABLE' && e.message.startsWith('cannot reach Chroma')) return NO_HTTP_ANSWER;
  return messageOf(e);
}

const NO_HTTP_ANSWER = 'no HTTP answer (connection refused, unknown host, TLS or proxy failure): check that the Chroma server runs and that services.chroma.url points at it from this machine';

/**
 * The heartbeat alone, over node:http: what `connectChroma` checks, failing the same way, without
 * loading the chromadb client and fetch (the plan's reachability probe; ~50 ms of a start).
 */
export async function chromaHeartbeat(service: Pick<ChromaService, 'url' | 'tenant' | 'database'>): Promise<void> {
  const rest = new ChromaRest(service);
  try {
    const res = await rest.request('GET', '/api/v2/heartbeat').catch((e: unknown) => {
      throw new JarvisError('SERVICE_UNREACHABLE', `cannot reach Chroma at ${redactUrl(service.url)}: ${NO_HTTP_ANSWER}`, { cause: e, hint: runningHint('chroma', service.url) });
    });
    if (res.status < 200 || res.status >= 300) {
      throw new JarvisError('SERVICE_UNREACHABLE', `cannot reach Chroma at ${redactUrl(service.url)}: the heartbeat answered ${res.status}: ${errorMessageOf(res.body)}`, { hint: runningHint('chroma', service.url) });
    }
  } finally {
    rest.close();
  }
}

/** A connected client (its heartbeat answered), or SERVICE_UNREACHABLE naming the redacted URL. */
export async function connectChroma(service: Pick<ChromaService, 'url' | 'tenant' | 'database'>): Promise<ChromaClient> {
  const client = await chromaClient(service);
  try {
    await client.heartbeat();
  } catch (e) {
    throw new JarvisError('SERVICE_UNREACHABLE', `cannot reach Chroma at ${redactUrl(service.url)}: ${describeChromaFailure(e)}`, { cause: e, hint: runningHint('chroma', service.url) });
  }
  return client;
}

export const DEFAULT_TENANT = 'default_tenant';
export const DEFAULT_DATABASE = 'default_database';

export interface RestResponse { status: number; body: Buffer }

/** The Chroma REST API as bytes in, bytes out; errors are JarvisErrors naming the redacted URL. */
export class ChromaRest {
  readonly tenant: string;
  readonly database: string;
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly headers: Record<string, string> = { accept: 'application/json' };

  constructor(private readonly service: Pick<ChromaService, 'url' | 'tenant' | 'database'>) {
    try {
      this.url = new URL(service.url);
    } catch {
      throw new JarvisError('CONFIG_INVALID', `services.chroma.url is not a URL: ${redactUrl(service.url)}`);
    }
    this.tenant = service.tenant ?? DEFAULT_TENANT;
    this.database = service.database ?? DEFAULT_DATABASE;
    const Agent = this.url.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: 4 });
    if (this.url.username || this.url.password) {
      this.headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(this.url.username)}:${decodeURIComponent(this.url.password)}`).toString('base64')}`;
    }
  }

  /** `/api/v2/tenants/T/databases/D/collections`, below the URL's own path if it has one. */
  get collectionsPath(): string {
    return `/api/v2/tenants/${encodeURIComponent(this.tenant)}/databases/${encodeURIComponent(this.database)}/collections`;
  }

  /** One request; any status comes back (the caller decides what a 404 means). */
  request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: string | Buffer): Promise<RestResponse> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    const prefix = this.url.pathname.replace(/\/+$/, '');
    const send = this.url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = send({
        protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port || undefined, path: prefix + path, method, agent: this.agent,
        headers: { ...this.headers, ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}) },
        timeout: 300_000,
      }, (res) => {
        // one buffer of the announced size (a page of embeddings is megabytes: no list of chunks to join)
        const announced = Number(res.headers['content-length']);
        const whole = Number.isSafeInteger(announced) && announced > 0 ? Buffer.allocUnsafe(announced) : null;
        let filled = 0;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          if (whole && filled + c.length <= whole.length) {
            c.copy(whole, filled);
            filled += c.length;
          } else {
            chunks.push(c);
          }
        });
        res.on('end', () => {
          const body = whole ? (chunks.length ? Buffer.concat([whole.subarray(0, filled), ...chunks]) : whole.subarray(0, filled)) : Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', (e) => reject(this.unreachable(e)));
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 300 s')));
      req.on('error', (e) => reject(this.unreachable(e)));
      req.end(payload);
    });
  }

  /** A request that must succeed (2xx): its body, or SERVICE_ERROR with Chroma's own message. */
  async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: string | Buffer): Promise<Buffer> {
    const res = await this.request(method, path, body);
    if (res.status >= 200 && res.status < 300) return res.body;
    throw new JarvisError('SERVICE_ERROR', `Chroma at ${redactUrl(this.service.url)} answered ${res.status} to ${method} ${path.replace(this.collectionsPath, 'collections')}: ${errorMessageOf(res.body)}`);
  }

  /** Releases the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private unreachable(e: unknown): JarvisError {
    return new JarvisError('SERVICE_UNREACHABLE', `cannot reach Chroma at ${redactUrl(this.service.url)}: ${messageOf(e)}`, { cause: e, hint: runningHint('chroma', this.service.url) });
  }
}

/** Chroma's error body is `{"error":"…","message":"…"}`; anything else is shown as text, shortened. */
export function errorMessageOf(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: the text itself
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text || '(empty answer)';
}
