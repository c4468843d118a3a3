/**
 * The sealed-store contract (docs/architecture.md §6): the one way backups and retention archives
 * reach a repository's files. Nothing outside src/storage touches them directly, so that a local
 * directory (`local-store.ts`) and an object store can both hold a repository.
 *
 * An item is addressed by a key of `/`-separated segments (`postgres/nightly/<id>`,
 * `<policy>/<archive id>`). It is written staged, every file streamed through SHA-256 and
 * counted while it is stored, and it exists only once its manifest is published, last:
 *   - locally: the item is a hidden `.tmp-<name>-<pid>` directory; publishing writes and fsyncs
 *     the manifest, renames it into place, then renames the directory to its name;
 *   - on an object store (no renames): the files are uploaded under the key, beside a staged
 *     marker object (`<key>/.staged`: run id, pid, host, time); publishing PUTs the manifest
 *     object after every other has been acknowledged, then removes the marker.
 * Listing sees published items only. Debris is what a run left staged (or half deleted) and no
 * live run owns: locally the pid in the hidden name is dead; on an object store the marker's
 * host is this one and its pid is dead, or the marker is older than a lease.
 * Delete unpublishes first (locally an atomic rename out of view, on an object store the
 * manifest object goes first, after a deleting marker), then removes the files: a half-deleted
 * item is debris, never a damaged item that lists as valid.
 * Encryption is not the store's business: callers pass the encryptor as a stream transform,
 * and the store hashes and counts the bytes it stores.
 */
import type { Readable, Transform } from 'node:stream';
import { JarvisError } from '../errors.js';

/** Who owns a staged item: the debris cleaner leaves alone what a live owner holds. */
export interface RunOwner { pid: number; host: string }

/** A stored file as a manifest records it: the stored bytes' size and SHA-256. */
export interface StoredFile { name: string; bytes: number; sha256: string }

export type FileSource = Readable | AsyncIterable<Buffer>;

/**
 * A real directory on this machine, for tools that read or write one (pg_dump/pg_restore -Fd,
 * a throwaway redis-server, Chroma's tar). `release` gives it back (a download is removed).
 */
export interface LocalDirectory { path: string; release(): Promise<void> }

/** Something a killed run left: a whole staged item (`name` absent) or one file of a published item. */
export interface Debris { key: string; name?: string; location: string }

/** A staged file inside a published item (a record being rewritten, a file being added). */
export interface Leftover extends Debris { name: string; ownerAlive: boolean }

export interface StageOptions {
  /** Where the test pause points (storage/durable.ts testPausePoint) read their setting. */
  env?: NodeJS.ProcessEnv;
}

export interface AddFileOptions extends StageOptions {
  /** Stream transforms the bytes pass before they are stored (an encryptor). */
  transforms?: Transform[];
  /** A test pause point between the staged write and putting the file in place (a kill there leaves debris). */
  stagedPause?: string;
}

/** An item being written. Nothing of it is listed until `publish` returns. */
export interface StagedItem {
  readonly key: string;
  /** Where it will be, for messages (a path, a URL). */
  readonly location: string;
  /** Where it is while staged (a hidden directory, a prefix beside its staged marker). */
  readonly stagedLocation: string;
  /** Streams `source` through `transforms` (an encryptor) into `name`, hashing the stored bytes. */
  writeFile(name: string, source: FileSource, transforms?: Transform[]): Promise<StoredFile>;
  /**
   * An empty local directory named `name` for a tool to write into. Its files become the item's
   * with `adoptLocalFile`; `release` removes what was not adopted.
   */
  stageLocalDirectory(name: string): Promise<LocalDirectory>;
  /**
   * Takes in a file a tool wrote under a staged local directory as `name` (through `transforms`).
   * `hashed`: its SHA-256 and size, taken while the tool wrote it (hashGrowingFile): a file kept
   * as it is (no transforms, local) is then not read again, only its size checked.
   */
  adoptLocalFile(localPath: string, name: string, transforms?: Transform[], hashed?: { sha256: string; bytes: number }): Promise<StoredFile>;
  /** Writes the manifest last and atomically: from here on the item is listed. */
  publish(manifest: string): Promise<void>;
  /** Removes what was staged of an item that will not be published. */
  abort(): Promise<void>;
}

export interface SealedStore {
  /** The file whose presence publishes an item (`manifest.json`, `archive.json`). */
  readonly manifestName: string;
  readonly owner: RunOwner;
  /** Where `key` (or its file `name`) is, for messages: a path, a URL. */
  location(key: string, name?: string): string;
  begin(key: string, options?: StageOptions): Promise<StagedItem>;
  /**
   * The names one level below `prefix` (an empty prefix: the top level), sorted, without staged
   * or half-deleted items. An item listed whose manifest is missing is damaged, not debris.
   */
  list(prefix: string): Promise<string[]>;
  /** The top-level files of a published item (manifest, records, data), sorted. */
  files(key: string): Promise<string[]>;
  /** A small file's text (the manifest, a record), or null when it does not exist. */
  readText(key: string, name: string): Promise<string | null>;
  /** A file's stored size, or null when it does not exist. */
  size(key: string, name: string): Promise<number | null>;
  /** The SHA-256 and size of a file's stored bytes, read end to end, or null when it does not exist. */
  hash(key: string, name: string): Promise<{ sha256: string; bytes: number } | null>;
  /** A file's stored bytes, checked against `file`: the stream fails (VERIFY_FAILED) when they differ. */
  read(key: string, file: StoredFile): Readable;
  /** Writes a small file of a published item atomically (a manifest rewrite, a chunk record, a marker). */
  writeRecord(key: string, name: string, text: string): Promise<void>;
  /** Adds a file to a published item: staged while written, in place once complete. */
  addFile(key: string, name: string, source: FileSource, options?: AddFileOptions): Promise<StoredFile>;
  /** Removes files of a published item in this order, each durably (a record before its data); missing ones are skipped. */
  removeFiles(key: string, names: readonly string[]): Promise<void>;
  /** Deletes a published item: out of the listing first, then its files. */
  delete(key: string): Promise<void>;
  /** Staged or half-deleted items directly under `prefix` whose owner is not alive. */
  findDebris(prefix: string): Promise<Debris[]>;
  /** Staged files inside a published item, and whether their owner is alive. */
  leftovers(key: string): Promise<Leftover[]>;
  /** Removes debris (an orphaned child of a killed run may still be writing there). */
  removeDebris(debris: readonly Debris[]): Promise<void>;
  /** A published item as a local directory: the item's own for a local store, a download otherwise. */
  openLocalDirectory(key: string): Promise<LocalDirectory>;
  /** An empty scratch directory for work on an item (a restore), debris if its owner dies. */
  scratchDirectory(key: string): Promise<LocalDirectory>;
}

/** Keys and file names: segments of letters, digits, `-`, `_`, `.`, none empty, `.` or `..`. */
export function checkKey(key: string, what = 'key'): string[] {
  const segments = key.split('/');
  if (key === '' || segments.some((s) => s === '' || s === '.' || s === '..' || !/^[A-Za-z0-9_.-]+$/.test(s))) {
    throw new JarvisError('INTERNAL', `invalid sealed-store ${what} "${key}"`);
  }
  return segments;
}
