/**
 * PostgreSQL's WAL file names and positions (docs/architecture.md §6, "WAL in a repository"),
 * pure: which files an archive holds, where each goes, which segment holds an LSN, and the gaps
 * in a timeline's chain.
 *
 * Names: a segment is 24 hex digits (timeline, log, segment: 8 each); a timeline history file
 * `TTTTTTTT.history`; a backup label `<segment>.<offset>.backup`; a segment pg_receivewal is
 * still writing ends in `.partial` (never archived).
 */
import { JarvisError } from '../errors.js';

export type WalFileKind = 'segment' | 'history' | 'backup';

export interface WalFileName { name: string; kind: WalFileKind; timeline: number }

const SEGMENT = /^[0-9A-F]{24}$/;
const HISTORY = /^[0-9A-F]{8}\.history$/;
const BACKUP = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;

/** The kind and timeline of a WAL file name, or null when it is not one PostgreSQL archives. */
export function parseWalFileName(name: string): WalFileName | null {
  const kind: WalFileKind | null = SEGMENT.test(name) ? 'segment' : HISTORY.test(name) ? 'history' : BACKUP.test(name) ? 'backup' : null;
  if (!kind) return null;
  return { name, kind, timeline: parseInt(name.slice(0, 8), 16) };
}

/** Like parseWalFileName, or a USAGE error that says what a name looks like. */
export function walFileName(name: string): WalFileName {
  const parsed = parseWalFileName(name);
  if (!parsed) {
    throw new JarvisError('USAGE', `"${name}" is not a WAL file name (24 hex digits, TTTTTTTT.history or <segment>.<offset>.backup)`, {
      hint: name.endsWith('.partial') ? 'a .partial segment is still being written: it is archived once complete' : undefined,
    });
  }
  return parsed;
}

export function timelineDir(timeline: number): string {
  return hex8(timeline);
}

/** The item key of a WAL file in the `wal/` store: `<timeline>/<name>`. */
export function walKey(file: WalFileName): string {
  return `${timelineDir(file.timeline)}/${file.name}`;
}

export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

function hex8(n: number | bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** `16/B374D848` as a number of bytes. */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (!m) throw new JarvisError('USAGE', `"${lsn}" is not an LSN (like 0/16B3748 or 16/B374D848)`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

function segmentsPerLog(segmentBytes: number): bigint {
  return 0x100000000n / BigInt(segmentBytes);
}

/** The segment number (since LSN 0) of a segment name. */
export function segmentNumber(name: string, segmentBytes: number): bigint {
  return BigInt(`0x${name.slice(8, 16)}`) * segmentsPerLog(segmentBytes) + BigInt(`0x${name.slice(16, 24)}`);
}

export function segmentName(timeline: number, segno: bigint, segmentBytes: number): string {
  const per = segmentsPerLog(segmentBytes);
  return `${hex8(timeline)}${hex8(segno / per)}${hex8(segno % per)}`;
}

/** The name of the segment that holds `lsn` on `timeline` (pg_walfile_name). */
export function segmentOfLsn(timeline: number, lsn: bigint, segmentBytes: number): string {
  return segmentName(timeline, lsn / BigInt(segmentBytes), segmentBytes);
}

export interface Gap { from: string; to: string; missing: number }

/** The runs of segments missing between the first and last of `names` (one timeline, any order). */
export function gapsIn(names: readonly string[], segmentBytes: number): Gap[] {
  if (names.length === 0) return [];
  const timeline = parseInt(names[0]!.slice(0, 8), 16);
  const numbers = [...new Set(names.map((n) => segmentNumber(n, segmentBytes)))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const gaps: Gap[] = [];
  for (let i = 1; i < numbers.length; i++) {
    const prev = numbers[i - 1]!;
    const next = numbers[i]!;
    if (next - prev > 1n) {
      gaps.push({ from: segmentName(timeline, prev + 1n, segmentBytes), to: segmentName(timeline, next - 1n, segmentBytes), missing: Number(next - prev - 1n) });
    }
  }
  return gaps;
}

/** Whether every segment from `from` to `last` (names, inclusive) is in `names`. */
export function chainComplete(names: ReadonlySet<string>, from: string, last: string, segmentBytes: number): boolean {
  const timeline = parseInt(from.slice(0, 8), 16);
  const end = segmentNumber(last, segmentBytes);
  for (let n = segmentNumber(from, segmentBytes); n <= end; n++) {
    if (!names.has(segmentName(timeline, n, segmentBytes))) return false;
  }
  return true;
}
