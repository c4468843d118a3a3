/**
 * Health history: every check appended as one JSON line to
 * `<storage>/health/history/<YYYY-MM-DDTHH>.jsonl` (UTC hour), fsynced so that it survives a
 * crash or a restart. Files whose hour ended before `health.history` are removed on append.
 * Reading streams the files line by line, so memory does not grow with the history's length.
 * The aggregation (min / avg / max per day, sparklines) is pure.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Finding, Status } from '../engine/types.js';
import { fsyncPath } from '../storage/durable.js';
import { writingStorage } from '../storage/failures.js';
import { worstStatus } from './evaluate.js';
import { keyMatches, sampleKey, type Sample } from './samples.js';

export const HISTORY_FORMAT = 1;

export interface HistoryRecord {
  v: typeof HISTORY_FORMAT;
  at: string;
  status: Status;
  /** Every sample by key; null when it could not be measured. */
  values: Record<string, number | null>;
  /** Findings that were not HEALTHY, by key. */
  statuses: Record<string, Status>;
}

export function historyDir(storagePath: string): string {
  return join(storagePath, 'health', 'history');
}

/** `2026-11-24T03` for any instant in that UTC hour. */
export function hourOf(at: Date): string {
  return at.toISOString().slice(0, 13);
}

const HOUR_FILE = /^(\d{4}-\d{2}-\d{2}T\d{2})\.jsonl$/;

export function toRecord(at: Date, samples: Sample[], findings: Finding[]): HistoryRecord {
  const values: Record<string, number | null> = {};
  for (const s of samples) values[sampleKey(s)] = s.value === null ? null : Number(s.value.toPrecision(8));
  const statuses: Record<string, Status> = {};
  for (const f of findings) if (f.status !== 'HEALTHY') statuses[f.check] = f.status;
  return { v: HISTORY_FORMAT, at: at.toISOString(), status: worstStatus(findings.map((f) => f.status)), values, statuses };
}

/** Appends one record durably, then prunes hour files older than `keepSeconds`. */
export async function appendHistory(storagePath: string, record: HistoryRecord, keepSeconds: number): Promise<void> {
  const dir = historyDir(storagePath);
  const at = new Date(record.at);
  const file = join(dir, `${hourOf(at)}.jsonl`);
  await writingStorage(file, async () => {
    await mkdir(dir, { recursive: true });
    const handle = await open(file, 'a+', 0o600);
    try {
      // A crash mid-write leaves a torn last line: start on a fresh line so this record stays readable.
      const { size } = await handle.stat();
      let torn = false;
      if (size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, size - 1);
        torn = last[0] !== 0x0a;
      }
      await handle.write((torn ? '\n' : '') + JSON.stringify(record) + '\n');
      await handle.datasync();
    } finally {
      await handle.close();
    }
  });
  await fsyncPath(dir);
  await pruneHistory(storagePath, new Date(at.getTime() - keepSeconds * 1000));
}

/** Removes the hour files that end at or before `cutoff`. Returns their names. */
export async function pruneHistory(storagePath: string, cutoff: Date): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await historyFiles(storagePath)) {
    const hourEnd = Date.parse(`${HOUR_FILE.exec(name)![1]}:00:00Z`) + 3600_000;
    if (hourEnd <= cutoff.getTime()) {
      await rm(join(historyDir(storagePath), name), { force: true });
      removed.push(name);
    }
  }
  return removed;
}

async function historyFiles(storagePath: string): Promise<string[]> {
  try {
    return (await readdir(historyDir(storagePath))).filter((n) => HOUR_FILE.test(n)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Records at or after `since`, oldest first, streamed. A torn last line (a crash mid-write) is skipped. */
export async function* readHistory(storagePath: string, since: Date): AsyncGenerator<HistoryRecord> {
  const first = hourOf(since);
  for (const name of await historyFiles(storagePath)) {
    if (HOUR_FILE.exec(name)![1]! < first) continue;
    const lines = createInterface({ input: createReadStream(join(historyDir(storagePath), name), 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      let record: HistoryRecord;
      try {
        record = JSON.parse(line) as HistoryRecord;
      } catch {
        continue;
      }
      if (record.v === HISTORY_FORMAT && Date.parse(record.at) >= since.getTime()) yield record;
    }
  }
}

/** Bytes read from the end of an hour file to find its last record (a record is a few kB). */
const TAIL_BYTES = 256 * 1024;

/** The newest record: the last complete line of the newest hour file (only its tail is read). */
export async function lastRecord(storagePath: string): Promise<HistoryRecord | undefined> {
  const files = await historyFiles(storagePath);
  for (const name of files.reverse()) {
    const handle = await open(join(historyDir(storagePath), name), 'r');
    let text: string;
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      text = buffer.toString('utf8');
    } finally {
      await handle.close();
    }
    const lines = text.split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        const r = JSON.parse(lines[i]!) as HistoryRecord;
        if (r.v === HISTORY_FORMAT) return r;
      } catch {
        // a torn line, or the partial first line of the tail
      }
    }
  }
  return undefined;
}

export interface DaySummary {
  day: string;
  min: number;
  avg: number;
  max: number;
  samples: number;
  /** Average of each UTC hour, null for hours without a sample. */
  hourly: (number | null)[];
  worst: Status;
  /** The status of the day's last check. */
  last: Status;
}

export interface CheckTrend { check: string; days: DaySummary[] }

interface Accumulator { min: number; max: number; sum: number; n: number; hourSum: number[]; hourN: number[]; worst: Status; last: Status; lastAt: string }

/** Folds records one by one into per-check, per-day statistics (memory: checks × days). */
export class TrendBuilder {
  private readonly byCheck = new Map<string, Map<string, Accumulator>>();
  constructor(private readonly check?: string) {}

  add(record: HistoryRecord): void {
    const day = record.at.slice(0, 10);
    const hour = Number(record.at.slice(11, 13));
    for (const [key, value] of Object.entries(record.values)) {
      if (this.check && !keyMatches(key, this.check)) continue;
      let days = this.byCheck.get(key);
      if (!days) this.byCheck.set(key, (days = new Map()));
      let acc = days.get(day);
      if (!acc) days.set(day, (acc = { min: Infinity, max: -Infinity, sum: 0, n: 0, hourSum: Array(24).fill(0), hourN: Array(24).fill(0), worst: 'HEALTHY', last: 'HEALTHY', lastAt: '' }));
      acc.worst = worstStatus([acc.worst, record.statuses[key] ?? 'HEALTHY']);
      if (record.at >= acc.lastAt) { acc.last = record.statuses[key] ?? 'HEALTHY'; acc.lastAt = record.at; }
      if (value === null) continue;
      acc.min = Math.min(acc.min, value);
      acc.max = Math.max(acc.max, value);
      acc.sum += value;
      acc.n++;
      acc.hourSum[hour]! += value;
      acc.hourN[hour]!++;
    }
  }

  trends(): CheckTrend[] {
    return [...this.byCheck.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([check, days]) => ({
      check,
      days: [...days.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([day, a]) => ({
        day,
        min: a.n ? a.min : NaN,
        avg: a.n ? a.sum / a.n : NaN,
        max: a.n ? a.max : NaN,
        samples: a.n,
        hourly: a.hourSum.map((s, h) => (a.hourN[h] ? s / a.hourN[h]! : null)),
        worst: a.worst,
        last: a.last,
      })),
    }));
  }
}

export async function historyTrends(storagePath: string, since: Date, check?: string): Promise<CheckTrend[]> {
  const builder = new TrendBuilder(check);
  for await (const record of readHistory(storagePath, since)) builder.add(record);
  return builder.trends();
}

/** One check over the whole window: the first lines of `health history`. */
export interface TrendSummary {
  check: string;
  /** The status of the newest check in the window. */
  now: Status;
  worst: Status;
  min: number;
  avg: number;
  max: number;
  samples: number;
  /** The daily averages, oldest first (null for a day without a value). */
  daily: (number | null)[];
  /** The newest average against the oldest one, beyond 5% of the range seen. */
  direction: 'rising' | 'falling' | 'steady' | 'unknown';
}

export function summarizeTrend(trend: CheckTrend): TrendSummary {
  const valued = trend.days.filter((d) => d.samples > 0);
  const samples = valued.reduce((n, d) => n + d.samples, 0);
  const min = valued.length ? Math.min(...valued.map((d) => d.min)) : NaN;
  const max = valued.length ? Math.max(...valued.map((d) => d.max)) : NaN;
  const avg = samples ? valued.reduce((s, d) => s + d.avg * d.samples, 0) / samples : NaN;
  // Over several days, the first day's average against the last one's; within one day, by hour.
  const series = (valued.length >= 2 ? valued.map((d) => d.avg) : (valued[0]?.hourly ?? [])).filter((v): v is number => v !== null);
  let direction: TrendSummary['direction'] = 'unknown';
  if (series.length >= 2) {
    const change = series.at(-1)! - series[0]!;
    direction = change === 0 || Math.abs(change) <= 0.05 * (max - min) ? 'steady' : change > 0 ? 'rising' : 'falling';
  }
  return {
    check: trend.check,
    now: trend.days.at(-1)?.last ?? 'UNKNOWN',
    worst: worstStatus(trend.days.map((d) => d.worst)),
    min, avg, max, samples,
    daily: trend.days.map((d) => (d.samples ? d.avg : null)),
    direction,
  };
}

const BARS = '▁▂▃▄▅▆▇█';

/** One character per value, scaled between the smallest and largest; a space for a gap. */
export function sparkline(values: (number | null)[]): string {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (!present.length) return ' '.repeat(values.length);
  const lo = Math.min(...present);
  const hi = Math.max(...present);
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return ' ';
    if (hi === lo) return BARS[0];
    return BARS[Math.min(BARS.length - 1, Math.floor(((v - lo) / (hi - lo)) * BARS.length))];
  }).join('');
}
