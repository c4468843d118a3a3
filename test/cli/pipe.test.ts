/** The CLI's output read by a program that stops early (`jarvis-db … | head -1`). */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { EncryptionSession, KeyRing } from '../../src/storage/crypto.js';
import { BIN, cliEnv, writeConfig } from '../engine/fixtures/cli.js';
import { publishBackup } from './fixtures/catalog.js';

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
  const dir = t.testdir();
  const config = await writeConfig(dir, [
    'version: 1',
    'services: { redis: { url: "redis://127.0.0.1:1/0" } }',
    'storage: { path: ./backups, encryption: { passphraseEnv: JARVIS_TEST_BACKUP_KEY } }',
    'backups:',
    '  - { name: redis-daily, service: redis, cron: "0 4 * * *", keep: { last: 2 } }',
  ]);
  const sealed = new EncryptionSession(new KeyRing('the passphrase of these backups', 'test'));
  // Two backups that cannot be verified without the key: the first result line meets the closed pipe.
  for (const day of [20, 21]) await publishBackup(join(dir, 'backups'), 'redis', 'redis-daily', new Date(Date.UTC(2026, 10, day, 4)), sealed);
  const r = await withClosedStdout(['backup', 'verify', '--all'], { JARVIS_DB_CONFIG: config, JARVIS_TEST_BACKUP_KEY: undefined });
  t.equal(r.code, 1, `exit 1: the verification failed, whoever reads it ${r.stderr}`);
  t.notMatch(r.stderr, /EPIPE|\n\s+at /);
});
