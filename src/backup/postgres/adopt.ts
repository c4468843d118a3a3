/**
 * Taking in the files of a directory-format dump (checksummed and fsynced by the writer,
 * docs/architecture.md §4 rule 1) while pg_dump still runs, instead of all of them after it.
 *
 * `pg_dump -j N -v` reports each table's data file once its worker has closed it ("finished
 * item 3525 TABLE DATA public messages"); that file (`3525.dat.gz`) is never written again, so it
 * is adopted then, on at most two lanes, while the other tables are dumped. What pg_dump did not
 * report (toc.dat, written last; everything with -j 1) is adopted after it exits. A file that
 * changed size after it was adopted early is a bug in that reasoning: the backup fails rather
 * than publish a wrong checksum.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { JarvisError } from '../../errors.js';
import type { BackupWriter, FileEntry } from '../storage.js';

const FINISHED_ITEM = /finished item (\d+) TABLE DATA /;
const LANES = 2;

export class DumpAdopter {
  private readonly adopted = new Map<string, Promise<FileEntry>>();
  private readonly pending: Promise<unknown>[] = [];
  private readonly lanes: Promise<unknown>[] = Array.from({ length: LANES }, () => Promise.resolve());
  private next = 0;
  private done = 0;

  /** The staged local directory pg_dump writes into (set before pg_dump starts). */
  dir = '';

  constructor(private readonly writer: BackupWriter, private readonly onAdopted: (done: number) => void = () => undefined) {}

  private storedName(file: string): string {
    return `data/${file}${this.writer.encrypted ? '.enc' : ''}`;
  }

  private adopt(file: string): Promise<FileEntry> {
    let entry = this.adopted.get(file);
    if (!entry) {
      const lane = this.next++ % LANES;
      entry = this.lanes[lane]!.then(() => this.writer.adoptFile(join(this.dir, file), this.storedName(file)));
      entry.then(() => this.onAdopted(++this.done), () => undefined);
      this.lanes[lane] = entry.catch(() => undefined);
      this.adopted.set(file, entry);
    }
    return entry;
  }

  /** A line of pg_dump's stderr: adopts the data file of an item it reports finished. */
  line(text: string): void {
    const m = FINISHED_ITEM.exec(text);
    if (!m) return;
    const prefix = `${m[1]}.dat`;
    const found = readdir(this.dir).then((names) => {
      for (const name of names) if (name === prefix || name.startsWith(`${prefix}.`)) void this.adopt(name).catch(() => undefined);
    });
    found.catch(() => undefined);
    this.pending.push(found);
  }

  /** Waits for every adoption started so far (call before the work dir may be removed). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.pending);
    await Promise.allSettled([...this.adopted.values()]);
  }

  /** After pg_dump exited 0: adopts the rest of `files` and checks the early ones did not change. */
  async finish(files: string[]): Promise<void> {
    await this.settle();
    const early = [...this.adopted.keys()];
    await Promise.all(files.map((f) => this.adopt(f)));
    if (this.writer.encrypted) return; // the plain files are gone; pg_dump never reopens a finished item
    for (const file of early) {
      const entry = await this.adopted.get(file)!;
      // Hashed in place or moved into the store; pg_dump writing it again would show here.
      const now = await stat(join(this.dir, file)).catch(() => null);
      if (now && now.size !== entry.bytes) {
        throw new JarvisError('BACKUP_FAILED', `${file} changed after pg_dump reported it finished (${entry.bytes} → ${now.size} bytes)`);
      }
    }
  }
}
