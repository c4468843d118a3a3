/**
 * Progress while long work runs: a bar (cli-progress) on a terminal, plain lines otherwise.
 * Used by `backup`, `restore` and the apply loop (through `applyReporter`). Writes to stderr,
 * redacted, so that stdout stays the command's result (JSON with --json).
 */
import type { ApplyReporter } from '../engine/index.js';
import { ACTION_KIND, type Action, type ActionType, type Progress } from '../engine/types.js';
import { redact } from '../services/redact.js';
import type { Palette } from './color.js';
import { formatCount, formatDuration } from './format.js';

export interface ProgressSink extends Progress { stop(): void }

function line(text: string): void {
  process.stderr.write(redact(text.endsWith('\n') ? text : text + '\n'));
}

/**
 * Pure: how far along, how fast and how long to go, from the done count, the total and the time
 * since the first update: `45% (1,234 of 2,741), 250/s, ETA 6.0s`. Without a total: the count and
 * the rate; without a measurable rate yet: no ETA.
 */
export function progressSummary(done: number, total: number | undefined, elapsedMs: number): string {
  const rate = elapsedMs >= 250 ? done / (elapsedMs / 1000) : 0;
  const rateText = rate > 0 ? `, ${rate >= 10 ? formatCount(rate) : rate.toFixed(1)}/s` : '';
  if (!total) return `${formatCount(done)}${rateText}`;
  const percent = Math.min(100, Math.floor((done / total) * 100));
  const eta = rate > 0 && done < total ? `, ETA ${formatDuration(((total - done) / rate) * 1000)}` : '';
  return `${percent}% (${formatCount(done)} of ${formatCount(total)})${rateText}${eta}`;
}

/** Off a terminal, a progress line at most this often (a log file, CI, journald). */
const PLAIN_INTERVAL_MS = 5_000;

/**
 * A maker of progress sinks: bars on a terminal (cli-progress, loaded here once) with the
 * percentage, rate and ETA; off a terminal, note lines and every few seconds a line of how far it
 * is (progressSummary); nothing with `quiet`.
 */
export async function progressMaker(quiet: boolean, env: NodeJS.ProcessEnv = process.env): Promise<(label: string) => ProgressSink> {
  if (quiet) return () => ({ note() { /* quiet */ }, update() { /* quiet */ }, stop() { /* quiet */ } });
  if (process.stderr.isTTY) {
    const { SingleBar, Presets } = await import('cli-progress');
    return (label) => {
      const bar = new SingleBar({
        format: `${label} [{bar}] {summary} {note}`, stream: process.stderr, hideCursor: true, clearOnComplete: true, fps: 5,
      }, Presets.shades_classic);
      let startedAt = 0;
      let noteText = '';
      let last = { done: 0, total: undefined as number | undefined };
      const payload = () => ({ note: noteText, summary: progressSummary(last.done, last.total, Date.now() - startedAt) });
      return {
        // Before the first update there is no bar yet: a note is a line of its own.
        note(message: string) { noteText = message.slice(0, 60); if (startedAt) bar.update(payload()); else line(`${label}: ${message}`); },
        update(done: number, total?: number) {
          last = { done, total };
          if (!startedAt) { startedAt = Date.now(); bar.start(total ?? 1, 0, payload()); }
          if (total !== undefined) bar.setTotal(total);
          bar.update(done, payload());
        },
        stop() { if (startedAt) bar.stop(); },
      };
    };
  }
  const every = Number(env.JARVIS_DB_PROGRESS_INTERVAL_MS) || PLAIN_INTERVAL_MS;
  return (label) => {
    let lastNote = '';
    let startedAt = 0;
    let state: { done: number; total?: number } | null = null;
    let shown: { done: number; total?: number } | null = null;
    let timer: NodeJS.Timeout | undefined;
    const report = () => {
      if (!state || (shown && shown.done === state.done && shown.total === state.total)) return;
      shown = { ...state };
      line(`${label}: ${progressSummary(state.done, state.total, Date.now() - startedAt)}`);
    };
    return {
      note(message: string) { if (message !== lastNote) line(`${label}: ${message}`); lastNote = message; },
      update(done: number, total?: number) {
        state = { done, ...(total !== undefined ? { total } : {}) };
        if (!startedAt) {
          startedAt = Date.now();
          timer = setInterval(report, every);
          timer.unref();
        }
      },
      stop() { if (timer) clearInterval(timer); },
    };
  };
}

/** One progress sink (see progressMaker). */
export async function progressFor(label: string, quiet: boolean): Promise<ProgressSink> {
  return (await progressMaker(quiet))(label);
}

const SYMBOL = { create: '+', change: '~', destroy: '-' } as const;

/** `+`, `~` or `-` for an action (a type unknown to ACTION_KIND, from a test module, is a change). */
export function symbolOf(action: Pick<Action, 'type'>): string {
  return SYMBOL[ACTION_KIND[action.type as ActionType] ?? 'change'];
}

/**
 * What the CLI shows while an apply runs: who holds the lock while waiting, the housekeeping
 * done, one line per action as it starts (with a bar for its progress on a terminal) and one
 * as it ends.
 */
export async function applyReporter(c: Palette, quiet: boolean): Promise<ApplyReporter> {
  const make = await progressMaker(quiet);
  const bars = new Map<string, ProgressSink>();
  return {
    waitingForLock(owner, timeoutMs) {
      line(`waiting up to ${formatDuration(timeoutMs)} for the apply lock (held by ${owner ? `pid ${owner.pid}, run ${owner.runId}, since ${owner.since}` : 'another process'})…`);
    },
    waitingForRepositoryLock(repository, holder, timeoutMs) {
      line(`waiting up to ${formatDuration(timeoutMs)} for the lock of repository ${repository} (held by ${holder ? `host ${holder.host}, pid ${holder.pid}, since ${holder.since}` : 'another apply'})…`);
    },
    prepared(lines) { for (const l of lines) line(c.dim(`cleaned: ${l}`)); },
    actionStarted(action, index, total) {
      line(`[${index + 1}/${total}] ${symbolOf(action)} ${action.type} ${action.target}${action.risk === 'destructive' ? c.red(' (destructive)') : ''}`);
      const sink = make(`      ${action.target}`);
      bars.set(action.id, sink);
      return sink;
    },
    actionFinished(action, result) {
      bars.get(action.id)?.stop();
      bars.delete(action.id);
      if (result.status === 'done') line(`      ${c.green('done')} in ${formatDuration(result.durationMs ?? 0)}: ${result.summary ?? ''}`);
      else if (result.status === 'failed') line(`      ${c.red('FAILED')} after ${formatDuration(result.durationMs ?? 0)}: ${result.error?.message ?? ''}`);
    },
  };
}
