/**
 * The journal of applies: one JSON-lines file per run under `<storage>/journal/`, named by
 * its run id (sortable by time). Each line is an event with its time and the run id: the run
 * starting (the plan's fingerprint and action ids), each action starting and ending (outcome,
 * duration, error), the actions not executed, the run ending. Every line is redacted and
 * synced to disk before the next step, so a killed apply leaves a journal up to where it died.
 * The file is created by its first line: a run that cannot write that one (a full disk) leaves
 * no empty journal behind.
 */
import { mkdir, open, readdir, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { newTimestampId, timeOfTimestampId } from '../storage/durable.js';
import { writingStorage } from '../storage/failures.js';
import { redact } from '../services/redact.js';

export const JOURNAL_DIR = 'journal';

/** `20261124T030000Z-1a2b`: time-sortable, the same shape as backup ids. */
export const newRunId = (now: Date): string => newTimestampId(now);

export interface JournalEvent {
  at: string;
  runId: string;
  event: string;
  [field: string]: unknown;
}

export class Journal {
  private handle: FileHandle | null = null;
  private closed = false;
  /** Writes in order, one at a time (the first one creates the file). */
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(readonly file: string, readonly runId: string, private readonly env: NodeJS.ProcessEnv) {}

  static async open(storagePath: string, runId: string, env: NodeJS.ProcessEnv = process.env): Promise<Journal> {
    const dir = join(storagePath, JOURNAL_DIR);
    const file = join(dir, `${runId}.jsonl`);
    await writingStorage(file, () => mkdir(dir, { recursive: true }));
    return new Journal(file, runId, env);
  }

  async write(event: string, fields: Record<string, unknown> = {}): Promise<void> {
    if (this.closed) return;
    const line: JournalEvent = { at: new Date().toISOString(), runId: this.runId, event, ...fields };
    const text = redact(JSON.stringify(line), this.env) + '\n';
    const written = this.tail.then(() => this.append(text));
    this.tail = written.catch(() => undefined);
    await written;
  }

  private async append(text: string): Promise<void> {
    if (this.closed) return;
    await writingStorage(this.file, async () => {
      if (this.handle) {
        await this.handle.write(text);
        await this.handle.datasync();
        return;
      }
      const handle = await open(this.file, 'wx', 0o600);
      try {
        await handle.write(text);
        await handle.datasync();
      } catch (e) {
        await handle.close().catch(() => undefined);
        await unlink(this.file).catch(() => undefined);
        throw e;
      }
      this.handle = handle;
    });
  }

  async close(): Promise<void> {
    await this.tail;
    const h = this.handle;
    this.handle = null;
    this.closed = true;
    await h?.close();
  }
}

/** The events of one run, in order. */
export async function readJournal(file: string): Promise<JournalEvent[]> {
  const text = await readFile(file, 'utf8');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as JournalEvent);
}

/** Journal files of a storage path, oldest first. */
export async function listJournals(storagePath: string): Promise<string[]> {
  try {
    return (await readdir(join(storagePath, JOURNAL_DIR))).filter((n) => n.endsWith('.jsonl')).sort().map((n) => join(storagePath, JOURNAL_DIR, n));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/**
 * Pure: the journal files (names) older than `keepSeconds` at `now`, by the time in their run id.
 * A name of another shape is never chosen: it is not ours to delete.
 */
export function journalsToPrune(names: readonly string[], now: Date, keepSeconds: number): string[] {
  const before = now.getTime() - keepSeconds * 1000;
  return names.filter((name) => {
    const at = name.endsWith('.jsonl') ? timeOfTimestampId(name.slice(0, -'.jsonl'.length)) : null;
    return at !== null && at.getTime() < before;
  });
}

/** Deletes the journal files older than `keepSeconds` (journal.keep); returns how many. */
export async function pruneJournals(storagePath: string, now: Date, keepSeconds: number): Promise<number> {
  const files = await listJournals(storagePath);
  const old = journalsToPrune(files.map((f) => basename(f)), now, keepSeconds);
  for (const name of old) await unlink(join(storagePath, JOURNAL_DIR, name)).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  return old.length;
}
