/** `jarvis-db schedule` as a table: each backup schedule, its last backup, whether it is due, its next runs. */
import { formatFireTime, type ScheduleStatus } from '../schedule/due.js';
import type { RepositoryWindows } from '../wal/status.js';
import { palette, type Palette } from './color.js';
import { walStreamLines } from './pitr.js';
import { formatAge, renderTable } from './format.js';

function statusText(s: ScheduleStatus, now: Date): string {
  if (s.clockBehind) return 'ok (newest backup is later than the clock)';
  if (!s.due) return 'ok';
  if (s.neverRan) return 'due: never backed up';
  const missed = s.missedRuns > 1 ? `, ${s.missedRuns} runs missed` : '';
  return `due since ${formatFireTime(new Date(s.dueSince!), s.timezone, now)}${missed}`;
}

/** `wal`: with pitr enabled, the WAL stream's slot and each repository's window, after the table. */
export function renderScheduleText(statuses: ScheduleStatus[], now: Date, c: Palette = palette(false), wal: { slot: string; repositories: RepositoryWindows[] } | null = null): string {
  const walText = wal ? `\n${walStreamLines(wal.slot, wal.repositories, now).join('\n')}\n` : '';
  if (statuses.length === 0) return `No backup schedules in the config.\n${walText}`;
  const rows = [['SCHEDULE', 'SERVICE', 'CRON', 'TIMEZONE', 'LAST BACKUP', 'STATUS', 'NEXT RUN']];
  for (const s of statuses) {
    rows.push([
      s.name, s.service, s.cron, s.timezone,
      s.lastBackupAt ? `${formatFireTime(new Date(s.lastBackupAt), s.timezone, now)} (${formatAge(Math.abs(now.getTime() - Date.parse(s.lastBackupAt)))}${Date.parse(s.lastBackupAt) > now.getTime() ? ' ahead' : ' ago'})` : 'never',
      statusText(s, now),
      s.nextRuns[0] ? formatFireTime(new Date(s.nextRuns[0]), s.timezone, now) : 'none',
    ]);
  }
  // Colour after measuring widths: escape codes have no width on screen.
  const lines = renderTable(rows).split('\n').map((line, i) => (i === 0 ? c.bold(line) : statuses[i - 1]!.due ? c.yellow(line) : line));
  const out = [lines.join('\n')];
  const more = statuses.filter((s) => s.nextRuns.length > 1);
  for (const s of more) {
    out.push('', `Next runs of ${s.name}:`);
    for (const r of s.nextRuns) out.push(`  ${formatFireTime(new Date(r), s.timezone, new Date(0))}`);
  }
  return out.join('\n') + '\n' + walText;
}
