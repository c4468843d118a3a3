/**
 * The journal of applies: one JSON-lines file per run under `<storage>/journal/`, named by
 * its run id (sortable by time). Each line is an event with its time and the run id: the run
 * starting (the plan's fingerprint and action ids), each action starting and ending (outcome,
 * duration, error), the actions not executed, the run ending. Every line is redacted and
 * synced to disk before the next step, so a killed apply leaves a journal up to where it died.
 */
import { mkdir, open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { newTimestampId } from '../storage/durable.js';
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
  private constructor(readonly file: string, readonly runId: string, private handle: FileHandle | null, private readonly env: NodeJS.ProcessEnv) {}

  static async open(storagePath: string, runId: string, env: NodeJS.ProcessEnv = process.env): Promise<Journal> {
    const dir = join(storagePath, JOURNAL_DIR);
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${runId}.jsonl`);
    return new Journal(file, runId, await open(file, 'a', 0o600), env);
  }

  async write(event: string, fields: Record<string, unknown> = {}): Promise<void> {
    if (!this.handle) return;
    const line: JournalEvent = { at: new Date().toISOString(), runId: this.runId, event, ...fields };
    await this.handle.write(redact(JSON.stringify(line), this.env) + '\n');
    await this.handle.datasync();
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
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
