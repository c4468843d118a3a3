/** The retention part of the daemon's status page: the archives in the repository, newest first. Data only. */
import type { Desired } from '../config/types.js';
import type { StatusSection } from '../render/status-page.js';
import { formatBytes, formatCount } from '../render/format.js';
import { listArchives } from './archives.js';

const SHOWN = 20;

export async function archivesSection(desired: Desired): Promise<StatusSection> {
  if (!desired.retention.length) return { id: 'archives', title: 'Retention archives', note: 'no retention policies in the config' };
  const { archives, invalid } = await listArchives(desired);
  const newest = [...archives].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, SHOWN);
  return {
    id: 'archives', title: 'Retention archives',
    ...(archives.length > SHOWN ? { note: `the ${SHOWN} newest of ${formatCount(archives.length)}` } : {}),
    tables: [{
      columns: ['archive', 'policy', 'table', 'rows', 'size', 'rows older than', 'made'],
      rows: [
        ...newest.map((a) => ({ cells: [a.id, a.policy, a.table, formatCount(a.rows), formatBytes(a.bytes), a.cutoff, a.createdAt], ...(a.damaged || a.pending ? { status: 'WARNING' as const } : {}) })),
        ...invalid.map((i) => ({ cells: [i.dir, '', '', '', '', '', i.problem], status: 'CRITICAL' as const })),
      ],
      empty: 'no archive yet',
    }],
  };
}
