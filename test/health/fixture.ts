/** Shared pieces of the health tests: a minimal Desired, and `jarvis-db alerts` run on the root config. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Desired } from '../../src/config/types.js';

export const ROOT = new URL('../..', import.meta.url).pathname;

/** `jarvis-db alerts SUBCOMMAND -c jarvis-db.yaml` in the repository root, the three service URLs set (the examples are made so). */
export function alertsFromRootConfig(subcommand: 'rules' | 'dashboard'): { status: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, JARVIS_PG_URL: 'postgres://jarvis@localhost/jarvis', JARVIS_REDIS_URL: 'redis://localhost:6379', JARVIS_CHROMA_URL: 'http://localhost:8000' };
  delete env.JARVIS_DB_CONFIG;
  return spawnSync(process.execPath, [join(ROOT, 'bin/jarvis-db.js'), 'alerts', subcommand, '-c', 'jarvis-db.yaml'], { cwd: ROOT, env, encoding: 'utf8' });
}

export function desiredFor(overrides: Partial<Desired> = {}): Desired {
  return {
    version: 1, project: 'jarvis', configFile: '/x/jarvis-db.yaml', configHash: 'h', services: {}, storage: { path: '/x/backups' },
    backups: [], retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 30 * 86_400 }, journal: { keepSeconds: 90 * 86_400 },
    ...overrides,
  };
}
