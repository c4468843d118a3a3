/**
 * Progress while long work runs: a bar (cli-progress) on a terminal, plain lines otherwise.
 * Used by `backup`, `restore` and the apply loop (through `applyReporter`). Writes to stderr,
 * redacted, so that stdout stays the command's result (JSON with --json).
 */
import type { ApplyReporter } from '../engine/index.js';
import { ACTION_KIND, type Action, type ActionType, type Progress } from '../engine/types.js';
import { redact } from '../services/redact.js';
import type { Palette } from './color.js';
import { formatDuration } from './format.js';

export interface ProgressSink extends Progress { stop(): void }

function line(text: string): void {
  process.stderr.write(redact(text.endsWith('\n') ? text : text + '\n'));
}

/**
 * A maker of progress sinks: bars on a terminal (cli-progress, loaded here once), plain note
 * lines on stderr otherwise; nothing with `quiet`.
 */
export async function progressMaker(quiet: boolean): Promise<(label: string) => ProgressSink> {
  if (process.stderr.isTTY && !quiet) {
    const { SingleBar, Presets } = await import('cli-progress');
    return (label) => {
      const bar = new SingleBar({ format: `${label} [{bar}] {value}/{total} {note}`, stream: process.stderr, hideCursor: true, clearOnComplete: true }, Presets.shades_classic);
      let started = false;
      let noteText = '';
      return {
        // Before the first update there is no bar yet: a note is a line of its own.
        note(message: string) { noteText = message.slice(0, 60); if (started) bar.update({ note: noteText }); else line(`${label}: ${message}`); },
        update(done: number, total?: number) {
          if (!started) { bar.start(total ?? 1, 0, { note: noteText }); started = true; }
          if (total !== undefined) bar.setTotal(total);
          bar.update(done, { note: noteText });
        },
        stop() { if (started) bar.stop(); },
      };
    };
  }
  return (label) => {
    let last = '';
    return {
      note(message: string) { if (message !== last && !quiet) line(`${label}: ${message}`); last = message; },
      update() { /* plain output: notes only */ },
      stop() { /* nothing to clear */ },
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
