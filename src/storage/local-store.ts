/**
 * The sealed-store contract (`sealed-store.ts`, docs/architecture.md §6) over a local directory.
 *
 * An item `a/b/<name>` is the directory `<root>/a/b/<name>/`. While staged it is
 * `<root>/a/b/.tmp-<name>-<pid>/`, a hidden name `list` never returns. Publishing: every data file
 * was fsynced when written; `<manifest>.tmp` is written and fsynced, renamed to the manifest, the
 * work dir fsynced; the work dir is renamed to `<name>` (atomic) and its parent fsynced. Deleting
 * renames the item to `.prune-<name>-<pid>` (out of view, atomic), then removes it. A scratch
 * directory is `.restore-<name>-<pid>`. Any of those whose pid is dead is debris.
 * Inside a published item, a file being added is `.tmp-<stem>-<pid>` and a record being rewritten
 * `<name>.tmp-<pid>`. File-system failures name the file (storage/failures.ts); staged paths are
 * registered (storage/staging.ts) so that a forced exit removes them.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { JarvisError } from '../errors.js';
import { isAlive } from '../platform/processes.js';
import { fsyncPath, hashFile, HashingFileSink, listDirs, listFiles, testPausePoint, writeFileAtomic } from './durable.js';
import { writingStorage } from './failures.js';
import { checkKey, type AddFileOptions, type Debris, type FileSource, type Leftover, type LocalDirectory, type RunOwner, type SealedStore, type StagedItem, type StageOptions, type StoredFile } from './sealed-store.js';
import { registerStaged, unregisterStaged } from './staging.js';
import { VerifyingStream } from './verifying.js';

/** Hidden item dirs: `.tmp-<name>-<pid>` (staged), `.prune-<name>-<pid>` (being deleted), `.restore-<name>-<pid>` (scratch). */
export const HIDDEN_ITEM = /^\.(tmp|prune|restore)-(.+)-(\d+)$/;
/** Staged files inside a published item: a file being added, a record being rewritten. */
const ADDING_FILE = /^\.tmp-.+-(\d+)$/;
const REWRITING_RECORD = /\.tmp-(\d+)$/;

export interface LocalStoreOptions {
  manifestName: string;
  /** Whose pid names what this store stages (default: this process). */
  owner?: RunOwner;
  /** For tests: runs between unpublishing an item and removing its files (a throw simulates a crash there). */
  afterUnpublish?: (key: string) => Promise<void>;
}

type Stage = Readable | AsyncIterable<Buffer> | Transform | Writable;
const runPipeline = pipeline as (...stages: Stage[]) => Promise<void>;

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** File names inside an item: relative paths without `.`/`..`/empty segments. */
function checkFileName(name: string): void {
  checkKey(name, 'file name');
}

/** Streams `source` through `transforms` into a new file at `path`, hashing and counting the stored bytes. */
async function streamToFile(path: string, name: string, source: FileSource, transforms: readonly Transform[]): Promise<StoredFile> {
  await writingStorage(path, () => mkdir(dirname(path), { recursive: true }));
  const sink = new HashingFileSink(path);
  await runPipeline(source, ...transforms, sink);
  return { name, bytes: sink.bytes, sha256: sink.hash.digest('hex') };
}

class LocalStagedItem implements StagedItem {
  private readonly written = new Set<string>();
  private published = false;
  constructor(
    readonly key: string,
    readonly location: string,
    readonly stagedLocation: string,
    private readonly manifestName: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private pathOf(name: string): string {
    checkFileName(name);
    if (name === this.manifestName || name.startsWith(`${this.manifestName}.`)) throw new JarvisError('INTERNAL', `"${name}" is the manifest's name: it is written by publish`);
    return join(this.stagedLocation, name);
  }

  async writeFile(name: string, source: FileSource, transforms: Transform[] = []): Promise<StoredFile> {
    const file = await streamToFile(this.pathOf(name), name, source, transforms);
    this.written.add(name);
    return file;
  }

  async stageLocalDirectory(name: string): Promise<LocalDirectory> {
    const path = this.pathOf(name);
    await writingStorage(path, () => mkdir(path, { recursive: true, mode: 0o700 }));
    const prefix = `${name}/`;
    return {
      path,
      // Files adopted without a transform stay where the tool wrote them: those are kept.
      release: async () => {
        if (![...this.written].some((f) => f.startsWith(prefix))) await rm(path, { recursive: true, force: true });
      },
    };
  }

  async adoptLocalFile(localPath: string, name: string, transforms: Transform[] = [], hashed?: { sha256: string; bytes: number }): Promise<StoredFile> {
    const target = this.pathOf(name);
    const inside = relative(this.stagedLocation, localPath);
    if (inside.startsWith('..') || inside.startsWith(sep)) throw new JarvisError('INTERNAL', `${localPath} is not in a staged local directory of ${this.key}`);
    if (transforms.length) {
      const file = await this.writeFile(name, createReadStream(localPath, { highWaterMark: 1 << 20 }), transforms);
      await unlink(localPath);
      return file;
    }
    if (localPath !== target) {
      await writingStorage(target, async () => {
        await mkdir(dirname(target), { recursive: true });
        await rename(localPath, target);
      });
    }
    const { sha256, bytes } = hashed && (await stat(target)).size === hashed.bytes ? hashed : await hashFile(target);
    await fsyncPath(target);
    this.written.add(name);
    return { name, bytes, sha256 };
  }

  async publish(manifest: string): Promise<void> {
    if (this.published) throw new JarvisError('INTERNAL', `${this.key} published twice`);
    // Every directory that holds a data file is fsynced, so the files' names are durable.
    const dirs = new Set<string>([this.stagedLocation, ...[...this.written].map((f) => dirname(join(this.stagedLocation, f)))]);
    for (const dir of dirs) await fsyncPath(dir);
    await testPausePoint('before-manifest', this.env);
    const final = join(this.stagedLocation, this.manifestName);
    const tmp = `${final}.tmp`;
    await writingStorage(tmp, async () => {
      const handle = await open(tmp, 'wx', 0o600);
      try {
        await handle.writeFile(manifest);
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
    await testPausePoint('manifest-written', this.env);
    await writingStorage(final, () => rename(tmp, final));
    await fsyncPath(this.stagedLocation);
    await testPausePoint('manifest-renamed', this.env);
    await writingStorage(this.location, () => rename(this.stagedLocation, this.location));
    unregisterStaged(this.stagedLocation);
    this.published = true;
    await testPausePoint('dir-renamed', this.env);
    await fsyncPath(dirname(this.location));
  }

  async abort(): Promise<void> {
    if (!this.published) await rm(this.stagedLocation, { recursive: true, force: true });
    unregisterStaged(this.stagedLocation);
  }
}

export class LocalSealedStore implements SealedStore {
  readonly manifestName: string;
  readonly owner: RunOwner;
  private readonly afterUnpublish: ((key: string) => Promise<void>) | undefined;

  constructor(readonly root: string, options: LocalStoreOptions) {
    this.manifestName = options.manifestName;
    this.owner = options.owner ?? { pid: process.pid, host: hostname() };
    this.afterUnpublish = options.afterUnpublish;
  }

  location(key: string, name?: string): string {
    const dir = key === '' ? this.root : join(this.root, ...checkKey(key));
    return name === undefined ? dir : join(dir, name);
  }

  /** The parent directory and the hidden sibling `.<kind>-<name>-<pid>` of an item. */
  private hidden(key: string, kind: 'tmp' | 'prune' | 'restore'): { parent: string; path: string } {
    const segments = checkKey(key);
    const parent = join(this.root, ...segments.slice(0, -1));
    return { parent, path: join(parent, `.${kind}-${segments[segments.length - 1]!}-${this.owner.pid}`) };
  }

  async begin(key: string, options: StageOptions = {}): Promise<StagedItem> {
    const { parent, path } = this.hidden(key, 'tmp');
    await writingStorage(path, async () => {
      await mkdir(parent, { recursive: true });
      await mkdir(path, { mode: 0o700 });
    });
    registerStaged(path);
    await fsyncPath(parent);
    return new LocalStagedItem(key, this.location(key), path, this.manifestName, options.env ?? process.env);
  }

  async list(prefix: string): Promise<string[]> {
    return (await listDirs(this.location(prefix))).filter((name) => !name.startsWith('.'));
  }

  async files(key: string): Promise<string[]> {
    return listFiles(this.location(key));
  }

  async readText(key: string, name: string): Promise<string | null> {
    try {
      return await readFile(this.location(key, name), 'utf8');
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  async size(key: string, name: string): Promise<number | null> {
    try {
      return (await stat(this.location(key, name))).size;
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  async hash(key: string, name: string): Promise<{ sha256: string; bytes: number } | null> {
    try {
      return await hashFile(this.location(key, name));
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  read(key: string, file: StoredFile): Readable {
    const path = this.location(key, file.name);
    const check = new VerifyingStream(file, path);
    const source = createReadStream(path, { highWaterMark: 1 << 20 });
    source.on('error', (e) => check.destroy(e));
    return source.pipe(check);
  }

  async writeRecord(key: string, name: string, text: string): Promise<void> {
    checkFileName(name);
    await writeFileAtomic(this.location(key, name), text, `.tmp-${this.owner.pid}`);
  }

  async addFile(key: string, name: string, source: FileSource, options: AddFileOptions = {}): Promise<StoredFile> {
    checkFileName(name);
    const dir = this.location(key);
    const tmp = join(dir, `.tmp-${name.split('.')[0]!}-${this.owner.pid}`);
    registerStaged(tmp);
    try {
      const file = await streamToFile(tmp, name, source, options.transforms ?? []);
      if (options.stagedPause) await testPausePoint(options.stagedPause, options.env ?? process.env);
      // The rename is made durable by the fsync of the directory that comes with the next record written.
      await writingStorage(join(dir, name), () => rename(tmp, join(dir, name)));
      return file;
    } finally {
      unregisterStaged(tmp);
    }
  }

  async removeFiles(key: string, names: readonly string[]): Promise<void> {
    const dir = this.location(key);
    for (const name of names) {
      checkFileName(name);
      try {
        await unlink(join(dir, name));
      } catch (e) {
        if (!isMissing(e)) throw e;
        continue;
      }
      await fsyncPath(dir);
    }
  }

  async delete(key: string): Promise<void> {
    const { parent, path } = this.hidden(key, 'prune');
    await rename(this.location(key), path);
    await fsyncPath(parent);
    await this.afterUnpublish?.(key);
    await rm(path, { recursive: true, force: true });
  }

  async findDebris(prefix: string): Promise<Debris[]> {
    const found: Debris[] = [];
    for (const name of await listDirs(this.location(prefix))) {
      const m = HIDDEN_ITEM.exec(name);
      if (!m || isAlive(Number(m[3]))) continue;
      const key = prefix === '' ? name : `${prefix}/${name}`;
      found.push({ key, location: this.location(key) });
    }
    return found;
  }

  async leftovers(key: string): Promise<Leftover[]> {
    const dir = this.location(key);
    const found: Leftover[] = [];
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const m = ADDING_FILE.exec(name) ?? REWRITING_RECORD.exec(name);
      if (m) found.push({ key, name, location: join(dir, name), ownerAlive: isAlive(Number(m[1])) });
    }
    return found.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async removeDebris(debris: readonly Debris[]): Promise<void> {
    // An orphaned child of a killed run (pg_dump) may still be writing there: retry briefly.
    for (const d of debris) await rm(this.location(d.key, d.name), { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }

  async openLocalDirectory(key: string): Promise<LocalDirectory> {
    return { path: this.location(key), release: async () => undefined };
  }

  async scratchDirectory(key: string): Promise<LocalDirectory> {
    const { path } = this.hidden(key, 'restore');
    await rm(path, { recursive: true, force: true });
    await writingStorage(path, () => mkdir(path, { recursive: true, mode: 0o700 }));
    return { path, release: () => rm(path, { recursive: true, force: true }) };
  }
}

export function openLocalStore(root: string, options: LocalStoreOptions): LocalSealedStore {
  return new LocalSealedStore(root, options);
}
