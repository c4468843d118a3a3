/**
 * Point-in-time recovery (docs/disaster-recovery.md, "Point-in-time recovery"): restore points,
 * and the recovery settings written into a restored physical base backup so that a stock
 * `pg_ctl start` replays the archived WAL (through `jarvis-db wal fetch`) up to the target.
 */
import type { Desired } from '../config/types.js';
import { JarvisError } from '../errors.js';

/** pg_create_restore_point(name) on the configured server; its LSN. */
export async function createRestorePoint(desired: Desired, name: string): Promise<string> {
  if (!desired.services.postgres) throw new JarvisError('USAGE', `${desired.configFile} configures no services.postgres`);
  if (name.length === 0 || name.length > 63) throw new JarvisError('USAGE', 'a restore point name has 1 to 63 characters');
  const { connectPostgres } = await import('../services/postgres.js');
  const client = await connectPostgres(desired.services.postgres.url, { applicationName: 'jarvis-db restore-point' });
  try {
    const r = await client.query<{ lsn: string }>('SELECT pg_create_restore_point($1)::text AS lsn', [name]);
    return r.rows[0]!.lsn;
  } finally {
    await client.end().catch(() => undefined);
  }
}
