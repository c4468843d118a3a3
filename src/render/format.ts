/**
 * Numbers, sizes, durations, times and tables as people read them: the one formatter of each that
 * every text output uses (JSON keeps the raw numbers). Pure.
 */

/** Decimal units (kB = 1000 B), the ones `du --si`, PostgreSQL's pg_size_pretty and S3 consoles print. */
const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** `512 B`, `8.2 kB`, `46 kB`, `1.2 GB`: two significant figures below 10, none after the point above. */
export function formatBytes(n: number): string {
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1000 && i < BYTE_UNITS.length - 1) { v /= 1000; i++; }
  // 999.7 kB rounds to "1000 kB": say 1.0 MB instead.
  if (i > 0 && i < BYTE_UNITS.length - 1 && Math.round(v) >= 1000) { v /= 1000; i++; }
  const text = i === 0 ? String(Math.round(v)) : v < 9.95 ? v.toFixed(1) : String(Math.round(v));
  return `${n < 0 ? '-' : ''}${text} ${BYTE_UNITS[i]}`;
}

/** `42s`, `12m`, `5h`, `3d`: how old something is, roughly. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s`;
  if (s < 90 * 60) return `${Math.round(s / 60)}m`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** `2024-06-01 03:00Z (3h ago)`: a moment for people, absolute and relative to `now`. */
export function formatWhen(at: Date | string | number, now: Date | number): string {
  const t = new Date(at).getTime();
  const n = new Date(now).getTime();
  if (!Number.isFinite(t)) return String(at);
  const diff = n - t;
  return `${formatTimestamp(t)} (${diff >= 0 ? `${formatAge(diff)} ago` : `in ${formatAge(-diff)}`})`;
}

/** `2024-06-01 03:00:12Z`: a moment in UTC, to the second. */
export function formatTimestamp(at: Date | string | number): string {
  const d = new Date(at);
  return Number.isFinite(d.getTime()) ? d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : String(at);
}

/** `1,240,112` */
export function formatCount(n: number): string {
  const r = Math.round(n);
  return `${r < 0 ? '-' : ''}${Math.abs(r).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',')}`;
}

/** `850ms`, `12.4s`, `3m 05s`, `2h 05m`, `3d 4h` */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  const m = Math.round(s / 60);
  if (m < 24 * 60) return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
  const h = Math.round(m / 60);
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** `1 backup`, `3 backups`, `1,200 rows`, `2 batches` (give `many` when adding an s is wrong). */
export function plural(n: number, one: string, many = /(s|x|z|ch|sh)$/.test(one) ? `${one}es` : `${one}s`): string {
  return `${formatCount(n)} ${Math.abs(n) === 1 ? one : many}`;
}

export type Align = 'left' | 'right';

/** Characters as a terminal shows them (code points, not UTF-16 units). */
function width(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * Rows of cells as columns as wide as their widest cell (the first row is the header); `align`
 * right-aligns the columns that hold numbers. Rows may be shorter than the header.
 */
export function renderTable(rows: string[][], options: { align?: (Align | undefined)[]; indent?: string } = {}): string {
  const columns = Math.max(0, ...rows.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, i) => Math.max(0, ...rows.map((r) => width(r[i] ?? ''))));
  const indent = options.indent ?? '';
  return rows.map((r) => indent + r.map((cell, i) => {
    const gap = ' '.repeat(widths[i]! - width(cell));
    return options.align?.[i] === 'right' ? gap + cell : cell + gap;
  }).join('  ').trimEnd()).join('\n');
}
