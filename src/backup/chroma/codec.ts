/**
 * The record codec of Chroma backups: how records are written to and read from a backup, the
 * checksums that prove a restore identical, and the body of an add request. Pure: no I/O.
 * Records come off the wire losslessly through services/chroma-wire.ts.
 *
 * Backup file (one per collection, JSON lines, compressed by the caller):
 *   {"$":"collection","name":…,"id":…,"metadata":…,"configuration":…,"dimension":…}
 *   {"id":…,"embedding":"<base64 of little-endian float32>","document":…,"uri":…,"metadata":…}   × count
 *   {"$":"end","count":…,"embeddingsSha256":…,"contentSha256":…}
 * `document`, `uri` and `metadata` are left out when null. A file without its end line is
 * truncated; the manifest repeats the end line's figures.
 */
import { createHash } from 'node:crypto';
import { JarvisError } from '../../errors.js';
import type { RemoteCollection } from '../../services/chroma-collections.js';
import { JsonNumber, canonicalLossless, floatsOf, isLosslessObject, parseLossless, plainOf, stringifyLossless, type LosslessJson, type LosslessObject } from '../../services/chroma-wire.js';

// ------------------------------------------------------------------ backup lines

/** One record as stored in a backup: the embedding as base64 of little-endian float32. */
export interface StoredRecord {
  id: string;
  embedding: string;
  document: string | null;
  uri: string | null;
  metadata: LosslessObject | null;
}

/** A backup file's first line: the collection as the server listed it. */
export type CollectionHeader = RemoteCollection;

export interface CollectionTrailer { count: number; embeddingsSha256: string; contentSha256: string }

/**
 * Lines written straight into bytes. Building one string per page would turn the whole page
 * into a two-byte string as soon as one document has a non-Latin-1 character, doubling its
 * memory and the cost of encoding it.
 */
export class LineBuffer {
  private buf = Buffer.allocUnsafe(1 << 22);
  private length = 0;
  private ensure(more: number): void {
    if (this.length + more <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + more));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }
  text(s: string): void {
    this.ensure(s.length * 3);
    this.length += this.buf.write(s, this.length, 'utf8');
  }
  ascii(s: string): void {
    this.ensure(s.length);
    this.length += this.buf.write(s, this.length, 'latin1');
  }
  get size(): number {
    return this.length;
  }
  /** The bytes written so far, handed over; writing goes on in a new buffer of the same size. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.length);
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.length = 0;
    return out;
  }
}

/** A record on its way out: the embedding as its little-endian float32 bytes. */
export type ExportedRecord = Omit<StoredRecord, 'embedding'> & { embedding: Buffer };

export function writeRecordLine(out: LineBuffer, r: StoredRecord | ExportedRecord): void {
  out.text(`{"id":${JSON.stringify(r.id)},"embedding":"`);
  // Node's native base64 beats an encoder in JS writing in place (measured), garbage included
  out.ascii(typeof r.embedding === 'string' ? r.embedding : r.embedding.toString('base64'));
  let tail = '"';
  if (r.document !== null) tail += `,"document":${JSON.stringify(r.document)}`;
  if (r.uri !== null) tail += `,"uri":${JSON.stringify(r.uri)}`;
  if (r.metadata !== null) tail += `,"metadata":${stringifyLossless(r.metadata)}`;
  out.text(tail + '}\n');
}

export function encodeRecordLine(r: StoredRecord | ExportedRecord): string {
  const out = new LineBuffer();
  writeRecordLine(out, r);
  return out.take().toString('utf8');
}

export function encodeHeaderLine(h: CollectionHeader): string {
  return `{"$":"collection","name":${JSON.stringify(h.name)},"id":${JSON.stringify(h.id)},"metadata":${stringifyLossless(h.metadata)},"configuration":${stringifyLossless(h.configuration)},"dimension":${h.dimension === null ? 'null' : String(h.dimension)}}\n`;
}

export function encodeTrailerLine(t: CollectionTrailer): string {
  return `{"$":"end","count":${t.count},"embeddingsSha256":"${t.embeddingsSha256}","contentSha256":"${t.contentSha256}"}\n`;
}

export type DecodedLine =
  | { kind: 'record'; record: StoredRecord }
  | { kind: 'header'; header: CollectionHeader }
  | { kind: 'end'; trailer: CollectionTrailer };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function bad(what: string, lineNumber: number): JarvisError {
  return new JarvisError('BACKUP_INVALID', `line ${lineNumber} of the collection file: ${what}`);
}

function optionalString(v: LosslessJson | undefined, what: string, lineNumber: number): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw bad(`${what} is not a string`, lineNumber);
  return v;
}

function optionalObject(v: LosslessJson | undefined, what: string, lineNumber: number): LosslessObject | null {
  if (v === undefined || v === null) return null;
  if (!isLosslessObject(v)) throw bad(`${what} is not an object`, lineNumber);
  return v;
}

function count(v: LosslessJson | undefined, what: string, lineNumber: number): number {
  if (!(v instanceof JsonNumber) || v.isFloat || !Number.isSafeInteger(Number(v.text)) || Number(v.text) < 0) throw bad(`${what} is not a count`, lineNumber);
  return Number(v.text);
}

export function decodeLine(line: string, lineNumber: number): DecodedLine {
  let value: LosslessJson;
  try {
    value = parseLossless(line);
  } catch (e) {
    throw bad((e as Error).message, lineNumber);
  }
  if (!isLosslessObject(value)) throw bad('not a JSON object', lineNumber);
  const kind = value.$;
  if (kind === 'collection') {
    if (typeof value.name !== 'string' || typeof value.id !== 'string') throw bad('a collection line without name or id', lineNumber);
    return {
      kind: 'header',
      header: {
        name: value.name, id: value.id,
        metadata: optionalObject(value.metadata, 'metadata', lineNumber),
        configuration: optionalObject(value.configuration, 'configuration', lineNumber),
        dimension: value.dimension === null || value.dimension === undefined ? null : count(value.dimension, 'dimension', lineNumber),
      },
    };
  }
  if (kind === 'end') {
    const { embeddingsSha256, contentSha256 } = value;
    if (typeof embeddingsSha256 !== 'string' || typeof contentSha256 !== 'string') throw bad('an end line without checksums', lineNumber);
    return { kind: 'end', trailer: { count: count(value.count, 'count', lineNumber), embeddingsSha256, contentSha256 } };
  }
  if (kind !== undefined) throw bad(`unknown line kind ${JSON.stringify(plainOf(kind))}`, lineNumber);
  if (typeof value.id !== 'string') throw bad('a record without an id', lineNumber);
  if (typeof value.embedding !== 'string' || !BASE64.test(value.embedding)) throw bad(`record ${JSON.stringify(value.id)} has no base64 embedding`, lineNumber);
  return {
    kind: 'record',
    record: {
      id: value.id,
      embedding: value.embedding,
      document: optionalString(value.document, 'document', lineNumber),
      uri: optionalString(value.uri, 'uri', lineNumber),
      metadata: optionalObject(value.metadata, 'metadata', lineNumber),
    },
  };
}

// ------------------------------------------------------------------ checksums

/**
 * An order-independent digest of a set of records: the sum modulo 2^256 of each record's
 * SHA-256. The order Chroma returns records in is an implementation detail (a restored
 * collection may list them otherwise); a sum, unlike XOR, does not cancel duplicates.
 */
export class SetDigest {
  private readonly words = new Uint32Array(8);
  add(digest: Buffer): void {
    let carry = 0;
    for (let w = 7; w >= 0; w--) {
      const sum = this.words[w]! + digest.readUInt32BE(w * 4) + carry;
      this.words[w] = sum >>> 0;
      carry = sum > 0xffffffff ? 1 : 0;
    }
  }
  hex(): string {
    return Array.from(this.words, (w) => w.toString(16).padStart(8, '0')).join('');
  }
}

const SEPARATOR = Buffer.from([0]);

/** Both checksums of a collection: over ids and embeddings, and over ids and everything else. */
export class CollectionDigest {
  count = 0;
  private readonly embeddings = new SetDigest();
  private readonly content = new SetDigest();

  add(id: string, embedding: Buffer, document: string | null, uri: string | null, metadata: LosslessObject | null): void {
    this.count++;
    this.embeddings.add(createHash('sha256').update(id).update(SEPARATOR).update(embedding).digest());
    const rest = `[${document === null ? 'null' : JSON.stringify(document)},${uri === null ? 'null' : JSON.stringify(uri)},${metadata === null ? 'null' : canonicalLossless(metadata)}]`;
    this.content.add(createHash('sha256').update(id).update(SEPARATOR).update(rest).digest());
  }

  result(): CollectionTrailer {
    return { count: this.count, embeddingsSha256: this.embeddings.hex(), contentSha256: this.content.hex() };
  }
}

// ------------------------------------------------------------------ add requests

/** JSON text of a float32 that parses back to it, sign of zero included. */
function floatText(x: number): string {
  return Object.is(x, -0) ? '-0.0' : String(x);
}

/**
 * The JSON body of `POST …/collections/{id}/add` for a batch, metadata numbers exactly as
 * stored. Embeddings go as base64 when the server accepts it (its pre-flight check says so),
 * as numbers otherwise (the shortest double text of a float32 parses back to that float32).
 */
export function addRequestBody(records: readonly StoredRecord[], base64: boolean): string {
  const ids = records.map((r) => JSON.stringify(r.id)).join(',');
  const embeddings = records.map((r) => (base64 ? `"${r.embedding}"` : `[${Array.from(floatsOf(Buffer.from(r.embedding, 'base64')), floatText).join(',')}]`)).join(',');
  let body = `{"ids":[${ids}],"embeddings":[${embeddings}]`;
  if (records.some((r) => r.document !== null)) body += `,"documents":[${records.map((r) => (r.document === null ? 'null' : JSON.stringify(r.document))).join(',')}]`;
  if (records.some((r) => r.uri !== null)) body += `,"uris":[${records.map((r) => (r.uri === null ? 'null' : JSON.stringify(r.uri))).join(',')}]`;
  if (records.some((r) => r.metadata !== null)) body += `,"metadatas":[${records.map((r) => stringifyLossless(r.metadata)).join(',')}]`;
  return body + '}';
}
