/** Shared pieces of the health tests: a minimal Desired. */
import type { Desired } from '../../src/config/types.js';

export function desiredFor(overrides: Partial<Desired> = {}): Desired {
  return {
    version: 1, project: 'jarvis', configFile: '/x/jarvis-db.yaml', configHash: 'h', services: {}, storage: { path: '/x/backups' },
    backups: [], retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 30 * 86_400 }, journal: { keepSeconds: 90 * 86_400 },
    ...overrides,
  };
}
