/**
 * The Chroma collection API over `ChromaRest` (services/chroma.ts): list, find, count, read
 * page by page, delete, rename, the tenant and database a restore needs, and the temporary
 * collections of restores (named after host and pid, so that a killed restore's leftovers
 * are told apart from a running one's). Bodies are read losslessly (chroma-wire.ts).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { JarvisError } from '../errors.js';
import { isAlive } from '../platform/processes.js';
import { ChromaRest, errorMessageOf, type RestResponse } from './chroma.js';
import { JsonNumber, isLosslessObject, parseLossless, parseRecordPage, type LosslessObject, type RecordPage } from './chroma-wire.js';

/** A collection as the server lists it, metadata and configuration kept lossless. */
export interface RemoteCollection {
  name: string;
  id: string;
  metadata: LosslessObject | null;
  configuration: LosslessObject | null;
  dimension: number | null;
}

const INCLUDE_ALL = ['embeddings', 'documents', 'uris', 'metadatas'];

export function asCollection(value: unknown): RemoteCollection {
  if (!isLosslessObject(value as never)) throw new JarvisError('SERVICE_ERROR', 'Chroma listed a collection that is not an object');
  const v = value as LosslessObject;
  if (typeof v.name !== 'string' || typeof v.id !== 'string') throw new JarvisError('SERVICE_ERROR', 'Chroma listed a collection without name or id');
  const dimension = v.dimension instanceof JsonNumber ? Number(v.dimension.text) : null;
  return {
    name: v.name, id: v.id, dimension,
    metadata: isLosslessObject(v.metadata) ? v.metadata : null,
    configuration: isLosslessObject(v.configuration_json) ? v.configuration_json : null,
  };
}

/** Every collection of the tenant and database, sorted by name. */
export async function listCollections(rest: ChromaRest): Promise<RemoteCollection[]> {
  const out: RemoteCollection[] = [];
  const limit = 100;
  for (let offset = 0; ; offset += limit) {
    const body = await rest.call('GET', `${rest.collectionsPath}?limit=${limit}&offset=${offset}`);
    const page = parseLossless(body.toString('utf8'));
    if (!Array.isArray(page)) throw new JarvisError('SERVICE_ERROR', 'Chroma answered the collection list with something other than a list');
    out.push(...page.map(asCollection));
    if (page.length < limit) break;
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Chroma 1.0.x answers a missing collection with 404; some versions with another 4xx/5xx saying so. */
function isMissing(res: RestResponse): boolean {
  return res.status === 404 || (res.status >= 400 && /does not exist|not found/i.test(res.body.toString('utf8')));
}

function failure(rest: ChromaRest, what: string, res: RestResponse): JarvisError {
  return new JarvisError('SERVICE_ERROR', `Chroma answered ${res.status} to ${what} in ${rest.tenant}/${rest.database}: ${errorMessageOf(res.body)}`);
}

/** The collection called `name`, or null. */
export async function findCollection(rest: ChromaRest, name: string): Promise<RemoteCollection | null> {
  const res = await rest.request('GET', `${rest.collectionsPath}/${encodeURIComponent(name)}`);
  if (isMissing(res)) return null;
  if (res.status >= 400) throw failure(rest, `a lookup of collection ${name}`, res);
  return asCollection(parseLossless(res.body.toString('utf8')));
}

export async function countRecords(rest: ChromaRest, id: string): Promise<number> {
  const n = JSON.parse((await rest.call('GET', `${rest.collectionsPath}/${id}/count`)).toString('utf8')) as unknown;
  if (typeof n !== 'number') throw new JarvisError('SERVICE_ERROR', `Chroma answered a count with ${JSON.stringify(n)}`);
  return n;
}

/**
 * Pages of a collection in order, two requests in flight, until a page comes back short.
 */
export async function* readPages(rest: ChromaRest, collectionId: string, limit: number, include: string[] = INCLUDE_ALL): AsyncGenerator<RecordPage> {
  const path = `${rest.collectionsPath}/${collectionId}/get`;
  const fetchPage = (offset: number) => rest.call('POST', path, JSON.stringify({ limit, offset, include }));
  const inFlight: Promise<Buffer>[] = [fetchPage(0), fetchPage(limit)];
  let next = 2 * limit;
  // the requests already sent must settle even if the consumer stops early
  for (const p of inFlight) p.catch(() => undefined);
  for (;;) {
    const page = parseRecordPage(await inFlight.shift()!);
    if (page.ids.length === limit) {
      const p = fetchPage(next);
      p.catch(() => undefined);
      inFlight.push(p);
      next += limit;
    }
    if (include.includes('embeddings') && page.ids.length > 0 && !page.embeddings) {
      throw new JarvisError('SERVICE_ERROR', 'Chroma answered a get that asked for embeddings without them');
    }
    yield page;
    if (page.ids.length < limit) return;
  }
}

const HOST = hostname().replace(/[^a-zA-Z0-9]/g, '').slice(0, 40) || 'host';
const TEMPORARY = /^jarvis-db-tmp-([a-zA-Z0-9]+)-(\d+)-[0-9a-f]{8}$/;

/** A temporary collection name of this process (host and pid, so that leftovers can be told apart). */
export function temporaryName(): string {
  return `jarvis-db-tmp-${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Removes the temporary collections that killed restores of this host left behind. */
export async function cleanTemporaryCollections(rest: ChromaRest): Promise<string[]> {
  const removed: string[] = [];
  for (const c of await listCollections(rest)) {
    const m = TEMPORARY.exec(c.name);
    if (m && m[1] === HOST && !isAlive(Number(m[2]))) {
      await deleteCollection(rest, c.name);
      removed.push(c.name);
    }
  }
  return removed;
}

export async function deleteCollection(rest: ChromaRest, name: string): Promise<void> {
  const res = await rest.request('DELETE', `${rest.collectionsPath}/${encodeURIComponent(name)}`);
  if (res.status >= 400 && !isMissing(res)) throw failure(rest, `the deletion of collection ${name}`, res);
}

export async function renameCollection(rest: ChromaRest, id: string, name: string): Promise<void> {
  await rest.call('PUT', `${rest.collectionsPath}/${id}`, JSON.stringify({ new_name: name }));
}

/**
 * Creates the configured tenant and database when the server lacks them: restoring into a new
 * server is what disaster recovery looks like. Returns what was created.
 */
export async function ensureDatabase(rest: ChromaRest): Promise<string[]> {
  const created: string[] = [];
  const tenantPath = `/api/v2/tenants/${encodeURIComponent(rest.tenant)}`;
  if ((await rest.request('GET', tenantPath)).status === 404) {
    await rest.call('POST', '/api/v2/tenants', JSON.stringify({ name: rest.tenant }));
    created.push(`tenant ${rest.tenant}`);
  }
  if ((await rest.request('GET', `${tenantPath}/databases/${encodeURIComponent(rest.database)}`)).status === 404) {
    await rest.call('POST', `${tenantPath}/databases`, JSON.stringify({ name: rest.database }));
    created.push(`database ${rest.database}`);
  }
  return created;
}
