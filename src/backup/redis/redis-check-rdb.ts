/**
 * `redis-check-rdb`, when installed: the second opinion on an RDB after the walk in rdb.ts.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawnTool } from '../../platform/processes.js';

export type CheckRdbResult =
  | { ran: false; reason: string }
  | { ran: true; ok: boolean; message: string };

/**
 * Runs `redis-check-rdb` on an RDB stream (fed through a pipe it reads as /dev/stdin, so a
 * compressed or encrypted backup needs no plain copy on disk). `ran: false` when the tool is
 * not installed. JARVIS_REDIS_CHECK_RDB names another binary.
 */
export async function runRedisCheckRdb(source: Readable, env: NodeJS.ProcessEnv = process.env): Promise<CheckRdbResult> {
  const tool = env.JARVIS_REDIS_CHECK_RDB || 'redis-check-rdb';
  // Node's stdio "pipe" is a socket, which /dev/stdin cannot be opened on: cat relays into a real pipe.
  const child = spawnTool('sh', ['-c', 'command -v "$0" >/dev/null 2>&1 || exit 127; cat | "$0" /dev/stdin', tool], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  const collect = (d: Buffer) => { output = (output + d.toString('utf8')).slice(-8192); };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<{ code: number | null; error?: NodeJS.ErrnoException }>((resolve) => {
    child.on('error', (error: NodeJS.ErrnoException) => resolve({ code: null, error }));
    child.on('close', (code) => resolve({ code }));
  });
  // The tool stops reading at the first error: a broken pipe then is its verdict, not ours.
  const fed = pipeline(source, child.stdin!).catch((e: NodeJS.ErrnoException) => e);
  const [result, feedError] = await Promise.all([exited, fed]);
  if (result.error || result.code === 127) {
    source.destroy();
    if (result.code === 127) return { ran: false, reason: `${tool} is not installed` };
    return { ran: false, reason: `${tool} could not run: ${result.error!.message}` };
  }
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  if (result.code === 0) {
    const keys = lines.find((l) => /keys read/.test(l));
    return { ran: true, ok: true, message: `redis-check-rdb: RDB looks OK${keys ? ` (${keys.replace(/^\[[^\]]*\]\s*/, '')})` : ''}` };
  }
  if (feedError && (feedError as NodeJS.ErrnoException).code !== 'EPIPE' && !/EPIPE|write after end|premature/i.test(String(feedError))) {
    throw feedError;
  }
  const reason = lines.filter((l) => /error|corrupt|unexpected|wrong|fail/i.test(l)).slice(0, 2).join(' | ') || lines.slice(-2).join(' | ');
  return { ran: true, ok: false, message: `redis-check-rdb: ${reason.replace(/^--- /, '')}` };
}
