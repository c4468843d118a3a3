/**
 * The cross-store comparison of a link (config `links:`), pure: the keys of the PostgreSQL rows
 * against the keys the other store holds (a Chroma metadata field, the `{key}` of a Redis key),
 * orphans counted on either side with a few examples. The readers (live.ts, point.ts) feed it;
 * the health probe and `verify --point` report it.
 *
 * Memory: one Set of the other side's keys (strings) per link while the rows stream past it;
 * about 100 bytes a key, so tens of millions of keys are the practical bound.
 */
import type { LinkDeclaration } from '../config/types.js';

/** Examples kept of each kind of orphan. */
export const MAX_EXAMPLES = 5;

export interface Orphans { count: number; examples: string[] }

/** Which store a link's other side is. */
export type OtherStore = LinkDeclaration['side']['store'];

/**
 * `all`: every key of both sides compared; `sample`: a bounded sample of each side looked up on
 * the other (the live check on large stores); `exact`: every key of a recovery point's backups.
 */
export type CompareMode = 'all' | 'sample' | 'exact';

export interface LinkReport {
  link: string;
  /** `jarvis-db.yaml:42 links[0]`. */
  source: string;
  other: OtherStore;
  mode: CompareMode;
  /** Rows read (all of them, or the sample). */
  rows: number;
  /** Records or keys of the other side read. */
  records: number;
  /** Rows expected on the other side whose record or key is not there (side `postgres`). */
  missing: Orphans;
  /** Records or keys of the other side whose row is gone (side `chroma` / `redis`). */
  orphans: Orphans;
  /** What was compared, for people: "all 260 rows and 260 records". */
  note: string;
}

/** A link that could not be compared: what stopped it (an unknown table, a service down). */
export interface LinkFailure {
  link: string;
  source: string;
  other: OtherStore;
  /** One line, starting with the link's file:line when the config is at fault. */
  problem: string;
  /**
   * `broken`: the link names something that does not exist (a config error); `failed`: a service
   * or backup could not be read; `skipped`: the backup cannot be compared without a restore.
   */
  kind: 'broken' | 'failed' | 'skipped';
}

export type LinkOutcome = LinkReport | LinkFailure;

export function isFailure(o: LinkOutcome): o is LinkFailure {
  return 'problem' in o;
}

/** `jarvis-db.yaml:42 links[0]` (without a line when the config had none). */
export function sourceOf(link: Pick<LinkDeclaration, 'source'>): string {
  const s = link.source;
  return `${s.file}${s.line !== undefined ? `:${s.line}` : ''} ${s.path}`;
}

class Tally {
  count = 0;
  readonly examples: string[] = [];
  add(example: string): void {
    this.count++;
    if (this.examples.length < MAX_EXAMPLES) this.examples.push(example);
  }
  get value(): Orphans {
    return { count: this.count, examples: [...this.examples] };
  }
}

/**
 * Every key of the other side first (`sideKey`), then every row streamed past them (`row`):
 * a row takes its key out of the set; the keys left at `finish` have no row.
 */
export class KeyMatcher {
  private readonly side = new Set<string>();
  private readonly missing = new Tally();
  private readonly unkeyed = new Tally();
  private records = 0;
  private rows = 0;
  private expected = 0;

  /** A record or key of the other side, by the row key it names. */
  sideKey(key: string): void {
    this.records++;
    this.side.add(key);
  }

  /** A record of the other side that names no row (no such metadata field): an orphan as it is. */
  sideWithoutKey(example: string): void {
    this.records++;
    this.unkeyed.add(example);
  }

  /** A row; `expected` is false when its `until` is past (its record may be gone, and that is fine). */
  row(key: string, expected: boolean): void {
    this.rows++;
    if (expected) this.expected++;
    if (!this.side.delete(key) && expected) this.missing.add(key);
  }

  finish(): { rows: number; expected: number; records: number; missing: Orphans; orphans: Orphans } {
    const orphans = new Tally();
    for (const e of this.unkeyed.examples) orphans.add(e);
    orphans.count = this.unkeyed.count;
    for (const key of this.side) orphans.add(key);
    return { rows: this.rows, expected: this.expected, records: this.records, missing: this.missing.value, orphans: orphans.value };
  }
}

/**
 * A sample looked up on the other side: `looked` keys of one side, `found` those of them
 * present on the other. Returns the orphans among the sample (keys of `looked` not found,
 * minus those not expected there).
 */
export function sampleOrphans(looked: readonly { key: string; expected: boolean }[], found: ReadonlySet<string>): Orphans {
  const t = new Tally();
  for (const { key, expected } of looked) if (expected && !found.has(key)) t.add(key);
  return t.value;
}

// ------------------------------------------------------------------ keys as the other side writes them

/** The literal text around `{key}` of a Redis pattern (the config checked it holds `{key}` once, no glob). */
export function patternParts(pattern: string): { prefix: string; suffix: string } {
  const at = pattern.indexOf('{key}');
  return { prefix: pattern.slice(0, at), suffix: pattern.slice(at + '{key}'.length) };
}

/** The row key in a Redis key of the pattern, or null when the key is not of it. */
export function keyOfRedisKey(name: string, parts: { prefix: string; suffix: string }): string | null {
  if (name.length < parts.prefix.length + parts.suffix.length) return null;
  if (!name.startsWith(parts.prefix) || !name.endsWith(parts.suffix)) return null;
  return name.slice(parts.prefix.length, name.length - parts.suffix.length);
}

/** The SCAN MATCH glob of a pattern: its literal parts around `*` (the config forbids glob characters in them). */
export function scanGlob(parts: { prefix: string; suffix: string }): string {
  return `${parts.prefix}*${parts.suffix}`;
}

/**
 * A Chroma metadata value as the row key it names: an int as its digits, a string as it is
 * (PostgreSQL's `key::text` is the other half). Floats, booleans and objects name no row.
 */
export function keyOfMetadataValue(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return String(value);
  if (typeof value === 'object' && value !== null && 'text' in value && typeof (value as { text: unknown }).text === 'string') {
    const text = (value as { text: string }).text;
    return /^-?\d+$/.test(text) ? text : null;
  }
  return null;
}

/** The report's one line for people: what was compared and what was found. */
export function describeCompared(mode: CompareMode, rows: number, records: number, other: OtherStore, total?: { rows: number; records: number }, expected?: number): string {
  const what = other === 'chroma' ? 'record' : 'key';
  const n = (x: number, word: string) => `${x.toLocaleString('en-US')} ${word}${x === 1 ? '' : 's'}`;
  if (mode === 'sample') {
    return `a sample of ${n(rows, 'row')}${total ? ` (of ${total.rows.toLocaleString('en-US')})` : ''} and ${n(records, what)}${total ? ` (of ${total.records.toLocaleString('en-US')})` : ''}`;
  }
  const live = expected !== undefined && expected !== rows ? ` (${expected.toLocaleString('en-US')} not past their until)` : '';
  return `${mode === 'exact' ? 'exactly: ' : 'all '}${n(rows, 'row')}${live} and ${n(records, what)}`;
}

// ------------------------------------------------------------------ PostgreSQL COPY text (pg_restore -a -f -)

/** `COPY public.memory (id, user_id, content) FROM stdin;` → its table and columns, or null. */
export function parseCopyHeader(line: string): { table: string; columns: string[] } | null {
  const m = /^COPY (\S+) \((.*)\) FROM stdin;$/.exec(line);
  if (!m) return null;
  const columns = m[2]!.split(', ').map((c) => (c.startsWith('"') && c.endsWith('"') ? c.slice(1, -1).replace(/""/g, '"') : c));
  return { table: m[1]!, columns };
}

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

/** One field of COPY's text format: `\N` is null, backslash escapes decoded. */
export function copyField(raw: string): string | null {
  if (raw === '\\N') return null;
  if (!raw.includes('\\')) return raw;
  return raw.replace(/\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))/g, (_, oct: string | undefined, hex: string | undefined, c: string | undefined) => {
    if (oct) return String.fromCharCode(parseInt(oct, 8));
    if (hex) return String.fromCharCode(parseInt(hex, 16));
    return ESCAPES[c!] ?? c!;
  });
}

/** The fields at `indexes` of one data line (tab-separated), decoded. */
export function copyFields(line: string, indexes: readonly number[]): (string | null)[] {
  const fields = line.split('\t');
  return indexes.map((i) => copyField(fields[i] ?? '\\N'));
}

/**
 * A PostgreSQL timestamp as COPY writes it (`2026-12-07 14:23:24.123+00`, DateStyle ISO) in
 * milliseconds, or NaN. `infinity` and `-infinity` are the infinities.
 */
export function copyTimestampMs(text: string): number {
  if (text === 'infinity') return Infinity;
  if (text === '-infinity') return -Infinity;
  const m = /^(\d{4,})-(\d\d)-(\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d(?::?\d\d(?::?\d\d)?)?)?( BC)?$/.exec(text);
  if (!m || m[6]) return NaN;
  let zone = m[5] ?? '+00';
  if (/^[+-]\d\d$/.test(zone)) zone += ':00';
  else zone = zone.replace(/^([+-]\d\d):?(\d\d).*$/, '$1:$2');
  return Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}${zone}`);
}
