/**
 * `jarvis-db archive list` as a table (plans and runs use the engine's renderers).
 */
import { formatBytes, formatCount, formatTimestamp, renderTable } from '../render/format.js';
import type { ArchiveSummary } from './store.js';

export function renderArchiveList(archives: ArchiveSummary[]): string {
  const rows = [['ID', 'POLICY', 'TABLE', 'CREATED', 'CUT-OFF', 'CHUNKS', 'ROWS', 'SIZE', 'STATE']];
  for (const a of archives) {
    const state = a.writerAlive ? 'being written' : a.damaged ? `${a.damaged} damaged` : a.pending ? `${a.pending} pending` : 'ok';
    rows.push([a.id, a.policy, a.table, formatTimestamp(a.createdAt), formatTimestamp(a.cutoff), formatCount(a.chunks), formatCount(a.rows), formatBytes(a.bytes), state]);
  }
  return renderTable(rows, { align: [, , , , , 'right', 'right', 'right'] });
}
