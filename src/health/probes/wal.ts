/**
 * PITR (services.postgres.pitr.enabled): the `wal.*` samples (src/wal/findings.ts `walSamples`)
 * from the server's facts (one query), each repository's WAL listing and the catalog's base
 * backups (the window's start). Read-only.
 */
import type { Desired } from '../../config/types.js';
import { messageOf } from '../../errors.js';
import { openRepositories } from '../../storage/repositories.js';
import type { Sample } from '../samples.js';

export async function probeWal(desired: Desired, now: Date, env: NodeJS.ProcessEnv = process.env): Promise<Sample[]> {
  const pg = desired.services.postgres!;
  const pitr = pg.pitr!;
  const { observeWalArchives, observeWalServer } = await import('../../wal/observe.js');
  const { walSamples } = await import('../../wal/findings.js');
  const { windowsOf } = await import('../../wal/status.js');
  const { scanStorage } = await import('../../backup/catalog.js');
  const repositories = openRepositories(desired, env);
  const [server, archives, windows] = await Promise.all([
    observeWalServer(pg.url, pitr.slot),
    observeWalArchives(repositories.slice(0, 1)),
    scanStorage(repositories).then((scan) => windowsOf(repositories, scan.valid)).catch((e: unknown) => repositories.map((r) => ({ repository: r.name, windows: [], lastArchivedAt: null, error: messageOf(e) }))),
  ]);
  return walSamples({
    pitr, server, first: archives[0], now,
    windows: windows.map((w) => ({ repository: w.repository, from: w.windows.map((x) => x.from).sort()[0] ?? null, ...(w.error ? { error: w.error } : {}) })),
  });
}
