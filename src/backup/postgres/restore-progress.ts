/**
 * Progress of a `pg_restore -v` from its stderr: each TOC item is "processing item N …" when the
 * leader runs it itself and "launching item N …" / "finished item N …" when a worker does (-j).
 * Pure.
 */

/** The archive's header items: processed by `pg_restore -v`, not work to count. */
const HEADER_ITEM = /^(?:ENCODING|STDSTRINGS|SEARCHPATH|DATABASE)\b/;

/**
 * TOC entries in the output of `pg_restore -l` (comment lines start with `;`), without the
 * archive's header items (ENCODING, STDSTRINGS, SEARCHPATH, DATABASE), which the progress does
 * not count either: whether `-l` lists them depends on the archive.
 */
export function countTocEntries(listing: string): number {
  return listing.split('\n').filter((l) => l.trim() && !l.startsWith(';') && !HEADER_ITEM.test(l.replace(/^\d+; \d+ \d+ /, ''))).length;
}

/** `TABLE DATA public messages` → `table data for messages`; `INDEX messages_idx` → `index messages_idx`. */
function describeItem(item: string): string {
  const m = /^((?:[A-Z]+ )*[A-Z]+)(?: (.*))?$/.exec(item.trim());
  if (!m) return item.trim();
  const type = m[1]!.toLowerCase();
  const rest = (m[2] ?? '').trim();
  if (type === 'table data') return `table data for ${rest.split(' ').at(-1)}`;
  return rest ? `${type} ${rest}` : type;
}

export interface RestoreProgressEvent {
  /** What starts now, for the progress note (absent when an item only finishes). */
  starting?: string;
  /** Whether an item is done (or taken by the leader, which runs it before reading on). */
  counts: boolean;
}

/** One stderr line of `pg_restore -v` (workers' lines may be glued to others: matched anywhere). */
export function parseRestoreLine(line: string): RestoreProgressEvent | null {
  const m = /(processing|launching|finished) item \d+ (.+)$/.exec(line);
  if (!m) return null;
  const verb = m[1]!;
  // The archive's header items are processed too, but `pg_restore -l` lists them commented out.
  if (HEADER_ITEM.test(m[2]!)) return verb === 'finished' ? null : { starting: describeItem(m[2]!), counts: false };
  if (verb === 'finished') return { counts: true };
  return { starting: describeItem(m[2]!), counts: verb === 'processing' };
}


/** Folds the lines into `restoring table data for messages (12/40)` notes and bar updates. */
export class RestoreProgress {
  private done = 0;
  constructor(private readonly total: number, private readonly report: (note: string, done: number, total: number) => void) {}

  line(line: string): void {
    const event = parseRestoreLine(line);
    if (!event) return;
    if (event.counts) this.done = Math.min(this.total, this.done + 1);
    if (event.starting) this.report(`restoring ${event.starting} (${this.done}/${this.total})`, this.done, this.total);
  }
}
