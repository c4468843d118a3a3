/** The CLI's output read by a program that stops early (`jarvis-db --help | head -1`). */
import t from 'tap';
import { spawn } from 'node:child_process';
import { BIN, cliEnv } from '../engine/fixtures/cli.js';

t.test('a reader that closes the pipe early stops the CLI quietly: exit 0, no EPIPE stack trace', async (t) => {
  const child = spawn(process.execPath, [BIN, '--help'], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  // Close our end before the child writes: its first write to stdout meets EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d; });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.equal(code, 0, stderr);
  t.notMatch(stderr, /EPIPE|Unhandled 'error' event|\n\s+at /);
});
