/**
 * Processes on this machine: whether a pid is alive, and stopping one politely then firmly.
 * Used wherever ownership is decided by liveness (backup debris, the apply lock, the sandbox),
 * and to start every external tool so that it cannot outlive jarvis-db.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** True while a process with this pid exists (EPERM: it exists but belongs to another user). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `pid` is gone or `timeoutMs` passes; true when it is gone. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Sends each signal in turn, waiting `graceMs` after each, until the process is gone;
 * SIGKILL last. Returns once it has exited.
 */
export async function stopProcess(pid: number, signals: NodeJS.Signals[] = ['SIGTERM'], graceMs = 10_000): Promise<void> {
  for (const sig of signals) {
    if (!isAlive(pid)) return;
    signal(pid, sig);
    if (await waitForExit(pid, graceMs)) return;
  }
  signal(pid, 'SIGKILL');
  await waitForExit(pid, 5_000);
}

/* ---------------------------------------------------------------- external tools */

/**
 * The shell between jarvis-db and a tool. setpriv gives it PR_SET_PDEATHSIG=TERM, so the kernel
 * sends it SIGTERM when jarvis-db dies, even by SIGKILL; its trap then kills its whole process
 * group (the tool and the tool's own workers, e.g. pg_restore -j: a death signal is not inherited
 * across fork). The PPID check closes the race of a parent that died before setpriv set it.
 * Fd 3 keeps the tool's stdin: an asynchronous list would otherwise read /dev/null.
 */
const GUARD = 'trap "kill -KILL 0" TERM; [ "$PPID" = "$1" ] || exit 137; shift; exec 3<&0; "$@" <&3 3<&- & wait $!';
/** The guard's $0: how a leftover guard is recognised in the process table. */
const GUARD_NAME = 'jarvis-db-tool-guard';

function executableOnPath(command: string, path: string | undefined): string | null {
  const candidates = command.includes('/') ? [command] : (path ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not this one
    }
  }
  return null;
}

let setprivPath: string | null | undefined;

/**
 * Spawns an external tool (pg_dump, pg_restore, redis-check-rdb, git...) so that it dies with
 * jarvis-db, whatever kills jarvis-db (see GUARD). `child.pid` is the guard's, the leader of
 * the tool's process group. Without setpriv (not Linux), or when the tool is not found (the
 * caller then gets the spawn's own ENOENT), it is a plain spawn.
 */
export function spawnTool(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  if (setprivPath === undefined) setprivPath = process.platform === 'linux' ? executableOnPath('setpriv', process.env.PATH) : null;
  const env = options.env ?? process.env;
  if (!setprivPath || !executableOnPath(command, env.PATH)) return spawn(command, args, options);
  return spawn(setprivPath, ['--pdeathsig', 'TERM', '--', 'sh', '-c', GUARD, GUARD_NAME, String(process.pid), command, ...args], { ...options, detached: true });
}

/** Runs a tool to the end and collects its output (stdout, stderr as text). */
export function runToolToEnd(command: string, args: readonly string[], options: SpawnOptions = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnTool(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr }));
  });
}

/** A tool's guard still running: `orphaned` when the jarvis-db that started it is gone. */
export interface ToolGuard { pid: number; tool: string; parentPid: number; orphaned: boolean }

/** The tool guard with this pid, if that pid is one (Linux: read from /proc; elsewhere null). */
export function toolGuard(pid: number): ToolGuard | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let argv: string[];
  let stat: string;
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const at = argv.indexOf(GUARD_NAME);
  if (at < 0 || argv[at - 1] !== GUARD) return null;
  const parentPid = Number(argv[at + 1]);
  // The field after the parenthesised command name: state, then ppid.
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return { pid, tool: argv[at + 2] ?? '', parentPid, orphaned: ppid !== parentPid || !isAlive(parentPid) };
}

/** Kills a tool guard's whole process group and waits for the guard to be gone. */
export async function stopToolGroup(pid: number): Promise<boolean> {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
  return waitForExit(pid, 5_000);
}
