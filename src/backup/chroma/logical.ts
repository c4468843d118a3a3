/**
 * The logical Chroma backup: every collection through the server's API, online. This file
 * exports; logical-restore.ts restores and restore-tests.
 *
 * Export: collections are listed (name, metadata, configuration, dimension), then each one is
 * read page by page (`get` with limit/offset and embeddings included; pages are kept small
 * enough for SQLite's variable limit and two are in flight, so the server reads the next page
 * while this process encodes the last) into one brotli-compressed JSON-lines file per
 * collection (format in codec.ts). Memory holds two pages, whatever the collection size.
 * It is not a snapshot: a record written during the export may or may not be in it; the
 * collection's count before and after is recorded, and differences are reported.
 */
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createBrotliCompress } from 'node:zlib';
import type { ChromaService } from '../../config/types.js';
import type { Progress } from '../../engine/types.js';
import { JarvisError } from '../../errors.js';
import { plural } from '../../render/format.js';
import { ChromaRest } from '../../services/chroma.js';
import { countRecords, listCollections, readPages, type RemoteCollection } from '../../services/chroma-collections.js';
import { embeddingBytes, isLosslessObject } from '../../services/chroma-wire.js';
import { CollectionDigest, LineBuffer, encodeHeaderLine, encodeTrailerLine, writeRecordLine, type CollectionHeader, type CollectionTrailer, type ExportedRecord } from './codec.js';
import { testPausePoint, type BackupWriter } from '../storage.js';

/** What the manifest records of each collection. */
export interface CollectionSummary extends CollectionTrailer {
  name: string;
  id: string;
  file: string;
  dimension: number | null;
  space: string | null;
  /** The collection's count before and after the export, when they differ from `count`. */
  countBefore?: number;
  countAfter?: number;
}

export const BROTLI_QUALITY = 1;

/**
 * Brotli at quality 1: on lines of base64 float32 (50,000 × 384) it came out a little smaller than
 * gzip -6 and took a quarter of the CPU of gzip -1 (0.45 s against 1.96 s), measured while this
 * was built. zstd is not in Node 20's zlib.
 */
export function compressor(kind: 'text' | 'binary' = 'text'): Transform {
  return createBrotliCompress({
    params: {
      [zlibConstants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [zlibConstants.BROTLI_PARAM_MODE]: kind === 'text' ? zlibConstants.BROTLI_MODE_TEXT : zlibConstants.BROTLI_MODE_GENERIC,
    },
  });
}

/**
 * Records per page: about 12 MB of JSON (a float is ~11 bytes of text), at most 5,000 (far below
 * SQLite's 32,766 variables). Fewer, larger pages cost the server less (each offset is a scan);
 * two pages in flight bound the memory.
 */
export function pageSizeFor(dimension: number | null): number {
  return Math.max(100, Math.min(5000, Math.floor(12_000_000 / (12 * Math.max(1, dimension ?? 384) + 200))));
}

/** The collections a backup covers: the configured subset (each must exist) or all of them. */
export function selectCollections(all: RemoteCollection[], wanted: readonly string[] | undefined, where: string): RemoteCollection[] {
  if (!wanted) return all;
  const missing = wanted.filter((w) => !all.some((c) => c.name === w));
  if (missing.length) {
    throw new JarvisError('BACKUP_FAILED', `collection${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} (services.chroma.collections) not found in ${where}`, {
      hint: all.length ? `collections there: ${all.map((c) => c.name).slice(0, 10).join(', ')}${all.length > 10 ? ', …' : ''}` : 'it has no collections',
    });
  }
  return all.filter((c) => wanted.includes(c.name));
}

export function spaceOf(c: CollectionHeader): string | null {
  const hnsw = c.configuration?.hnsw;
  const space = isLosslessObject(hnsw) ? hnsw.space : undefined;
  if (typeof space === 'string') return space;
  const legacy = c.metadata?.['hnsw:space'];
  return typeof legacy === 'string' ? legacy : null;
}

/** The lines of one collection's backup file, a page at a time; `done` gets the trailer. */
async function* exportLines(rest: ChromaRest, collection: RemoteCollection, onRecords: (n: number) => void, done: (t: CollectionTrailer) => void): AsyncGenerator<Buffer> {
  yield Buffer.from(encodeHeaderLine(collection));
  const digest = new CollectionDigest();
  const lines = new LineBuffer();
  for await (const page of readPages(rest, collection.id, pageSizeFor(collection.dimension))) {
    for (let i = 0; i < page.ids.length; i++) {
      const record: ExportedRecord = {
        id: page.ids[i]!, embedding: embeddingBytes(page.embeddings!, i),
        document: page.documents?.[i] ?? null, uri: page.uris?.[i] ?? null, metadata: page.metadatas?.[i] ?? null,
      };
      digest.add(record.id, record.embedding, record.document, record.uri, record.metadata);
      writeRecordLine(lines, record);
    }
    onRecords(page.ids.length);
    yield lines.take();
  }
  const trailer = digest.result();
  done(trailer);
  yield Buffer.from(encodeTrailerLine(trailer));
}

export interface LogicalExport { collections: CollectionSummary[]; records: number; rawEmbeddingBytes: number; serverVersion: string }

/** Writes every selected collection through `writer`; returns what the manifest records. */
export async function exportCollections(service: ChromaService, writer: BackupWriter, progress: Progress, env: NodeJS.ProcessEnv): Promise<LogicalExport> {
  const rest = new ChromaRest(service);
  try {
    const serverVersion = String(JSON.parse((await rest.call('GET', '/api/v2/version')).toString('utf8')));
    const collections = selectCollections(await listCollections(rest), service.collections, `tenant ${rest.tenant}, database ${rest.database}`);
    const before = new Map<string, number>();
    for (const c of collections) before.set(c.id, await countRecords(rest, c.id));
    const total = [...before.values()].reduce((a, b) => a + b, 0);
    let done = 0;
    const summaries: CollectionSummary[] = [];
    for (const [index, c] of collections.entries()) {
      progress.note(`exporting ${c.name} (${plural(before.get(c.id) ?? 0, 'record')})`);
      const file = `collections/${String(index + 1).padStart(4, '0')}.jsonl.br${writer.encrypted ? '.enc' : ''}`;
      let trailer: CollectionTrailer | null = null;
      // one page ahead at most: Readable.from would otherwise pull 16 pages before brotli takes one
      const lines = Readable.from(exportLines(rest, c, (n) => { done += n; progress.update(done, Math.max(total, done)); }, (t) => { trailer = t; }), { highWaterMark: 1 });
      const compressed = compressor();
      await Promise.all([pipeline(lines, compressed), writer.writeStream(file, compressed)]);
      await testPausePoint('collection-written', env);
      const t = trailer as CollectionTrailer | null;
      if (!t) throw new JarvisError('BACKUP_FAILED', `the export of ${c.name} ended without its checksums`);
      const after = await countRecords(rest, c.id);
      const countBefore = before.get(c.id)!;
      summaries.push({
        name: c.name, id: c.id, file, dimension: c.dimension, space: spaceOf(c), ...t,
        ...(countBefore !== t.count || after !== t.count ? { countBefore, countAfter: after } : {}),
      });
    }
    return {
      collections: summaries,
      records: summaries.reduce((n, s) => n + s.count, 0),
      rawEmbeddingBytes: summaries.reduce((n, s) => n + s.count * (s.dimension ?? 0) * 4, 0),
      serverVersion,
    };
  } finally {
    rest.close();
  }
}

/** Reads a collection back and computes its figures. */
export async function digestCollection(rest: ChromaRest, id: string, dimension: number | null): Promise<CollectionTrailer> {
  const digest = new CollectionDigest();
  for await (const page of readPages(rest, id, pageSizeFor(dimension))) {
    for (let i = 0; i < page.ids.length; i++) {
      digest.add(page.ids[i]!, embeddingBytes(page.embeddings!, i), page.documents?.[i] ?? null, page.uris?.[i] ?? null, page.metadatas?.[i] ?? null);
    }
  }
  return digest.result();
}
