/**
 * Processes on this machine: whether a pid is alive, and stopping one politely then firmly.
 * Used wherever ownership is decided by liveness (backup debris, the apply lock, the sandbox).
 */

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
