/**
 * Values of checks for people: ratios as percentages, bytes in kB/MB/GB, seconds as durations,
 * Unix times as UTC timestamps. Pure.
 */
import { formatBytes, formatCount, formatDuration, formatTimestamp } from '../render/format.js';
import type { CheckSpec } from './checks.js';

/** Seconds as a duration, with the one duration formatter of every output. */
export function formatSeconds(seconds: number): string {
  return formatDuration(seconds * 1000);
}

export function formatValue(value: number, display: CheckSpec['display']): string {
  switch (display) {
    case 'ratio': {
      const pct = value * 100;
      // One decimal, but enough digits to tell a small share from none (0.004%) and 99.99% from 100%.
      const text = pct === 0 || (pct >= 1 && pct <= 99) || pct >= 100 ? pct.toFixed(1) : pct < 1 ? pct.toPrecision(2) : pct.toFixed(3);
      return `${Number(text)}%`;
    }
    case 'bytes': return formatBytes(value);
    case 'seconds': return formatSeconds(value);
    case 'count': return formatCount(value);
    case 'timestamp': return formatTimestamp(value * 1000);
    case 'bool': return value >= 1 ? 'yes' : 'no';
    case 'number': return String(Number(value.toFixed(3)));
  }
}
