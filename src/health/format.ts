/**
 * Values for people: ratios as percentages, bytes in MB/GB, seconds as durations. Pure.
 */
import type { CheckSpec } from './checks.js';

const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

export function formatBytes(bytes: number): string {
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < BYTE_UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${BYTE_UNITS[i]}`;
}

export function formatSeconds(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${Number(seconds.toFixed(1))} s`;
  const s = Math.round(seconds);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = d ? [`${d}d`, `${h}h`] : h ? [`${h}h`, `${m}m`] : [`${m}m`, `${s % 60}s`];
  return parts.join(' ');
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
    case 'count': return Math.round(value).toLocaleString('en-US');
    case 'bool': return value >= 1 ? 'yes' : 'no';
    case 'number': return String(Number(value.toFixed(3)));
  }
}
