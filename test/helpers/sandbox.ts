/**
 * The integration tests' servers: a sandbox of the project's own (src/sandbox) in a fresh
 * temporary directory per test, stopped and removed at teardown even when the test fails, and
 * stopped by the sandbox's watchdog if the test process dies before its teardown runs.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSandbox, stopSandbox, type SandboxService, type SandboxState } from '../../src/sandbox/index.js';

export type { SandboxService, SandboxState } from '../../src/sandbox/index.js';

interface Teardownable { teardown(fn: () => unknown): void }

export async function withSandbox(t: Teardownable, services: readonly SandboxService[] = ['postgres', 'redis', 'chroma']): Promise<SandboxState> {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-test-'));
  // mkdtemp makes it 0700; the postgres user must reach the cluster directory inside.
  await chmod(dir, 0o755);
  t.teardown(async () => {
    await stopSandbox(dir);
    await rm(dir, { recursive: true, force: true });
  });
  return startSandbox({ dir, services, ownerPid: process.pid });
}
