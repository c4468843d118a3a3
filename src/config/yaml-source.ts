/**
 * Reading a YAML file safely and keeping positions: a size limit before reading, strict
 * UTF-8 (the first bad byte named by line and column), no empty files, unique keys, one
 * document, aliases allowed but alias bombs refused, and `locate(path)` to find the line and
 * column of any value (or key) for messages.
 */
import { readFile, stat } from 'node:fs/promises';
import { relative, isAbsolute } from 'node:path';
import { formatBytes } from '../render/format.js';
import {
  isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument,
  type Document, type Node as YamlNode, type Scalar,
} from 'yaml';
import type { Path, Position, Problems } from './problems.js';

/** Config and policy files larger than this are refused before they are read. */
export const MAX_FILE_BYTES = 1_000_000;
/** yaml's limit on alias expansion (its default is 100); a billion-laughs file exceeds it at once. */
export const MAX_ALIAS_COUNT = 100;
/** Deeper nesting than this is refused (no config needs it; a hostile file could blow the stack). */
export const MAX_DEPTH = 64;

export interface SourceFile {
  /** Absolute path. */
  file: string;
  /** As shown in messages. */
  display: string;
  fileIndex: number;
  bytes: Buffer;
  /** The parsed value (plain objects, arrays and scalars), or undefined when parsing failed. */
  value: unknown;
  /** Line and column of the value at `path` (of its key when `key` is true), as near as possible. */
  locate(path: Path, key?: boolean): Position | undefined;
  /** The YAML style of the scalar at `path`: 'PLAIN' for unquoted values. */
  scalarStyle(path: Path): Scalar['type'] | undefined;
}

/** How a file is named in messages: relative to the working directory when it is inside it. */
export function displayName(file: string, cwd = process.cwd()): string {
  const rel = relative(cwd, file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}

/** Byte offset of the first invalid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) { i++; continue; }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) { need = 1; min = 0x80; }
    else if (b >= 0xe0 && b <= 0xef) { need = 2; min = 0x800; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; min = 0x10000; }
    else return i;
    let cp = b & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

function positionOfByte(bytes: Buffer, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) { line++; lineStart = i + 1; }
  const col = [...bytes.subarray(lineStart, offset).toString('utf8')].length + 1;
  return { line, col };
}

/**
 * Reads the bytes of a config or policy file, refusing directories and files over
 * MAX_FILE_BYTES before reading them: returns the bytes, or a sentence saying why not.
 * A missing file rejects with the ENOENT error (callers word it).
 */
export async function readSourceBytes(file: string): Promise<Buffer | string> {
  const info = await stat(file);
  if (info.isDirectory()) return 'is a directory, not a YAML file';
  if (info.size > MAX_FILE_BYTES) return `file is ${formatBytes(info.size)}; a config file may be at most ${formatBytes(MAX_FILE_BYTES)}`;
  const bytes = await readFile(file);
  if (bytes.length > MAX_FILE_BYTES) return `file is larger than ${formatBytes(MAX_FILE_BYTES)}`;
  return bytes;
}

type Walkable = YamlNode | null | undefined;

/**
 * Parses YAML bytes. Problems (syntax, duplicate keys, bad bytes, an empty document, alias
 * bombs) go into `problems`; the returned SourceFile's value is then undefined.
 */
export function parseSource(file: string, display: string, fileIndex: number, bytes: Buffer, problems: Problems): SourceFile {
  const lineCounter = new LineCounter();
  let doc: Document.Parsed | undefined;
  const source: SourceFile = {
    file, display, fileIndex, bytes, value: undefined,
    locate: (path, key = false) => {
      if (!doc) return undefined;
      const node = find(doc, path, key);
      const offset = node?.range?.[0];
      return offset === undefined ? undefined : lineCounter.linePos(offset);
    },
    scalarStyle: (path) => {
      if (!doc) return undefined;
      const node = find(doc, path, false);
      return node && isScalar(node) ? node.type : undefined;
    },
  };
  const report = (message: string, position?: Position) => problems.add({ file: display, fileIndex, position, path: [], message });

  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) {
    report(`is not valid UTF-8: byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} cannot start a character here (save the file as UTF-8)`, positionOfByte(bytes, bad));
    return source;
  }
  let text = bytes.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.includes('\u0000')) {
    report('contains a NUL byte: not a text file', positionOfByte(bytes, bytes.indexOf(0)));
    return source;
  }
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true, strict: true });
  } catch (e) {
    report(`cannot be parsed as YAML (${e instanceof Error ? e.message : String(e)})`);
    return source;
  }
  // After the first syntax error the parser's further complaints are mostly its echoes:
  // report that one, and every duplicate key (each is independent).
  const syntax = doc.errors.filter((e) => e.code !== 'DUPLICATE_KEY');
  const yamlProblems = [...syntax.slice(0, 1), ...doc.errors.filter((e) => e.code === 'DUPLICATE_KEY'), ...doc.warnings];
  for (const err of yamlProblems) {
    const message = /call stack/i.test(err.message) ? 'refused: nested too deeply'
      : err.code === 'DUPLICATE_KEY' ? 'duplicate key: each key may appear only once in a mapping'
      : err.code === 'MULTIPLE_DOCS' ? 'holds several YAML documents (---); use one'
      : `YAML ${err.name === 'YAMLWarning' ? 'problem' : 'syntax error'}: ${err.message.split('\n')[0]}`;
    report(message, lineCounter.linePos(err.pos[0]));
  }
  if (yamlProblems.length > 0) return source;
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    report('is empty: expected a YAML mapping (see examples/minimal.yaml)');
    return source;
  }
  try {
    source.value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (/alias/i.test(message) && /exhaustion|excessive/i.test(message)) {
      report(`refused: its aliases expand beyond ${MAX_ALIAS_COUNT} nodes (an "alias bomb"); use fewer aliases`);
    } else if (e instanceof RangeError) {
      report(`refused: nested too deeply`);
    } else {
      report(`cannot be read as YAML (${message.split('\n')[0]})`);
    }
    return source;
  }
  if (depthExceeds(source.value, MAX_DEPTH)) {
    source.value = undefined;
    report(`refused: nested deeper than ${MAX_DEPTH} levels`);
  }
  return source;
}

function depthExceeds(value: unknown, limit: number): boolean {
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 0 }];
  let visited = 0;
  const seen = new Set<unknown>();
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (d > limit) return true;
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    if (++visited > 1_000_000) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push({ v: child, d: d + 1 });
  }
  return false;
}

function resolveNode(doc: Document, node: Walkable): Walkable {
  let current = node;
  for (let hops = 0; current && isAlias(current) && hops < 100; hops++) current = current.resolve(doc) as Walkable;
  return current;
}

function scalarKey(key: unknown): unknown {
  return isScalar(key) ? key.value : key;
}

/** The node at `path` (the key node of the last segment when `wantKey`), or the deepest ancestor found. */
function find(doc: Document, path: Path, wantKey: boolean): YamlNode | undefined {
  let node = resolveNode(doc, doc.contents as Walkable);
  let last: YamlNode | undefined = node ?? undefined;
  for (let i = 0; i < path.length && node; i++) {
    const segment = path[i]!;
    const isLast = i === path.length - 1;
    let next: Walkable;
    let keyNode: YamlNode | undefined;
    if (isMap(node)) {
      const pair = findPair(doc, node, String(segment), 0);
      if (pair) { next = pair.value as Walkable; keyNode = isScalar(pair.key) ? pair.key : undefined; }
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment] as Walkable;
    }
    if (isLast && wantKey && keyNode) return keyNode;
    if (next === undefined || next === null) return keyNode ?? last;
    node = resolveNode(doc, next);
    if (node) last = node;
  }
  return last;
}

function findPair(doc: Document, map: YamlNode, key: string, depth: number): { key: unknown; value: unknown } | undefined {
  if (!isMap(map) || depth > 10) return undefined;
  for (const pair of map.items) {
    if (isPair(pair) && String(scalarKey(pair.key)) === key && typeof scalarKey(pair.key) !== 'symbol') return pair;
  }
  // `<<: *defaults` merge keys, later maps first as yaml resolves them.
  for (const pair of map.items) {
    const k = scalarKey(pair.key);
    if (typeof k === 'symbol' || k === '<<') {
      const sources = resolveNode(doc, pair.value as Walkable);
      const list = sources && isSeq(sources) ? sources.items.map((s) => resolveNode(doc, s as Walkable)) : [sources];
      for (const s of list) {
        const found = s ? findPair(doc, s, key, depth + 1) : undefined;
        if (found) return found;
      }
    }
  }
  return undefined;
}
