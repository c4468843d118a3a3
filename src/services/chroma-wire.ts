/**
 * Chroma's answers read without loss: a lossless JSON parser and writer, the embeddings of a
 * `get` page parsed straight from the response bytes, and that page as a whole. Pure: no I/O.
 *
 * Why not JSON.parse: Chroma's metadata distinguishes ints from floats and ints are 64-bit.
 * JSON.parse turns `3.0` into the int 3 and rounds 9007199254740993, so a backup through it
 * would change data. Metadata therefore goes through a lossless parser that keeps every
 * number as the text the server wrote (`JsonNumber`), and is written back the same way.
 * Embeddings are the bulk of a page (384 numbers a record): they are parsed straight from
 * the response bytes into a Float32Array, giving exactly what JSON.parse + Math.fround give
 * (Clinger's fast path, and Number() for the rest), without building 19 million JS numbers.
 */
import { endianness } from 'node:os';
import { JarvisError } from '../errors.js';

// ------------------------------------------------------------------ lossless JSON

/** A JSON number kept as written: `3.0` stays a float, `9007199254740993` stays exact. */
export class JsonNumber {
  constructor(readonly text: string) {}
  get isFloat(): boolean {
    return /[.eE]/.test(this.text);
  }
  toJSON(): number {
    return Number(this.text);
  }
}

export type LosslessJson = null | boolean | string | JsonNumber | LosslessJson[] | LosslessObject;
export interface LosslessObject { [key: string]: LosslessJson }

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

function syntaxError(text: string, at: number, what: string): JarvisError {
  return new JarvisError('BACKUP_INVALID', `malformed JSON at offset ${at}: ${what} (near ${JSON.stringify(text.slice(at, at + 20))})`);
}

/** Parses one JSON value starting at `start`; numbers become JsonNumber. Returns where it ended. */
export function parseLosslessAt(text: string, start: number): { value: LosslessJson; end: number } {
  let i = start;
  const skip = () => {
    WHITESPACE.lastIndex = i;
    WHITESPACE.exec(text);
    i = WHITESPACE.lastIndex;
  };
  const parseString = (): string => {
    const open = i;
    let close = text.indexOf('"', open + 1);
    if (close >= 0) {
      const plain = text.slice(open + 1, close);
      if (!plain.includes('\\')) {
        i = close + 1;
        return plain;
      }
    }
    // escapes: find the quote not preceded by an odd run of backslashes, let JSON.parse decode
    for (;;) {
      if (close < 0) throw syntaxError(text, open, 'unterminated string');
      let backslashes = 0;
      for (let k = close - 1; text.charCodeAt(k) === 92; k--) backslashes++;
      if (backslashes % 2 === 0) break;
      close = text.indexOf('"', close + 1);
    }
    i = close + 1;
    return JSON.parse(text.slice(open, close + 1)) as string;
  };
  const parseValue = (): LosslessJson => {
    skip();
    const c = text[i];
    if (c === '"') return parseString();
    if (c === '{') {
      i++;
      const out: LosslessObject = {};
      skip();
      if (text[i] === '}') { i++; return out; }
      for (;;) {
        skip();
        if (text[i] !== '"') throw syntaxError(text, i, 'expected a key');
        const key = parseString();
        skip();
        if (text[i] !== ':') throw syntaxError(text, i, 'expected ":"');
        i++;
        const member = parseValue();
        if (key === '__proto__') Object.defineProperty(out, key, { value: member, enumerable: true, writable: true, configurable: true });
        else out[key] = member;
        skip();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return out; }
        throw syntaxError(text, i, 'expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const out: LosslessJson[] = [];
      skip();
      if (text[i] === ']') { i++; return out; }
      for (;;) {
        out.push(parseValue());
        skip();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return out; }
        throw syntaxError(text, i, 'expected "," or "]"');
      }
    }
    if (text.startsWith('null', i)) { i += 4; return null; }
    if (text.startsWith('true', i)) { i += 4; return true; }
    if (text.startsWith('false', i)) { i += 5; return false; }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) throw syntaxError(text, i, 'unexpected character');
    i = NUMBER.lastIndex;
    return new JsonNumber(m[0]);
  };
  const value = parseValue();
  skip();
  return { value, end: i };
}

/** Parses a whole JSON text losslessly. */
export function parseLossless(text: string): LosslessJson {
  const { value, end } = parseLosslessAt(text, 0);
  if (end !== text.length) throw syntaxError(text, end, 'trailing characters');
  return value;
}

/** JSON text of a lossless value; numbers written exactly as they were read. */
export function stringifyLossless(value: LosslessJson): string {
  if (value === null) return 'null';
  if (value instanceof JsonNumber) return value.text;
  if (typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stringifyLossless).join(',')}]`;
  let out = '{';
  let first = true;
  for (const key of Object.keys(value)) {
    out += `${first ? '' : ','}${JSON.stringify(key)}:${stringifyLossless(value[key]!)}`;
    first = false;
  }
  return out + '}';
}

/**
 * A form that is equal exactly when two values are equal as Chroma sees them: keys sorted,
 * ints as integers (`i9007199254740993`), floats by value (`f3`, `f-0`), so that another
 * server's spelling of the same float (1e300 / 1e+300) compares equal.
 */
export function canonicalLossless(value: LosslessJson): string {
  if (value instanceof JsonNumber) {
    // JSON's grammar makes an int's text canonical already (no '+', no leading zeros), but for -0
    if (!value.isFloat) return value.text === '-0' ? '"i0"' : `"i${value.text}"`;
    const n = Number(value.text);
    return `"f${Object.is(n, -0) ? '-0' : String(n)}"`;
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalLossless).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalLossless(value[k]!)}`).join(',')}}`;
}

/** A lossless value as plain JSON (numbers as JS numbers). */
export function plainOf(value: LosslessJson): unknown {
  return JSON.parse(stringifyLossless(value)) as unknown;
}

export function isLosslessObject(value: LosslessJson | undefined): value is LosslessObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonNumber);
}

// ------------------------------------------------------------------ embeddings off the wire

/** Rows of float32, all of one dimension, in one buffer. */
export interface EmbeddingMatrix { values: Float32Array; rows: number; dim: number }

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);
const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * Parses `[[n,…],[n,…],…]` (or `null`) from `buf` at `start`, straight into float32. Each value
 * equals Math.fround(JSON.parse(text)): a mantissa below 2^53 with |exponent| ≤ 22 is computed
 * exactly in double (Clinger's fast path, one correctly rounded operation), the rest go
 * through Number(). Returns the byte offset after the closing bracket.
 */
export function parseEmbeddingMatrix(buf: Buffer, start: number): { matrix: EmbeddingMatrix | null; end: number } {
  const n = buf.length;
  let i = skipWhitespace(buf, start);
  if (buf[i] === 110 /* n */) {
    if (buf.toString('latin1', i, i + 4) !== 'null') matrixError(buf, i, 'expected null');
    return { matrix: null, end: i + 4 };
  }
  if (buf[i] !== 91 /* [ */) matrixError(buf, i, 'expected "["');
  i = skipWhitespace(buf, i + 1);
  if (buf[i] === 93 /* ] */) return { matrix: { values: new Float32Array(0), rows: 0, dim: 0 }, end: i + 1 };
  // sized from the first row (rows are alike), grown if a later row is shorter in text
  let values: Float32Array = new Float32Array(1 << 12);
  let k = 0;
  const firstRowStart = i;
  let rows = 0;
  let dim = -1;
  for (;;) {
    if (buf[i] !== 91) matrixError(buf, i, 'expected "[" to open a row');
    i = skipWhitespace(buf, i + 1);
    const rowStart = k;
    if (buf[i] === 93) {
      i++;
    } else {
      for (;;) {
        const s = i;
        let c = buf[i]!;
        const negative = c === 45; /* - */
        if (negative) c = buf[++i]!;
        if (c < 48 || c > 57) matrixError(buf, i, 'expected a number');
        let mantissa = 0;
        let exponent = 0;
        while (c >= 48 && c <= 57) {
          mantissa = mantissa * 10 + (c - 48);
          c = buf[++i]!;
        }
        if (c === 46 /* . */) {
          c = buf[++i]!;
          if (c < 48 || c > 57) matrixError(buf, i, 'expected a digit after "."');
          const fractionStart = i;
          while (c >= 48 && c <= 57) {
            mantissa = mantissa * 10 + (c - 48);
            c = buf[++i]!;
          }
          exponent = fractionStart - i;
        }
        if (c === 101 || c === 69 /* e E */) {
          c = buf[++i]!;
          const expNegative = c === 45;
          if (expNegative || c === 43) c = buf[++i]!;
          if (c < 48 || c > 57) matrixError(buf, i, 'expected an exponent');
          let e = 0;
          while (c >= 48 && c <= 57) {
            e = e * 10 + (c - 48);
            c = buf[++i]!;
          }
          exponent += expNegative ? -e : e;
        }
        // below 2^53 every step of the mantissa was exact (rounding is monotone, so a rounded
        // value below 2^53 means the true one is too)
        const v = mantissa < 9007199254740992 && exponent >= -22 && exponent <= 22
          ? (exponent < 0 ? mantissa / POW10[-exponent]! : mantissa * POW10[exponent]!)
          : Number(buf.toString('latin1', negative ? s + 1 : s, i));
        if (k === values.length) values = grow(values, rows === 0 ? values.length * 2 : Math.ceil(k * 1.25));
        values[k++] = negative ? -v : v;
        if (c !== 44 && c !== 93) {
          i = skipWhitespace(buf, i);
          c = buf[i]!;
        }
        if (c === 44 /* , */) {
          i = skipWhitespace(buf, i + 1);
          continue;
        }
        if (c === 93) {
          i++;
          break;
        }
        matrixError(buf, i, 'expected "," or "]" in a row');
      }
    }
    const length = k - rowStart;
    if (dim < 0) {
      dim = length;
      // the rest of the body holds at most this many rows like the first (plus a margin)
      const estimate = Math.ceil(((n - firstRowStart) / Math.max(1, i - firstRowStart)) * 1.1) + 1;
      if (estimate * dim > values.length) values = grow(values, estimate * dim);
    } else if (length !== dim) matrixError(buf, i, `rows of ${dim} and ${length} values in one collection`);
    rows++;
    i = skipWhitespace(buf, i);
    if (buf[i] === 44) {
      i = skipWhitespace(buf, i + 1);
      continue;
    }
    if (buf[i] === 93) return { matrix: { values: values.subarray(0, k), rows, dim }, end: i + 1 };
    matrixError(buf, i, 'expected "," or "]" between rows');
  }
}

function grow(values: Float32Array, size: number): Float32Array {
  const grown = new Float32Array(size);
  grown.set(values);
  return grown;
}

function skipWhitespace(buf: Buffer, from: number): number {
  let i = from;
  for (let c = buf[i]; c === 32 || c === 10 || c === 13 || c === 9; c = buf[++i]);
  return i;
}

function matrixError(buf: Buffer, at: number, what: string): never {
  throw new JarvisError('SERVICE_ERROR', `Chroma sent embeddings this reader does not understand: ${what} at byte ${at} (near ${JSON.stringify(buf.toString('utf8', at, at + 20))})`);
}

/** The little-endian float32 bytes of one row (a view when the machine is little-endian). */
export function embeddingBytes(matrix: EmbeddingMatrix, row: number): Buffer {
  const { values, dim } = matrix;
  const view = Buffer.from(values.buffer, values.byteOffset + row * dim * 4, dim * 4);
  return LITTLE_ENDIAN ? view : Buffer.from(view).swap32();
}

/** Little-endian bytes of float32 values. */
export function floatBytes(values: Float32Array): Buffer {
  const view = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return LITTLE_ENDIAN ? Buffer.from(view) : Buffer.from(view).swap32();
}

/** Float32 values of little-endian bytes (for comparisons and servers without base64 input). */
export function floatsOf(bytes: Buffer): Float32Array {
  if (bytes.length % 4 !== 0) throw new JarvisError('BACKUP_INVALID', `an embedding of ${bytes.length} bytes is not float32`);
  const copy = Buffer.from(bytes);
  if (!LITTLE_ENDIAN) copy.swap32();
  return new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4);
}

// ------------------------------------------------------------------ a page of records

export interface RecordPage {
  ids: string[];
  embeddings: EmbeddingMatrix | null;
  documents: (string | null)[] | null;
  uris: (string | null)[] | null;
  metadatas: (LosslessObject | null)[] | null;
}

const EMBEDDINGS_KEY = Buffer.from('"embeddings":');

function column<T>(body: Record<string, unknown>, key: string, count: number, check: (v: LosslessJson) => v is T & LosslessJson): (T | null)[] | null {
  const value = body[key];
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || value.length !== count) {
    throw new JarvisError('SERVICE_ERROR', `Chroma answered a get with ${Array.isArray(value) ? value.length : 'no'} ${key} for ${count} ids`);
  }
  for (const v of value as LosslessJson[]) if (v !== null && !check(v)) throw new JarvisError('SERVICE_ERROR', `Chroma answered a get with a ${key} entry of an unexpected type`);
  return value as (T | null)[];
}

const isString = (v: LosslessJson): v is string => typeof v === 'string';

const METADATAS_KEY = '"metadatas":';

/**
 * Parses the body of `POST …/collections/{id}/get`. The embeddings matrix is read from the
 * bytes and cut out; ids, documents and uris go through JSON.parse (exact for strings), the
 * metadatas through the lossless parser. The first `"embeddings":` (or `"metadatas":`) in the
 * body is the top-level key: inside a string a quote is always escaped, and the only objects
 * with keys (the metadatas) cannot come before their own key.
 */
export function parseRecordPage(body: Buffer): RecordPage {
  let embeddings: EmbeddingMatrix | null = null;
  let rest: string;
  const at = body.indexOf(EMBEDDINGS_KEY);
  if (at >= 0) {
    const parsed = parseEmbeddingMatrix(body, at + EMBEDDINGS_KEY.length);
    embeddings = parsed.matrix;
    rest = body.toString('utf8', 0, at) + '"embeddings":null' + body.toString('utf8', parsed.end);
  } else {
    rest = body.toString('utf8');
  }
  let top: Record<string, unknown>;
  try {
    top = JSON.parse(rest) as Record<string, unknown>;
  } catch (e) {
    throw new JarvisError('SERVICE_ERROR', `Chroma answered a get with malformed JSON: ${(e as Error).message}`);
  }
  if (!top || typeof top !== 'object' || !Array.isArray(top.ids) || !top.ids.every((x) => typeof x === 'string')) {
    throw new JarvisError('SERVICE_ERROR', 'Chroma answered a get without a list of ids');
  }
  const ids = top.ids as string[];
  if (embeddings && embeddings.rows !== ids.length) {
    throw new JarvisError('SERVICE_ERROR', `Chroma answered a get with ${embeddings.rows} embeddings for ${ids.length} ids`);
  }
  let metadatas: LosslessJson = null;
  if (top.metadatas !== undefined && top.metadatas !== null) {
    const m = rest.indexOf(METADATAS_KEY);
    metadatas = parseLosslessAt(rest, m + METADATAS_KEY.length).value;
  }
  return {
    ids,
    embeddings,
    documents: column(top, 'documents', ids.length, isString),
    uris: column(top, 'uris', ids.length, isString),
    metadatas: column({ metadatas }, 'metadatas', ids.length, isLosslessObject),
  };
}

