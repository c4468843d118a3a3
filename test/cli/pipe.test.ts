/** The CLI's output read by a program that stops early (`jarvis-db … | head -1`). */
import t from 'tap';
import { spawn } from 'node:child_process';
import { BIN, cliEnv } from '../engine/fixtures/cli.js';
import { catalogWithSealedBackups, SEALED_KEY_ENV } from './fixtures/catalog.js';

/** Runs the CLI with its stdout closed before it writes: its first write meets EPIPE. */
async function withClosedStdout(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d; });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stderr };
}

t.test('a reader that closes the pipe early: no EPIPE stack trace, exit 0 for a command that succeeds', async (t) => {
  const r = await withClosedStdout(['--help']);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, /EPIPE|Unhandled 'error' event|\n\s+at /);
});

t.test('the command goes on without its output, and its exit code is still its outcome', async (t) => {
  // Two backups that cannot be verified without the key: the first result line meets the closed pipe.
  const { config } = await catalogWithSealedBackups(t.testdir());
  const r = await withClosedStdout(['backup', 'verify', '--all'], { JARVIS_DB_CONFIG: config, [SEALED_KEY_ENV]: undefined });
  t.equal(r.code, 1, `exit 1: the verification failed, whoever reads it ${r.stderr}`);
  t.notMatch(r.stderr, /EPIPE|\n\s+at /);
});
