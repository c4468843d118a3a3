/**
 * What the daemon's status page shows (render/status-page.ts), section by section from the
 * modules that own them: services and history (health), schedules (backup), archives (retention),
 * and the daemon's own runs. The sections that read storage (history, archives) are read again
 * after each health check, not at every refresh of the page; a section that cannot be read says
 * so and the others still show.
 */
import type { Desired } from '../config/types.js';
import { messageOf } from '../errors.js';
import type { HealthReport } from '../health/check.js';
import type { StatusSection } from '../render/status-page.js';
import { formatDuration } from '../render/format.js';
import type { ApplySummary } from './daemon.js';

const RUNS_SHOWN = 10;

export class StatusBoard {
  private runs: (ApplySummary & { finishedAt: string })[] = [];
  private slow: StatusSection[] = [];

  recordRun(run: ApplySummary, finishedAt: Date): void {
    this.runs = [{ ...run, finishedAt: finishedAt.toISOString() }, ...this.runs].slice(0, RUNS_SHOWN);
  }

  /** Reads the sections that come from storage (after each health check). */
  async refresh(desired: Desired, now: Date): Promise<void> {
    const read = async (id: string, title: string, make: () => Promise<StatusSection>): Promise<StatusSection> =>
      make().catch((e: unknown) => ({ id, title, status: 'UNKNOWN' as const, note: `cannot be read: ${messageOf(e)}` }));
    const [{ historySection }, { archivesSection }] = await Promise.all([import('../health/status-section.js'), import('../retention/status-section.js')]);
    this.slow = await Promise.all([
      read('archives', 'Retention archives', () => archivesSection(desired)),
      read('history', 'Health, the last 24 hours', () => historySection(desired, now)),
    ]);
  }

  async sections(desired: Desired, report: HealthReport | undefined, state: { applying: boolean; nextApplyAt?: Date }): Promise<StatusSection[]> {
    const [{ servicesSection }, { schedulesSection }] = await Promise.all([import('../health/status-section.js'), import('../backup/status-section.js')]);
    return [servicesSection(desired, report), schedulesSection(desired, report), this.runsSection(state), ...this.slow];
  }

  private runsSection(state: { applying: boolean; nextApplyAt?: Date }): StatusSection {
    const note = `${state.applying ? 'applying now; ' : ''}next apply ${state.nextApplyAt ? `at ${state.nextApplyAt.toISOString()}` : 'not scheduled (no backup schedule)'}`;
    return {
      id: 'runs', title: 'Last runs', note,
      tables: [{
        columns: ['run', 'finished', 'status', 'took', 'actions'],
        rows: this.runs.map((r) => {
          const failed = r.results.filter((x) => x.status === 'failed');
          const what = r.results.length ? r.results.map((x) => `${x.type} ${x.target}: ${x.status}`).join('; ') : 'nothing to do';
          return { cells: [r.runId, r.finishedAt, r.status, formatDuration(r.durationMs), failed[0] ? `${failed[0].target}: ${failed[0].error?.message ?? ''}` : what], ...(r.status === 'failed' ? { status: 'CRITICAL' as const } : {}) };
        }),
        empty: 'no run since the daemon started',
      }],
    };
  }
}
