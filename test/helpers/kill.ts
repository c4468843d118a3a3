/**
 * kill -9 of a real backup at a chosen moment (docs/architecture.md §4 rule 1), for the kill tests of
 * every driver. The child runs the compiled `createBackup` (build first: `npm run build`) in its
 * own process group, so that the tools it starts (pg_dump) die with it. A moment is a pause
 * point (the child stops there, via JARVIS_DB_TEST_PAUSE_AT, and says so on stderr) or a delay.
 */
import { spawn } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Desired } from '../../src/config/types.js';

export interface Moment { pause?: string; delayMs?: number }
export interface KillOutcome {
  /** The child finished the backup before the kill. */
  completed: boolean;
  /** The child reached the pause point (always false for a delay). */
  paused: boolean;
}

export function describeMoment(m: Moment): string {
  return m.pause ? `paused at ${m.pause}` : `after ${m.delayMs} ms`;
}

/** Pause points first, then delays, as moments. */
export function moments(pausePoints: readonly string[], delaysMs: readonly number[]): Moment[] {
  return [...pausePoints.map((pause) => ({ pause })), ...delaysMs.map((delayMs) => ({ delayMs }))];
}

/** Writes the child script into `dir` and returns a function that kills a backup of `desired.backups[0]` at a moment. */
export async function backupKiller(dir: string): Promise<(desired: Desired, moment: Moment) => Promise<KillOutcome>> {
  const child = join(dir, 'backup-child.mjs');
  const operations = new URL('../../dist/backup/operations.js', import.meta.url).pathname;
  await writeFile(child, `
    import { createBackup } from ${JSON.stringify(operations)};
    const desired = JSON.parse(process.argv[2]);
    await createBackup(desired, desired.backups[0], process.env);
    process.stderr.write('jarvis-db: done\\n');
  `);
  return async (desired, moment) => {
    const proc = spawn(process.execPath, [child, JSON.stringify(desired)], {
      env: { ...process.env, JARVIS_DB_TEST_PAUSE_AT: moment.pause ?? '' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true,
    });
    let stderr = '';
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    await new Promise<void>((resolve) => {
      proc.stderr!.on('data', (d: Buffer) => {
        stderr += d;
        if (moment.pause && stderr.includes(`test pause at ${moment.pause}`)) resolve();
      });
      if (moment.delayMs !== undefined) setTimeout(resolve, moment.delayMs);
      proc.on('exit', () => resolve());
    });
    try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* already gone */ }
    await exited;
    return { completed: stderr.includes('jarvis-db: done'), paused: Boolean(moment.pause) && stderr.includes(`test pause at ${moment.pause}`) };
  };
}

/** The hidden work dirs (debris) of one schedule's directory. */
export async function hiddenDirs(storage: string, service: string, schedule: string): Promise<string[]> {
  return (await readdir(join(storage, service, schedule)).catch(() => [] as string[])).filter((n) => n.startsWith('.'));
}
