/**
 * The contract between the service-agnostic backup code (storage, catalog, operations) and
 * one driver per service (`backup/<service>/driver.ts`). The registry that loads them is
 * `drivers.ts`, so that a driver can import this contract without an import circle.
 */
import type { BackupSchedule, Desired, ServiceName } from '../config/types.js';
import type { Progress } from '../engine/types.js';
import type { KeyRing } from '../storage/crypto.js';
import type { BackupWriter, CatalogEntry, ManifestFields } from './storage.js';

export interface DriverContext {
  desired: Desired;
  env: NodeJS.ProcessEnv;
  progress: Progress;
  /** Present when storage.encryption is configured (needed to read encrypted backups). */
  keyRing: KeyRing | null;
  /** Aborted when the backup is to stop (SIGTERM): tools are killed, streams destroyed. */
  signal?: AbortSignal;
}

export interface RestoreOptions {
  /** postgres: the database to restore into (default `<db>_restore_<id>`). */
  target?: string;
  /** Restore onto a non-empty target (destructive). */
  force: boolean;
  jobs?: number;
  /** chroma (logical): restore only this collection of the backup. */
  collection?: string;
  /** chroma (logical): the name to restore the one chosen collection under. */
  as?: string;
  /** chroma (physical): the data directory to write (default services.chroma.path; the server must be stopped). */
  targetDir?: string;
  /** redis: empty the target (FLUSHALL for an RDB, FLUSHDB of the covered databases for a logical backup) first (destructive). */
  flush?: boolean;
}

export interface RestoreResult {
  /** Where it went, for the summary line. */
  target: string;
  summary: string;
  details: Record<string, unknown>;
}

export interface BackupDriver {
  service: ServiceName;
  /** Writes the backup's files through `writer`; returns the manifest fields it knows. */
  create(schedule: BackupSchedule, ctx: DriverContext, writer: BackupWriter): Promise<ManifestFields>;
  restore(entry: CatalogEntry, ctx: DriverContext, options: RestoreOptions): Promise<RestoreResult>;
  /** Restores into a scratch place, compares with what the manifest recorded, cleans up. */
  restoreTest(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }>;
  /** Optional: re-reads the stored data and checks its own integrity (redis: an RDB's CRC64, redis-check-rdb), after the checksums. */
  checkContent?(entry: CatalogEntry, ctx: DriverContext): Promise<{ ok: boolean; message: string }>;
  /** Optional: whether checkContent has anything to check in this backup (default: yes; a pg_dump archive: no, and needs no key). */
  checksContent?(entry: CatalogEntry): boolean;
}

export const silentProgress: Progress = { note: () => undefined, update: () => undefined };
