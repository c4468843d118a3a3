/**
 * The driver registry: one case per service. Drivers are loaded lazily, so `driverFor('postgres')`
 * imports pg only when a PostgreSQL backup runs (docs/architecture.md §5).
 */
import type { ServiceName } from '../config/types.js';
import { JarvisError } from '../errors.js';
import type { BackupDriver } from './driver.js';

export async function driverFor(service: ServiceName): Promise<BackupDriver> {
  switch (service) {
    case 'postgres':
      return (await import('./postgres/driver.js')).postgresDriver;
    case 'chroma':
      return (await import('./chroma/driver.js')).chromaDriver;
    case 'redis':
      return (await import('./redis/driver.js')).redisDriver;
    default:
      throw new JarvisError('NOT_IMPLEMENTED', `backups of ${service} are not built yet`);
  }
}
