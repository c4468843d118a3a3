/**
 * The archive chunk format: one batch of rows (a table's rows and the child rows that went
 * with them) as JSON lines compressed with zstd or gzip (compression.ts; the manifest says
 * which), optionally encrypted like backups, described by a manifest whose own checksum covers
 * every field.
 *
 * Data file, once decompressed (and decrypted):
 *   {"table":"public.conversations","columns":["id","user_id",...]}   ← a table header line
 *   ["17","3","Trip to Lyon","2025-01-02 10:00:00+00",...]           ← its rows, PostgreSQL's
 *   ...                                                                  text form of each value
 *   {"table":"public.messages","columns":[...]}                      ← parents before children
 *   ["901","17","user","hello",...]
 * Values are the server's own text output (exact for every type) or null; restore casts them
 * back with the live column types. `zstdcat chunk-000001.jsonl.zst | head` (`zcat` for a
 * `.jsonl.gz`) is readable as is.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { canonicalJson } from '../storage/durable.js';
import type { EncryptionSession, KeyRing } from '../storage/crypto.js';
import { decryptor } from '../storage/crypto.js';
import { compressor, decompressor, type ChunkCompression } from './compression.js';

export type Value = string | null;
export type Row = Value[];

export interface ChunkTable {
  /** `schema.name` */
  table: string;
  columns: { name: string; type: string }[];
  primaryKey: string[];
  rows: number;
  /** The smallest and largest primary key in the chunk (text values, key column order). */
  keyRange: { min: Value[]; max: Value[] } | null;
}

export interface ChunkManifest {
  formatVersion: 1;
  kind: 'jarvis-db-archive-chunk';
  archiveId: string;
  policy: string;
  chunk: number;
  /** The transaction that deletes these rows: the chunk counts only if it committed. */
  xid: string;
  createdAt: string;
  /** The planned cut-off (ISO) and the bound this batch used (`<` cut-off or `<=` a maxRows boundary). */
  cutoff: string;
  ageColumn: string;
  tables: ChunkTable[];
  rows: number;
  file: { name: string; bytes: number; sha256: string; compression: ChunkCompression; encrypted: boolean };
  manifestSha256: string;
}

export function chunkBaseName(chunk: number): string {
  return `chunk-${String(chunk).padStart(6, '0')}`;
}

export function manifestDigest(manifest: Omit<ChunkManifest, 'manifestSha256'> & { manifestSha256?: string }): string {
  const { manifestSha256: _omit, ...rest } = manifest;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

export function sealChunkManifest(manifest: Omit<ChunkManifest, 'manifestSha256'>): ChunkManifest {
  return { ...manifest, manifestSha256: manifestDigest(manifest) };
}

/** Integer-like key columns compare as numbers; others as text (uuid, text keys). */
function compareKeys(a: Value[], b: Value[], numeric: boolean[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    if (x === null) return -1;
    if (y === null) return 1;
    if (numeric[i] && /^-?\d+$/.test(x) && /^-?\d+$/.test(y)) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  return 0;
}

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint', 'numeric']);

/** The key range of some rows, given the key's positions among the columns. */
export function keyRange(rows: Row[], keyPositions: number[], keyTypes: string[]): ChunkTable['keyRange'] {
  if (rows.length === 0) return null;
  const numeric = keyTypes.map((t) => INTEGER_TYPES.has(t));
  let min = keyPositions.map((p) => rows[0]![p] ?? null);
  let max = min;
  for (const row of rows) {
    const k = keyPositions.map((p) => row[p] ?? null);
    if (compareKeys(k, min, numeric) < 0) min = k;
    if (compareKeys(k, max, numeric) > 0) max = k;
  }
  return { min, max };
}

/** One table's rows in a chunk, each already a JSON array line (the server builds them). */
export interface ChunkPart {
  table: string;
  columns: string[];
  lines: string[];
}

/** A row as a chunk line. */
export function rowLine(row: Row): string {
  return JSON.stringify(row);
}

function* lines(parts: ChunkPart[]): Generator<Buffer> {
  const step = 2000;
  for (const part of parts) {
    yield Buffer.from(JSON.stringify({ table: part.table, columns: part.columns }) + '\n');
    for (let i = 0; i < part.lines.length; i += step) yield Buffer.from(part.lines.slice(i, i + step).join('\n') + '\n');
  }
}

/**
 * A chunk's data as a source and the transforms it passes before it is stored (compression,
 * then encryption when on): the sealed store hashes and counts the stored bytes.
 */
export function chunkData(parts: ChunkPart[], options: { compression: ChunkCompression; encryption: EncryptionSession | null }): { source: Readable; transforms: Transform[] } {
  const transforms: Transform[] = [compressor(options.compression)];
  if (options.encryption) transforms.push(options.encryption.encryptor());
  return { source: Readable.from(lines(parts)), transforms };
}

/**
 * The output of `COPY (SELECT <chunk line>) TO STDOUT` back to chunk lines, counting them. In
 * COPY's text format a value's backslashes are doubled and control characters escaped; a chunk
 * line is JSON, which holds no raw control character, so every backslash arrives doubled and
 * anything else after a backslash is refused (the COPY's transaction then rolls back).
 */
export class CopyTextLines extends Transform {
  lines = 0;
  private pendingBackslash = false;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.lines++;
    if (!this.pendingBackslash && chunk.indexOf(0x5c) === -1) {
      done(null, chunk);
      return;
    }
    const out = Buffer.allocUnsafe(chunk.length);
    let n = 0;
    for (const byte of chunk) {
      if (this.pendingBackslash) {
        if (byte !== 0x5c) {
          done(new Error(`unexpected COPY escape \\${String.fromCharCode(byte)} in a chunk line`));
          return;
        }
        out[n++] = 0x5c;
        this.pendingBackslash = false;
      } else if (byte === 0x5c) this.pendingBackslash = true;
      else out[n++] = byte;
    }
    done(null, out.subarray(0, n));
  }

  override _flush(done: TransformCallback): void {
    done(this.pendingBackslash ? new Error('a COPY escape cut short at the end of a chunk') : null);
  }
}

/** A chunk of one table whose lines stream in (each ending with a newline), after its header line. */
export function streamedChunkData(part: Pick<ChunkPart, 'table' | 'columns'>, body: AsyncIterable<Buffer>, options: { compression: ChunkCompression; encryption: EncryptionSession | null }): { source: Readable; transforms: Transform[] } {
  async function* withHeader(): AsyncGenerator<Buffer> {
    yield Buffer.from(JSON.stringify({ table: part.table, columns: part.columns }) + '\n');
    yield* body;
  }
  const transforms: Transform[] = [compressor(options.compression)];
  if (options.encryption) transforms.push(options.encryption.encryptor());
  return { source: Readable.from(withHeader()), transforms };
}

/** Hashes and counts the stored bytes as they pass. */
class Tap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

export interface ChunkRecordHandler {
  header?(table: string, columns: string[]): void | Promise<void>;
  row?(table: string, row: Row): void | Promise<void>;
}

export interface ChunkReadResult {
  ok: boolean;
  problem: string | null;
  bytes: number;
  sha256: string;
  rowsByTable: Record<string, number>;
}

/**
 * Reads a chunk's stored data end to end: checks its size and SHA-256 against the manifest,
 * that it decompresses (and decrypts), that every line parses and fits its table's columns,
 * and that the row counts match. Handlers see each header and row as they are read; an error a
 * handler throws stops the read and is thrown as it is (it is not a problem of the chunk).
 */
export async function readChunk(stored: Readable, manifest: ChunkManifest, ring: KeyRing | null, handler: ChunkRecordHandler = {}): Promise<ChunkReadResult> {
  const tap = new Tap();
  const rowsByTable: Record<string, number> = {};
  const expected = new Map(manifest.tables.map((t) => [t.table, t]));
  let problem: string | null = null;
  let current: { table: string; width: number } | null = null;
  let lineNo = 0;
  // A handler's error is the caller's, not a problem of the chunk. Kept here because the pipeline
  // may reject with its own error (a premature close) once the reading stage has thrown.
  let handlerFailure: { error: unknown } | null = null;
  const callHandler = async (call: () => void | Promise<void>) => {
    try {
      await call();
    } catch (e) {
      handlerFailure = { error: e };
      throw e;
    }
  };
  const consume = async (line: string) => {
    lineNo++;
    if (line === '') return;
    const value = JSON.parse(line) as unknown;
    if (Array.isArray(value)) {
      if (!current) throw new Error(`line ${lineNo}: a row before any table header`);
      if (value.length !== current.width || !value.every((v) => v === null || typeof v === 'string')) throw new Error(`line ${lineNo}: a row that does not fit the columns of ${current.table}`);
      rowsByTable[current.table] = (rowsByTable[current.table] ?? 0) + 1;
      await callHandler(() => handler.row?.(current!.table, value as Row));
      return;
    }
    const header = value as { table?: unknown; columns?: unknown };
    if (typeof header.table !== 'string' || !Array.isArray(header.columns)) throw new Error(`line ${lineNo}: neither a row nor a table header`);
    const meta = expected.get(header.table);
    if (!meta) throw new Error(`line ${lineNo}: table ${header.table} is not in the manifest`);
    if (canonicalJson(header.columns) !== canonicalJson(meta.columns.map((c) => c.name))) throw new Error(`line ${lineNo}: the columns of ${header.table} differ from the manifest`);
    current = { table: header.table, width: header.columns.length };
    await callHandler(() => handler.header?.(header.table as string, header.columns as string[]));
  };
  const stages: (Readable | Transform | ((source: AsyncIterable<Buffer>) => Promise<void>))[] = [stored, tap];
  if (manifest.file.encrypted) {
    if (!ring) return { ok: false, problem: 'the chunk is encrypted and no passphrase is configured', bytes: 0, sha256: '', rowsByTable };
    stages.push(decryptor(ring, manifest.file.name));
  }
  try {
    stages.push(decompressor(manifest.file.compression));
  } catch (e) {
    return { ok: false, problem: (e as Error).message, bytes: 0, sha256: '', rowsByTable };
  }
  stages.push(async (source: AsyncIterable<Buffer>) => {
    let rest = '';
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for await (const chunk of source) {
      const text = rest + decoder.decode(chunk, { stream: true });
      const parts = text.split('\n');
      rest = parts.pop()!;
      for (const line of parts) await consume(line);
    }
    rest += decoder.decode();
    if (rest !== '') throw new Error(`line ${lineNo + 1}: the last line is cut short`);
  });
  try {
    await (pipeline as (...s: unknown[]) => Promise<void>)(...stages);
  } catch (e) {
    if (handlerFailure) throw (handlerFailure as { error: unknown }).error;
    problem = (e as Error).message;
  }
  const sha256 = tap.hash.digest('hex');
  if (!problem && tap.bytes !== manifest.file.bytes) problem = `${manifest.file.name} has ${tap.bytes} bytes, the manifest says ${manifest.file.bytes}`;
  if (!problem && sha256 !== manifest.file.sha256) problem = `${manifest.file.name} does not match its SHA-256`;
  if (!problem) {
    const wrong = manifest.tables.find((t) => (rowsByTable[t.table] ?? 0) !== t.rows);
    if (wrong) problem = `${wrong.table}: ${rowsByTable[wrong.table] ?? 0} rows, the manifest says ${wrong.rows}`;
  }
  return { ok: problem === null, problem, bytes: tap.bytes, sha256, rowsByTable };
}
