/**
 * The daemon's status page (`/`): plain data sections, each provided by its module (health,
 * backups, retention, the daemon's runs), rendered here to HTML with inline CSS and SVG charts
 * (nothing fetched from outside). The page asks `/status.json` again every few seconds and
 * replaces each section, so it follows the daemon without a reload; it only reads. Every text
 * goes through `redact` and HTML escaping: no secret reaches the page. Pure.
 */
import type { Status } from '../engine/types.js';
import { redact } from '../services/redact.js';

export interface StatusTable {
  columns: string[];
  rows: { cells: string[]; status?: Status }[];
  /** Shown when there are no rows. */
  empty?: string;
}

export interface StatusChart {
  title: string;
  /** [unix ms, value] in time order. */
  points: [number, number][];
  /** Lines across the chart (warning, critical). */
  levels?: { value: number; status: Status }[];
}

export interface StatusSection {
  id: string;
  title: string;
  status?: Status;
  note?: string;
  tables?: StatusTable[];
  charts?: StatusChart[];
}

const escape = (text: string) => redact(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const statusClass = (s?: Status) => (s ? ` class="s-${s.toLowerCase()}"` : '');

function table(t: StatusTable): string {
  if (!t.rows.length) return `<p class="empty">${escape(t.empty ?? 'nothing yet')}</p>`;
  const head = `<tr>${t.columns.map((c) => `<th>${escape(c)}</th>`).join('')}</tr>`;
  const rows = t.rows.map((r) => `<tr${statusClass(r.status)}>${r.cells.map((c) => `<td>${escape(c)}</td>`).join('')}</tr>`).join('');
  return `<table><thead>${head}</thead><tbody>${rows}</tbody></table>`;
}

const LEVEL_COLOR: Partial<Record<Status, string>> = { WARNING: '#d97706', CRITICAL: '#dc2626' };

/** A line chart as inline SVG: the series scaled into the box, its level lines dashed. */
export function chartSvg(c: StatusChart, width = 320, height = 80): string {
  const values = [...c.points.map((p) => p[1]), ...(c.levels ?? []).map((l) => l.value)];
  if (!c.points.length) return `<figure><figcaption>${escape(c.title)}</figcaption><p class="empty">no history yet</p></figure>`;
  const [t0, t1] = [c.points[0]![0], c.points.at(-1)![0]];
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  const x = (t: number) => (t1 === t0 ? width / 2 : ((t - t0) / (t1 - t0)) * (width - 2) + 1);
  const y = (v: number) => (hi === lo ? height / 2 : height - 1 - ((v - lo) / (hi - lo)) * (height - 2));
  const path = c.points.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const levels = (c.levels ?? []).map((l) => `<line x1="0" x2="${width}" y1="${y(l.value).toFixed(1)}" y2="${y(l.value).toFixed(1)}" stroke="${LEVEL_COLOR[l.status] ?? '#888'}" stroke-dasharray="4 3"/>`).join('');
  const last = c.points.at(-1)![1];
  return `<figure><figcaption>${escape(c.title)} <b>${escape(String(Number(last.toPrecision(4))))}</b></figcaption>`
    + `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escape(c.title)}">${levels}<path d="${path}" fill="none" stroke="#2563eb" stroke-width="1.5"/></svg></figure>`;
}

/** One section's inner HTML (what /status.json carries for it). */
export function sectionHtml(s: StatusSection): string {
  return [
    `<h2>${escape(s.title)}${s.status ? ` <span class="badge s-${s.status.toLowerCase()}">${s.status}</span>` : ''}</h2>`,
    s.note ? `<p class="note">${escape(s.note)}</p>` : '',
    ...(s.tables ?? []).map(table),
    s.charts?.length ? `<div class="charts">${s.charts.map((c) => chartSvg(c)).join('')}</div>` : '',
  ].join('');
}

/** What /status.json returns: each section's HTML by id, and when it was made. */
export function statusJson(sections: StatusSection[], at: Date): { at: string; sections: { id: string; html: string }[] } {
  return { at: at.toISOString(), sections: sections.map((s) => ({ id: s.id, html: sectionHtml(s) })) };
}

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#111}h1{font-size:1.3rem}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;margin:.3rem 0}th,td{padding:.2rem .6rem;border-bottom:1px solid #e5e7eb;text-align:left}th{background:#f3f4f6}
.s-critical td,.badge.s-critical{background:#fee2e2}.s-warning td,.badge.s-warning{background:#fef3c7}.s-unknown td,.badge.s-unknown{background:#ede9fe}
.badge{padding:0 .4rem;border-radius:.3rem;font-size:.8rem}.empty,.note,#updated{color:#6b7280}.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}figcaption{font-size:.85rem}`;

/** The whole page: the sections as they are now, and the script that refreshes them every `refreshSeconds`. */
export function renderStatusPage(project: string, sections: StatusSection[], at: Date, refreshSeconds: number): string {
  const body = sections.map((s) => `<section id="${escape(s.id)}">${sectionHtml(s)}</section>`).join('\n');
  const script = `const every=${Math.max(1, Math.round(refreshSeconds)) * 1000};
async function refresh(){try{const r=await fetch('status.json',{credentials:'same-origin',cache:'no-store'});if(!r.ok)throw new Error(r.status);const d=await r.json();
for(const s of d.sections){const el=document.getElementById(s.id);if(el&&el.innerHTML!==s.html)el.innerHTML=s.html;}document.getElementById('updated').textContent='updated '+new Date(d.at).toLocaleTimeString();}
catch(e){document.getElementById('updated').textContent='cannot reach the daemon ('+e.message+')';}}setInterval(refresh,every);`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>jarvis-db: ${escape(project)}</title><meta name="viewport" content="width=device-width,initial-scale=1"><style>${CSS}</style></head>`
    + `<body><h1>jarvis-db: ${escape(project)}</h1><p id="updated">updated ${escape(at.toISOString())}</p>\n${body}\n<script>${script}</script></body></html>\n`;
}
