/**
 * The PostgreSQL recoverable window as `backup list` and `schedule` print it, one line per
 * repository and timeline (`wal status` has the detail: segments, gaps, the slot). Pure.
 */
import type { RepositoryWindows } from '../wal/status.js';
import { formatAge, formatTimestamp } from './format.js';

/** `postgres PITR window (local): 2026-11-25 03:00:04Z → 2026-12-02 14:05:12Z, timeline 1`, or why there is none. */
export function pitrWindowLines(repositories: readonly RepositoryWindows[]): string[] {
  return repositories.flatMap((r) => {
    const head = `postgres PITR window (${r.repository})`;
    if (r.error) return [`${head}: unknown, its WAL cannot be listed (${r.error})`];
    if (r.windows.length === 0) return [`${head}: none (no physical base backup with a complete WAL chain archived after it)`];
    return r.windows.map((w) => `${head}: ${formatTimestamp(w.from)} → ${formatTimestamp(w.to)}, timeline ${w.timeline}`);
  });
}

/** `wal stream (slot jarvis_db): last archived 4s ago`, then the window lines, indented. */
export function walStreamLines(slot: string, repositories: readonly RepositoryWindows[], now: Date): string[] {
  const last = repositories.map((r) => r.lastArchivedAt).filter((at): at is string => at !== null).sort().at(-1);
  const archived = last ? `last archived ${formatAge(Math.max(now.getTime() - Date.parse(last), 0))} ago` : 'nothing archived yet';
  return [`wal stream (postgres, slot ${slot}, continuous): ${archived}`, ...pitrWindowLines(repositories).map((l) => `  ${l}`)];
}
