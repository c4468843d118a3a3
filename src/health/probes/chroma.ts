/**
 * Chroma samples from one server: heartbeat latency, version, the collections and the record
 * count of each (a count is Chroma's cheapest per-collection read; one that fails is an
 * integrity problem), and the size of the data directory when it is on this machine. Over
 * `ChromaRest` (node:http), as the chromadb client would ask them: a plan or a health check
 * does not load that client and fetch (~65 ms of CPU at start).
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { JarvisError, messageOf } from '../../errors.js';
import { describeChromaFailure, type ChromaRest } from '../../services/chroma.js';
import type { Sample } from '../samples.js';

/** Collections counted per check; beyond this the count is of the first ones only. */
export const MAX_COLLECTIONS = 300;
const COUNT_CONCURRENCY = 8;

async function getJson(rest: ChromaRest, path: string): Promise<unknown> {
  return JSON.parse((await rest.call('GET', path)).toString('utf8')) as unknown;
}

export async function probeChroma(rest: ChromaRest, options: { dataPath?: string } = {}): Promise<Sample[]> {
  const started = performance.now();
  await rest.call('GET', '/api/v2/heartbeat');
  const heartbeat = (performance.now() - started) / 1000;
  const [version, listed] = await Promise.all([getJson(rest, '/api/v2/version'), getJson(rest, `${rest.collectionsPath}?limit=${MAX_COLLECTIONS}`)]);
  if (!Array.isArray(listed)) throw new JarvisError('SERVICE_ERROR', 'Chroma answered the collection list with something other than a list');
  const collections = listed as { name: string; id: string }[];
  const samples: Sample[] = [
    { check: 'chroma.up', value: 1 },
    { check: 'chroma.heartbeat_seconds', value: heartbeat },
    { check: 'chroma.build_info', labels: { version: String(version) }, value: 1 },
    { check: 'chroma.collections', value: collections.length },
  ];
  const unreadable: string[] = [];
  const counts: { name: string; count: number | null }[] = [];
  // A few at a time: a health check must not load the server.
  for (let i = 0; i < collections.length; i += COUNT_CONCURRENCY) {
    counts.push(...await Promise.all(collections.slice(i, i + COUNT_CONCURRENCY).map(async (c) => {
      try {
        const count = await getJson(rest, `${rest.collectionsPath}/${encodeURIComponent(c.id)}/count`);
        if (typeof count !== 'number') throw new JarvisError('SERVICE_ERROR', `Chroma answered a count with ${JSON.stringify(count)}`);
        return { name: c.name, count };
      } catch (e) {
        unreadable.push(`${c.name}: ${describeChromaFailure(e)}`);
        return { name: c.name, count: null };
      }
    })));
  }
  for (const { name, count } of counts) {
    if (count !== null) samples.push({ check: 'chroma.records', labels: { collection: name }, value: count });
  }
  samples.push({ check: 'chroma.unreadable_collections', value: unreadable.length, ...(unreadable.length ? { detail: unreadable.join('; ') } : {}) });
  if (options.dataPath) {
    try {
      samples.push({ check: 'chroma.data_bytes', value: await directoryBytes(options.dataPath) });
    } catch (e) {
      samples.push({ check: 'chroma.data_bytes', value: null, problem: `cannot read ${options.dataPath}: ${messageOf(e)}` });
    }
  }
  return samples;
}

/** Bytes of the regular files under a directory (symbolic links not followed). */
export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const s = await lstat(join(entry.parentPath ?? entry.path, entry.name)).catch(() => null);
    if (s) total += s.size;
  }
  return total;
}
