/**
 * What the CLI and the engine's handlers do with backups, for any service: create (through
 * the service's driver and BackupWriter), verify (checksums, optionally a restore test),
 * restore (checksums first: a damaged backup is refused without force), prune one backup, and
 * the keep decisions (`backup prune` plans from them: src/backup/commands.ts).
 */
import type { BackupSchedule, Desired, ServiceName } from '../config/types.js';
import type { Progress } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { formatBytes, plural } from '../render/format.js';
import { findBackup, listBackups, recordVerification, verifyChecksums, type CatalogEntry } from './catalog.js';
import { EncryptionSession, keyRingFromEnv, type KeyRing } from '../storage/crypto.js';
import { silentProgress, type DriverContext, type RestoreOptions, type RestoreResult } from './driver.js';
import { driverFor } from './drivers.js';
import { applyKeepRules, type KeepDecision } from './keep.js';
import { BackupWriter, cleanDebris, deleteBackup } from './storage.js';

export function keyRingFor(desired: Desired, env: NodeJS.ProcessEnv): KeyRing | null {
  const enc = desired.storage.encryption;
  return enc ? keyRingFromEnv(enc.passphraseEnv, env) : null;
}

function context(desired: Desired, env: NodeJS.ProcessEnv, progress: Progress, needKey: boolean): DriverContext {
  return { desired, env, progress, keyRing: needKey ? keyRingFor(desired, env) : null };
}

export function scheduleByName(desired: Desired, name: string): BackupSchedule {
  const s = desired.backups.find((b) => b.name === name);
  if (!s) {
    throw new JarvisError('USAGE', `no backup schedule named "${name}" in ${desired.configFile}`, {
      hint: desired.backups.length ? `schedules: ${desired.backups.map((b) => b.name).join(', ')}` : 'add one under `backups:`',
    });
  }
  return s;
}

/** Creates one backup for a schedule. Cleans up the debris of killed runs first. */
export async function createBackup(desired: Desired, schedule: BackupSchedule, env: NodeJS.ProcessEnv, progress: Progress = silentProgress, now = new Date()): Promise<CatalogEntry> {
  await cleanDebris(desired.storage.path);
  const driver = await driverFor(schedule.service);
  const ring = keyRingFor(desired, env);
  const writer = await BackupWriter.begin({
    storagePath: desired.storage.path, service: schedule.service, schedule: schedule.name, now,
    encryption: ring ? new EncryptionSession(ring) : null, env,
  });
  try {
    const fields = await driver.create(schedule, { desired, env, progress, keyRing: ring }, writer);
    return await writer.publish(fields);
  } catch (e) {
    await writer.abort().catch(() => undefined);
    if (e instanceof JarvisError) throw e;
    throw new JarvisError('BACKUP_FAILED', `backup of ${schedule.name} failed: ${(e as Error).message}`, { cause: e });
  }
}

export interface VerifyResult { entry: CatalogEntry; ok: boolean; message: string; how: 'checksum' | 'restore'; badFiles: string[] }

/** Checksums of every file (naming the bad ones); with restoreTest, a restore into a scratch place. Recorded in the manifest. */
export async function verifyBackup(desired: Desired, entry: CatalogEntry, options: { restoreTest: boolean; env: NodeJS.ProcessEnv; progress?: Progress; now?: () => Date }): Promise<VerifyResult> {
  const progress = options.progress ?? silentProgress;
  const total = entry.manifest.files.length;
  let n = 0;
  const sums = await verifyChecksums(entry, (name) => { progress.update(++n, total); progress.note(`checked ${name}`); });
  let ok = sums.ok;
  let how: 'checksum' | 'restore' = 'checksum';
  let message = ok
    ? `${plural(total, 'file')}, ${formatBytes(entry.manifest.totalBytes)}: checksums match`
    : `damaged: ${sums.bad.map((b) => `${b.name} (${b.problem})`).join(', ')}`;
  const driver = ok ? await driverFor(entry.manifest.service) : null;
  if (ok && driver?.checkContent && driver.checksContent?.(entry) !== false) {
    const c = await driver.checkContent(entry, context(desired, options.env, progress, entry.manifest.encrypted));
    ok = c.ok;
    message = ok ? `${message}; ${c.message}` : `content check failed: ${c.message}`;
  }
  if (ok && driver && options.restoreTest) {
    how = 'restore';
    const r = await driver.restoreTest(entry, context(desired, options.env, progress, entry.manifest.encrypted));
    ok = r.ok;
    message = ok ? `checksums match; ${r.message}` : `restore test failed: ${r.message}`;
  }
  const at = (options.now ?? (() => new Date()))().toISOString();
  const updated = await recordVerification(entry, { at, how, ok, message });
  return { entry: updated, ok, message, how, badFiles: sums.bad.map((b) => b.name) };
}

/** The restore flags each service understands; any other one is a usage error, never silently ignored. */
const RESTORE_FLAGS: { option: keyof RestoreOptions; flag: string; services: readonly ServiceName[] }[] = [
  { option: 'target', flag: '--target-db', services: ['postgres'] },
  { option: 'flush', flag: '--flush', services: ['redis'] },
  { option: 'collection', flag: '--collection', services: ['chroma'] },
  { option: 'as', flag: '--as', services: ['chroma'] },
  { option: 'targetDir', flag: '--target-dir', services: ['chroma', 'postgres'] },
];

/** Pure: refuses restore flags that do not apply to the backup's service. */
export function checkRestoreFlags(service: ServiceName, options: Partial<RestoreOptions>): void {
  for (const { option, flag, services } of RESTORE_FLAGS) {
    const value = options[option];
    if (value === undefined || value === false) continue;
    if (!services.includes(service)) {
      throw new JarvisError('USAGE', `${flag} is for ${services.join(' and ')} backups; this is a ${service} backup`);
    }
  }
}

/** Restores a backup; refuses a backup whose checksums fail unless forced. */
export async function restoreBackup(desired: Desired, id: string, options: Omit<RestoreOptions, 'jobs'> & { env: NodeJS.ProcessEnv; progress?: Progress }): Promise<RestoreResult> {
  const entry = await findBackup(desired.storage.path, id);
  checkRestoreFlags(entry.manifest.service, options);
  const progress = options.progress ?? silentProgress;
  progress.note(`checking ${plural(entry.manifest.files.length, 'file')} of ${entry.manifest.id}`);
  const sums = await verifyChecksums(entry);
  if (!sums.ok && !options.force) {
    throw new JarvisError('RESTORE_REFUSED', `backup ${entry.manifest.id} is damaged: ${sums.bad.map((b) => `${b.name} (${b.problem})`).join(', ')}`, {
      hint: 'restore another backup, or pass --force to try this one anyway',
    });
  }
  if (!sums.ok) progress.note(`warning: --force: restoring ${entry.manifest.id} although ${sums.bad.map((b) => b.name).join(', ')} fail their checksums`);
  const driver = await driverFor(entry.manifest.service);
  const { env, progress: _progress, ...restoreOptions } = options;
  return driver.restore(entry, context(desired, env, progress, entry.manifest.encrypted), restoreOptions);
}

/**
 * Pure: keep decisions for every configured schedule. Backups of schedules that are no longer
 * in the config are left alone (never pruned by rules that do not exist).
 */
export function keepDecisions(desired: Desired, catalog: { id: string; schedule: string; service: string; startedAt: string }[]): Map<string, { schedule: BackupSchedule; decisions: KeepDecision[] }> {
  const out = new Map<string, { schedule: BackupSchedule; decisions: KeepDecision[] }>();
  for (const schedule of desired.backups) {
    const mine = catalog.filter((b) => b.schedule === schedule.name && b.service === schedule.service);
    out.set(schedule.name, { schedule, decisions: applyKeepRules(mine.map((b) => ({ id: b.id, time: b.startedAt })), schedule.keep, schedule.timezone) });
  }
  return out;
}

/** Deletes one backup by id; the last valid backup of its schedule needs allowPruneLast. */
export async function pruneOne(desired: Desired, id: string, allowLast: boolean): Promise<CatalogEntry> {
  const entry = await findBackup(desired.storage.path, id);
  const siblings = (await listBackups(desired.storage.path)).filter((e) => e.manifest.schedule === entry.manifest.schedule && e.manifest.service === entry.manifest.service);
  if (siblings.length <= 1 && !allowLast) {
    throw new JarvisError('CONFIRMATION_REQUIRED', `backup ${entry.manifest.id} is the last valid backup of ${entry.manifest.schedule}; not pruning it`, {
      hint: `set allowPruneLast: true on schedule ${entry.manifest.schedule} to allow it`,
    });
  }
  if (siblings[0]?.manifest.id === entry.manifest.id && !allowLast) {
    throw new JarvisError('CONFIRMATION_REQUIRED', `backup ${entry.manifest.id} is the newest valid backup of ${entry.manifest.schedule}; not pruning it`);
  }
  await deleteBackup(entry);
  return entry;
}
