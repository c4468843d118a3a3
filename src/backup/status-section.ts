/**
 * The backups part of the daemon's status page: each schedule with its newest valid backup per
 * repository and its age against the schedule, from the health check's samples (no listing of
 * its own). Data only.
 */
import type { Desired } from '../config/types.js';
import type { Status } from '../engine/types.js';
import type { HealthReport } from '../health/check.js';
import type { StatusSection } from '../render/status-page.js';
import { formatAge } from '../render/format.js';

export function schedulesSection(desired: Desired, report: HealthReport | undefined): StatusSection {
  const samples = report?.observation.samples ?? [];
  const value = (check: string, labels: Record<string, string>) => samples.find((s) => s.check === check && Object.entries(labels).every(([k, v]) => s.labels?.[k] === v))?.value ?? null;
  const statusOf = (key: string): Status => report?.findings.find((f) => f.check === key)?.status ?? (report ? 'HEALTHY' : 'UNKNOWN');
  const repositories = desired.repositories?.map((r) => r.name) ?? [];
  const rows = desired.backups.flatMap((b) => {
    const where = repositories.length > 1 ? repositories : [repositories[0] ?? 'storage'];
    return where.map((repository) => {
      const newest = value('backups.newest_timestamp_seconds', { schedule: b.name });
      const age = repositories.length > 1 ? value('repository.backup_age_seconds', { repository, schedule: b.name }) : value('backups.age_seconds', { schedule: b.name });
      const status = statusOf(repositories.length > 1 ? `repository.backup_age_interval_ratio.${repository}.${b.name}` : `backups.age_interval_ratio.${b.name}`);
      const shown = age === null ? 'no valid backup' : `${formatAge(age * 1000)} old${newest !== null && repositories.length <= 1 ? ` (${new Date(newest * 1000).toISOString()})` : ''}`;
      return { cells: [b.name, b.service, `${b.cron} ${b.timezone}`, repository, shown, status], status };
    });
  });
  return { id: 'schedules', title: 'Backups', tables: [{ columns: ['schedule', 'service', 'cron', 'repository', 'newest valid backup', 'status'], rows, empty: 'no backup schedules in the config' }] };
}
