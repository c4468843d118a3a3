/**
 * The mark a restore leaves on its target until the restore has verified (PostgreSQL: the
 * database's comment; Redis: a key), so that a restore killed half-way leaves a target that
 * says what it is. Written before the first byte of data, cleared after verification; both are
 * single committed writes, which a kill -9 of jarvis-db cannot undo.
 */
import { JarvisError } from '../errors.js';
import { stopToolGroup, toolGuard } from '../platform/processes.js';

export interface RestoreMarker {
  backup: string;
  startedAt: string;
  /** The jarvis-db process that started the restore. */
  pid: number;
  /** The guard of the tool writing into the target (pg_restore), once started. */
  toolPid?: number;
  /** postgres: the restore created the database (so --force may drop it and start over). */
  created?: boolean;
  /** postgres: the database's comment before the restore, put back after it. */
  previousComment?: string | null;
}

const PREFIX = 'jarvis-db: incomplete restore ';

/** Pure: the marker as text (a comment, a key's value). */
export function markerText(marker: RestoreMarker): string {
  return PREFIX + JSON.stringify(marker);
}

/** Pure: the marker in a text, or null when the text is not one. */
export function parseMarker(text: string | null | undefined): RestoreMarker | null {
  if (!text?.startsWith(PREFIX)) return null;
  try {
    const m = JSON.parse(text.slice(PREFIX.length)) as Partial<RestoreMarker>;
    if (typeof m.backup !== 'string' || typeof m.startedAt !== 'string' || typeof m.pid !== 'number') return null;
    return m as RestoreMarker;
  } catch {
    return null;
  }
}

/** Pure: the refusal of a restore onto the leftover of an interrupted one. */
export function leftoverRefusal(target: string, marker: RestoreMarker): JarvisError {
  return new JarvisError('RESTORE_REFUSED', `${target} is the leftover of an interrupted restore of ${marker.backup} started at ${marker.startedAt}; re-run with --force to replace it`);
}

/**
 * A tool of the interrupted restore that is still running: stopped when the jarvis-db that
 * started it is gone (it would go on writing into the target); a refusal naming the pid when
 * that jarvis-db is still alive (a restore in progress, from another config). Returns the
 * pid it stopped, if any.
 */
export async function stopLeftoverTool(target: string, marker: RestoreMarker): Promise<number | null> {
  const guard = marker.toolPid === undefined ? null : toolGuard(marker.toolPid);
  if (!guard) return null;
  if (!guard.orphaned) {
    throw new JarvisError('RESTORE_REFUSED', `${target} is being restored right now from ${marker.backup} by jarvis-db pid ${guard.parentPid} (${guard.tool} pid ${guard.pid}), started at ${marker.startedAt}`, {
      hint: `wait for it to finish, or stop pid ${guard.parentPid}`,
    });
  }
  if (!(await stopToolGroup(guard.pid))) {
    throw new JarvisError('RESTORE_REFUSED', `${target}: ${guard.tool} pid ${guard.pid} of an interrupted restore of ${marker.backup} is still running and could not be stopped`, {
      hint: `stop pid ${guard.pid} and re-run`,
    });
  }
  return guard.pid;
}
