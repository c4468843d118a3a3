/**
 * What the daemon's status page shows (render/status-page.ts), section by section from the
 * modules that own them: services and history (health), schedules (backup), archives (retention),
 * the pending plan (engine) and the last runs from the journal. The sections that read storage
 * (journal, history, archives) are read again after each health check, not at every refresh of
 * the page; a section that cannot be read says so and the others still show.
 */
import type { Desired } from '../config/types.js';
import type { Plan } from '../engine/types.js';
import { messageOf } from '../errors.js';
import type { HealthReport } from '../health/check.js';
import type { HistoryCharts } from '../health/status-section.js';
import type { StatusSection } from '../render/status-page.js';
import { formatDuration } from '../render/format.js';

const RUNS_SHOWN = 10;

/** A plan observes every service: at most this often for the page, whatever the health interval. */
const PLAN_EVERY_MS = 60_000;

/** One run as the journal recorded it (any apply: the daemon's, the CLI's, a command's). */
interface JournalRun { runId: string; finishedAt: string | null; status: string; durationMs: number | null; actions: string; failed?: string }

export class StatusBoard {
  private runs: JournalRun[] = [];
  private slow: StatusSection[] = [];
  private plan: StatusSection | null = null;
  private plannedAt = 0;

  constructor(private readonly runPlan?: (desired: Desired) => Promise<Plan>) {}

  /** The newest runs from the journal: a run still going (or killed) shows without its end. */
  private async readRuns(desired: Desired): Promise<void> {
    const { listJournals, readJournal } = await import('../engine/journal.js');
    const files = (await listJournals(desired.storage.path)).slice(-RUNS_SHOWN).reverse();
    this.runs = await Promise.all(files.map(async (file): Promise<JournalRun> => {
      const events = await readJournal(file).catch(() => []);
      const started = events.find((e) => e.event === 'run_started');
      const finished = events.find((e) => e.event === 'run_finished');
      const done = events.filter((e) => e.event === 'action_done').map((e) => String(e.action));
      const failed = events.find((e) => e.event === 'action_failed');
      const refused = events.find((e) => e.event === 'run_refused');
      return {
        runId: started?.runId ?? file.slice(file.lastIndexOf('/') + 1, -'.jsonl'.length),
        finishedAt: finished?.at ?? null,
        status: finished ? String(finished.status) : refused ? 'refused' : 'running or killed',
        durationMs: typeof finished?.durationMs === 'number' ? finished.durationMs : null,
        actions: done.length ? done.join(', ') : 'nothing done',
        ...(failed ? { failed: `${String(failed.action)}: ${String((failed.error as { message?: string } | undefined)?.message ?? '')}` } : refused ? { failed: String((refused.error as { message?: string } | undefined)?.message ?? '') } : {}),
      };
    }));
  }

  private refreshing: Promise<void> | null = null;
  private history: HistoryCharts | undefined;

  /** Reads the sections that come from storage (after each health check); one refresh at a time, a request during one is dropped. */
  refresh(desired: Desired, now: Date): void {
    if (this.refreshing) return;
    this.refreshing = this.read(desired, now).catch(() => undefined).finally(() => { this.refreshing = null; });
  }

  private async read(desired: Desired, now: Date): Promise<void> {
    const read = async (id: string, title: string, make: () => Promise<StatusSection>): Promise<StatusSection> =>
      make().catch((e: unknown) => ({ id, title, status: 'UNKNOWN' as const, note: `cannot be read: ${messageOf(e)}` }));
    const [{ HistoryCharts }, { archivesSection }] = await Promise.all([import('../health/status-section.js'), import('../retention/status-section.js')]);
    this.history ??= new HistoryCharts();
    const history = this.history;
    await this.readRuns(desired).catch(() => undefined);
    this.slow = await Promise.all([
      read('archives', 'Retention archives', () => archivesSection(desired)),
      read('history', 'Health, the last 24 hours', () => history.section(desired, now)),
    ]);
    if (this.runPlan && now.getTime() - this.plannedAt >= PLAN_EVERY_MS) {
      this.plannedAt = now.getTime();
      const { planSection } = await import('../engine/status-section.js');
      const runPlan = this.runPlan;
      this.plan = await read('plan', 'Pending plan', async () => planSection(await runPlan(desired)));
    }
  }

  async sections(desired: Desired, report: HealthReport | undefined, state: { applying: boolean; nextApplyAt?: Date }): Promise<StatusSection[]> {
    const [{ servicesSection }, { schedulesSection }] = await Promise.all([import('../health/status-section.js'), import('../backup/status-section.js')]);
    return [servicesSection(desired, report), schedulesSection(desired, report), ...(this.plan ? [this.plan] : []), this.runsSection(state), ...this.slow];
  }

  private runsSection(state: { applying: boolean; nextApplyAt?: Date }): StatusSection {
    const note = `${state.applying ? 'applying now; ' : ''}next apply ${state.nextApplyAt ? `at ${state.nextApplyAt.toISOString()}` : 'not scheduled (no backup schedule)'}`;
    return {
      id: 'runs', title: 'Last runs (the journal)', note,
      tables: [{
        columns: ['run', 'finished', 'status', 'took', 'what'],
        rows: this.runs.map((r) => ({
          cells: [r.runId, r.finishedAt ?? '', r.status, r.durationMs === null ? '' : formatDuration(r.durationMs), r.failed ?? r.actions],
          ...(r.status === 'failed' || r.status === 'refused' ? { status: 'CRITICAL' as const } : r.status === 'running or killed' || r.status === 'cancelled' ? { status: 'WARNING' as const } : {}),
        })),
        empty: 'no run in the journal yet',
      }],
    };
  }
}
