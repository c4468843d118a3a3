/**
 * Fixture for the Chroma backup tests: a sandbox Chroma (test/helpers/sandbox.ts), a `Desired`
 * pointing at it, collections seeded with everything a backup must keep, and a snapshot of a
 * collection as the chromadb JS client sees it (embeddings float32-exact) plus, through the
 * REST API, the metadata exactly as the server writes it (3.0 stays a float).
 */
import { ChromaClient } from 'chromadb';
import type { BackupSchedule, Desired } from '../../../src/config/types.js';
import { ChromaRest } from '../../../src/services/chroma.js';
import { withSandbox, type SandboxState } from '../../helpers/sandbox.js';

type T = Parameters<typeof withSandbox>[0];

export const DIM = 384;

export async function chromaSandbox(t: T): Promise<SandboxState & { chroma: NonNullable<SandboxState['chroma']> }> {
  const state = await withSandbox(t, ['chroma']);
  return state as SandboxState & { chroma: NonNullable<SandboxState['chroma']> };
}

export function makeChromaDesired(url: string, storagePath: string, options: { schedule?: Partial<BackupSchedule>; path?: string; collections?: string[]; encryption?: string } = {}): Desired {
  return {
    version: 1, project: 'jarvis', configFile: `${storagePath}/jarvis-db.yaml`, configHash: 'test',
    services: { chroma: { url, ...(options.path ? { path: options.path } : {}), ...(options.collections ? { collections: options.collections } : {}) } },
    storage: { path: storagePath, ...(options.encryption ? { encryption: { passphraseEnv: options.encryption } } : {}) },
    backups: [{ name: 'daily', service: 'chroma', cron: '30 3 * * *', timezone: 'UTC', keep: { last: 3 }, verify: 'checksum', method: 'logical', path: 'backups[0]', ...options.schedule }],
    retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}

export function client(url: string): ChromaClient {
  const u = new URL(url);
  return new ChromaClient({ host: u.hostname, port: Number(u.port) });
}

/** Deterministic pseudo-random unit vectors. */
export function vectors(count: number, seed: number, dim = DIM): number[][] {
  let s = seed >>> 0 || 1;
  const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  return Array.from({ length: count }, () => {
    const v = Array.from({ length: dim }, () => Math.fround(rnd() * 2 - 1));
    const norm = Math.sqrt(v.reduce((a, b) => a + b * b, 0));
    return v.map((x) => Math.fround(x / norm));
  });
}

const DOCS = ['Der Benutzer trinkt lieber Tee als Kaffee ☕', '用户喜欢在早上跑步 🏃', 'L\'utilisateur a un chat nommé « Minou »', 'emoji 👩‍💻 and "quotes" and \\ backslash\nnewline\ttab', 'plain ascii'];

/**
 * Collections in three distance spaces, with custom HNSW settings, collection metadata, unicode
 * documents, uris, and record metadata of every type Chroma keeps (string, int, float, bool;
 * 3.0 as a float, an int beyond 2^53) plus records without metadata, document or uri. The typed
 * records go through the REST API, as a Python client would write them; the rest through the JS client.
 */
export async function seedCollections(url: string, records = 300): Promise<string[]> {
  const c = client(url);
  const rest = new ChromaRest({ url });
  try {
    const l2 = await c.createCollection({ name: 'memories-l2', embeddingFunction: null, metadata: { owner: 'jarvis', version: 2, weight: 0.75, active: true } });
    const cosine = await c.createCollection({ name: 'memories-cosine', embeddingFunction: null, configuration: { hnsw: { space: 'cosine', ef_search: 55, max_neighbors: 24, ef_construction: 120 } } });
    const ip = await c.createCollection({ name: 'notes-ip', embeddingFunction: null, configuration: { hnsw: { space: 'ip' } }, metadata: { 'description': 'inner product ✓' } });
    await c.createCollection({ name: 'empty-one', embeddingFunction: null });
    const batch = (n: number, seed: number, prefix: string) => {
      const embeddings = vectors(n, seed);
      return {
        ids: embeddings.map((_, i) => `${prefix}-${String(i).padStart(5, '0')}`),
        embeddings,
        documents: embeddings.map((_, i) => `${DOCS[i % DOCS.length]} #${i}`),
        metadatas: embeddings.map((_, i) => ({ user: `u${i % 7}`, n: i, score: i / 8 + 0.001, flag: i % 2 === 0, label: 'ünï' })),
      };
    };
    await l2.add(batch(records, 1, 'l2'));
    await cosine.add(batch(records, 2, 'cos'));
    const ipBatch = batch(records, 3, 'ip');
    await ip.add({ ...ipBatch, uris: ipBatch.ids.map((id) => `s3://bucket/${id}.txt`) });
    // as a Python client writes them: 3.0 is a float, 9007199254740993 an exact int; some records bare
    const typed = vectors(4, 4).map((v) => `[${v.join(',')}]`);
    await rest.call('POST', `${rest.collectionsPath}/${cosine.id}/add`, `{"ids":["typed-1","typed-2","typed-3","typed-4"],"embeddings":[${typed.join(',')}],` +
      '"metadatas":[{"f":3.0,"big":9007199254740993,"neg":-1.5e-7,"t":true,"s":"ß"},{"f":-0.5,"i":-42},null,{"only":"one"}],' +
      '"documents":["typed ✓",null,null,"x"],"uris":[null,"file:///tmp/ä.txt",null,null]}');
    return ['empty-one', 'memories-cosine', 'memories-l2', 'notes-ip'];
  } finally {
    rest.close();
  }
}

export interface CollectionSnapshot {
  configuration: unknown;
  metadata: string;
  records: { id: string; embedding: string; document: string | null; uri: string | null; metadata: string }[];
  nearest: { ids: string[][]; distances: number[][] };
}

/**
 * A collection as it reads back: every record sorted by id, embeddings as float32 bytes (from
 * the JS client's `get`), metadata as the server's own JSON text with keys sorted (from the REST
 * API), and the 5 nearest neighbours of a few fixed query vectors.
 */
export async function snapshot(url: string, name: string): Promise<CollectionSnapshot> {
  const c = client(url);
  const col = await c.getCollection({ name });
  const got = await col.get({ include: ['embeddings', 'documents', 'uris', 'metadatas'] });
  const rest = new ChromaRest({ url });
  try {
    const infoText = (await rest.call('GET', `${rest.collectionsPath}/${name}`)).toString();
    const info = JSON.parse(infoText) as { configuration_json: unknown };
    const raw = (await rest.call('POST', `${rest.collectionsPath}/${col.id}/get`, '{"include":["metadatas"]}')).toString();
    const metadataTexts = rawMetadataTexts(raw);
    const records = got.ids.map((id, i) => ({
      id,
      embedding: Buffer.from(Float32Array.from(got.embeddings[i]!).buffer).toString('base64'),
      document: got.documents[i] ?? null,
      uri: got.uris[i] ?? null,
      metadata: metadataTexts.get(id) ?? 'null',
    })).sort((a, b) => (a.id < b.id ? -1 : 1));
    const queries = vectors(3, 99);
    const nearest = got.ids.length ? await col.query({ queryEmbeddings: queries, nResults: 5, include: ['distances'] }) : { ids: [], distances: [] };
    return {
      configuration: info.configuration_json,
      metadata: sortedObjectText(/"metadata":(\{[^}]*\}|null)/.exec(infoText)![1]!),
      records,
      nearest: { ids: nearest.ids, distances: nearest.distances as number[][] },
    };
  } finally {
    rest.close();
  }
}

/** The server's text of each record's metadata (keys sorted), by id: flat objects, so a regex does. */
function rawMetadataTexts(body: string): Map<string, string> {
  const ids = (JSON.parse(body) as { ids: string[] }).ids;
  const section = body.slice(body.indexOf('"metadatas":[') + 13);
  const items = [...section.matchAll(/null|\{[^}]*\}/g)].slice(0, ids.length).map((m) => m[0]);
  return new Map(ids.map((id, i) => [id, items[i] === 'null' ? 'null' : sortedObjectText(items[i]!)]));
}

function sortedObjectText(text: string): string {
  if (text === 'null') return text;
  const inner = text.slice(1, -1);
  if (!inner) return '{}';
  const parts = [...inner.matchAll(/("(?:[^"\\]|\\.)*"):((?:"(?:[^"\\]|\\.)*")|[^,]+)/g)].map((m) => `${m[1]}:${m[2]}`);
  return `{${parts.sort().join(',')}}`;
}
