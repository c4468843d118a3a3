/**
 * The Chroma backup driver. Two methods (the schedule's `method`):
 * - logical (default): every collection through the server's API, online (logical.ts exports, logical-restore.ts restores);
 * - physical: the data directory of a local server, a consistent copy of chroma.sqlite3 and the
 *   segment directories in a compressed tar; needs a quiet server (physical.ts).
 */
import type { BackupSchedule } from '../../config/types.js';
import { JarvisError } from '../../errors.js';
import { DEFAULT_DATABASE, DEFAULT_TENANT, chromaService } from '../../services/chroma.js';
import { exportCollections, BROTLI_QUALITY } from './logical.js';
import { restoreLogical, restoreTestLogical } from './logical-restore.js';
import type { BackupDriver, DriverContext, RestoreOptions, RestoreResult } from '../driver.js';
import type { BackupWriter, CatalogEntry, ManifestFields } from '../storage.js';

async function create(schedule: BackupSchedule, ctx: DriverContext, writer: BackupWriter): Promise<ManifestFields> {
  const service = chromaService(ctx.desired);
  if (schedule.method === 'physical') {
    const physical = await import('./physical.js');
    return physical.createPhysical(service, writer, ctx.progress, ctx.env);
  }
  const result = await exportCollections(service, writer, ctx.progress, ctx.env);
  return {
    method: 'logical',
    format: 'jsonl',
    serverVersion: result.serverVersion,
    compression: `brotli:${BROTLI_QUALITY}`,
    extra: {
      tenant: service.tenant ?? DEFAULT_TENANT,
      database: service.database ?? DEFAULT_DATABASE,
      collections: result.collections,
      records: result.records,
      rawEmbeddingBytes: result.rawEmbeddingBytes,
    },
  };
}

function checkOptions(entry: CatalogEntry, options: RestoreOptions): void {
  const physical = entry.manifest.method === 'physical';
  if (physical && (options.collection !== undefined || options.as !== undefined)) {
    throw new JarvisError('USAGE', `backup ${entry.manifest.id} is a physical copy of a data directory: it restores whole (no --collection / --as)`);
  }
  if (!physical && options.targetDir !== undefined) {
    throw new JarvisError('USAGE', `backup ${entry.manifest.id} is a logical backup: it restores through the server (--target-dir is for physical backups)`);
  }
}

async function restore(entry: CatalogEntry, ctx: DriverContext, options: RestoreOptions): Promise<RestoreResult> {
  checkOptions(entry, options);
  const service = chromaService(ctx.desired);
  if (entry.manifest.method === 'physical') {
    const physical = await import('./physical.js');
    return physical.restorePhysical(entry, service, ctx, options);
  }
  const local = await entry.store.openLocalDirectory(entry.key);
  try {
    return await restoreLogical(local.path, entry.manifest.id, entry.manifest.extra, service, ctx.keyRing, ctx.progress, options);
  } finally {
    await local.release();
  }
}

async function restoreTest(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }> {
  const service = chromaService(ctx.desired);
  if (entry.manifest.method === 'physical') {
    const physical = await import('./physical.js');
    return physical.restoreTestPhysical(entry, ctx);
  }
  const local = await entry.store.openLocalDirectory(entry.key);
  try {
    return await restoreTestLogical(local.path, entry.manifest.id, entry.manifest.extra, service, ctx.keyRing, ctx.progress);
  } finally {
    await local.release();
  }
}

export const chromaDriver: BackupDriver = { service: 'chroma', create, restore, restoreTest };
