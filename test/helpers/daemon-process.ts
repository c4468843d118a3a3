/**
 * `jarvis-db daemon` as a real process (the compiled CLI: build first) for the integration
 * tests: its JSON log lines as they come, a hook that sees each line the moment it is read (to
 * send a signal at a known point, no sleeps racing), and a wait for a condition on the log.
 */
import { spawn } from 'node:child_process';
import type { SandboxState } from '../../src/sandbox/index.js';
import { sandboxEnv } from '../../src/sandbox/index.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;

export type LogLine = Record<string, unknown> & { event?: string };

interface Teardownable { teardown(fn: () => unknown): void }

export interface DaemonProcessOptions {
  config: string;
  port: number;
  state: SandboxState;
  env?: NodeJS.ProcessEnv;
  /** Each JSON log line of stdout, as soon as it is read. */
  onLine?: (line: LogLine, signal: (s: NodeJS.Signals) => void) => void;
  /** Each text line of stderr (such as `jarvis-db: test pause at …`), as soon as it is read. */
  onStderrLine?: (line: string, signal: (s: NodeJS.Signals) => void) => void;
  /** The host to listen on (default 127.0.0.1), and more daemon flags. */
  host?: string;
  args?: string[];
}

export function startDaemon(t: Teardownable, options: DaemonProcessOptions) {
  const daemon = spawn(process.execPath, [BIN, '-c', options.config, 'daemon', '--listen', `${options.host ?? '127.0.0.1'}:${options.port}`, ...(options.args ?? [])], {
    env: { ...process.env, ...sandboxEnv(options.state), ...options.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let partial = '';
  let stderr = '';
  const signal = (s: NodeJS.Signals) => { daemon.kill(s); };
  daemon.stdout.on('data', (c: Buffer) => {
    partial += c;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const p of parts) {
      if (!p.trim()) continue;
      const line = JSON.parse(p) as LogLine;
      lines.push(line);
      options.onLine?.(line, signal);
    }
  });
  let stderrPartial = '';
  daemon.stderr.on('data', (c: Buffer) => {
    stderr += c;
    stderrPartial += c;
    const parts = stderrPartial.split('\n');
    stderrPartial = parts.pop()!;
    for (const p of parts) options.onStderrLine?.(p, signal);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => daemon.on('exit', (code, sig) => resolve({ code, signal: sig })));
  t.teardown(() => { if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL'); });
  const running = () => daemon.exitCode === null && daemon.signalCode === null;
  /** Polls the log (every 100 ms) until `test` holds; fails at once if the daemon exits. */
  const until = async (what: string, test: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!test()) {
      if (Date.now() > end || !running()) throw new Error(`waiting for ${what}: exit ${daemon.exitCode ?? daemon.signalCode}; ${stderr}; log: ${JSON.stringify(lines.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { lines, until, exited, signal, running, stderr: () => stderr, pid: daemon.pid! };
}
