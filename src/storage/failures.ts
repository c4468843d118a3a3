/**
 * File-system failures while writing storage (backups, archives, the journal, the lock, health
 * history) as JarvisErrors that name the file and say what to do. Node's own message for a full
 * disk ("ENOSPC: no space left on device, write") names neither: a write on a file handle
 * carries no path, so every writer passes the path it was writing.
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isJarvisError, JarvisError } from '../errors.js';

/** The errno codes that mean "this storage cannot be written", not a bug of ours. */
const STORAGE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'ENOENT', 'EMFILE', 'ENFILE']);

function errnoOf(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && STORAGE_ERRNOS.has(code) ? code : undefined;
}

/** Bytes an unprivileged writer may still use on the file system of `path` (its nearest existing ancestor). */
async function freeBytes(path: string): Promise<number | undefined> {
  for (let p = path; ; p = dirname(p)) {
    try {
      const s = await statfs(p);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      if (dirname(p) === p) return undefined;
    }
  }
}

/**
 * `e` as a STORAGE_FAILED JarvisError naming `path` when it is a file-system failure of
 * writing it; anything else (a JarvisError already, a bug) comes back unchanged.
 */
export async function storageFailure(e: unknown, path: string): Promise<unknown> {
  if (isJarvisError(e)) return e;
  const errno = errnoOf(e);
  if (!errno) return e;
  const dir = dirname(path);
  const elsewhere = 'or point storage.path elsewhere';
  const user = process.getuid?.() ?? '?';
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT': {
      const free = await freeBytes(dir);
      const what = errno === 'ENOSPC' ? 'no space left' : 'the disk quota is exceeded';
      return new JarvisError('STORAGE_FAILED', `cannot write ${path}: ${what} on its file system`, {
        cause: e, hint: `free space on the file system of ${dir}${free === undefined ? '' : ` (${free} bytes free)`} ${elsewhere}`,
      });
    }
    case 'EACCES':
    case 'EPERM':
      return new JarvisError('STORAGE_FAILED', `cannot write ${path}: permission denied`, {
        cause: e, hint: `let uid ${user} write ${dir} (chown or chmod it) ${elsewhere}`,
      });
    case 'EROFS':
      return new JarvisError('STORAGE_FAILED', `cannot write ${path}: its file system is read-only`, {
        cause: e, hint: `remount the file system of ${dir} read-write ${elsewhere}`,
      });
    case 'ENOENT':
      return new JarvisError('STORAGE_FAILED', `cannot write ${path}: ${dir} does not exist (removed while jarvis-db was writing?)`, {
        cause: e, hint: `check that ${dir} exists and stays (nothing else cleans it up) ${elsewhere}`,
      });
    default:
      return new JarvisError('STORAGE_FAILED', `cannot write ${path}: too many open files (${errno})`, {
        cause: e, hint: 'raise the open-file limit (ulimit -n) or run fewer jarvis-db processes at once, then try again',
      });
  }
}

/** Runs a write of `path`, turning its file-system failures into storageFailure's errors. */
export async function writingStorage<T>(path: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    throw await storageFailure(e, path);
  }
}
