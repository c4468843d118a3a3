/**
 * The staged paths this process is writing (a backup's `.tmp-<id>-<pid>` work dir, a retention
 * archive's work dir or chunk being written), so that an exit that cannot wait for them (a
 * second SIGTERM to the daemon) removes them first instead of leaving debris for the next run.
 * The writers register a path when they create it and unregister it once it is published or
 * removed; nothing here decides what is staged.
 */
import { rmSync } from 'node:fs';

const staged = new Set<string>();

export function registerStaged(path: string): void {
  staged.add(path);
}

export function unregisterStaged(path: string): void {
  staged.delete(path);
}

/** What is staged now (for tests and the forced-exit log line). */
export function stagedPaths(): string[] {
  return [...staged].sort();
}

/**
 * Removes every staged path synchronously (the process is about to exit: no event loop turn is
 * left for promises). A child tool may still be writing into one (pg_dump -j): retried briefly.
 * Returns the paths removed and the ones that could not be.
 */
export function removeStagedSync(): { removed: string[]; failed: { path: string; error: string }[] } {
  const removed: string[] = [];
  const failed: { path: string; error: string }[] = [];
  for (const path of stagedPaths()) {
    try {
      rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
      staged.delete(path);
      removed.push(path);
    } catch (e) {
      failed.push({ path, error: (e as Error).message });
    }
  }
  return { removed, failed };
}
