/**
 * What the CLI and the engine's handlers do with backups, for any service: create (through
 * the service's driver and BackupWriter), verify (checksums, optionally a restore test),
 * restore (checksums first: a damaged backup is refused without force), prune one backup, and
 * the keep decisions (`backup prune` plans from them: src/backup/commands.ts).
 */
import type { BackupSchedule, Desired, ServiceName } from '../config/types.js';
import type { Progress } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { formatBytes, plural } from '../render/format.js';
import { findBackup, findBackupCopies, listBackups, readManifest, recordVerification, verifyChecksums, type CatalogEntry } from './catalog.js';
import { mapLimit } from '../platform/concurrency.js';
import { openRepositories, repositoryNamed, type Repository } from '../storage/repositories.js';
import { testPausePoint } from '../storage/durable.js';
import { EncryptionSession, keyRingFromEnv, type KeyRing } from '../storage/crypto.js';
import { silentProgress, type DriverContext, type RestoreOptions, type RestoreResult } from './driver.js';
import { driverFor } from './drivers.js';
import { applyKeepRules, type KeepDecision } from './keep.js';
import { BackupWriter, MANIFEST, backupKey, backupStore, cleanDebris, deleteBackup } from './storage.js';

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

/**
 * The repositories of `desired`, in order, or the one `name` names (an unknown name is a usage
 * error listing them): where `--repository NAME` reads.
 */
export function repositoriesFor(desired: Desired, name?: string, env: NodeJS.ProcessEnv = process.env): Repository[] {
  const all = openRepositories(desired, env);
  return name === undefined ? all : [repositoryNamed(all, name)];
}

/**
 * Creates one backup for a schedule, in the first repository (or the one named: the first one
 * that answered when the plan was made). Cleans up the debris of killed runs there first.
 */
export async function createBackup(desired: Desired, schedule: BackupSchedule, env: NodeJS.ProcessEnv, progress: Progress = silentProgress, now = new Date(), repositoryName?: string, signal?: AbortSignal): Promise<CatalogEntry> {
  const repository = repositoriesFor(desired, repositoryName, env)[0]!;
  await cleanDebris(repository);
  const driver = await driverFor(schedule.service);
  const ring = keyRingFor(desired, env);
  const writer = await BackupWriter.begin({
    repository, service: schedule.service, schedule: schedule.name, now,
    encryption: ring ? new EncryptionSession(ring) : null, env, ...(signal ? { signal } : {}),
  });
  try {
    const fields = await driver.create(schedule, { desired, env, progress, keyRing: ring, ...(signal ? { signal } : {}) }, writer);
    return await writer.publish(fields);
  } catch (e) {
    await writer.abort().catch(() => undefined);
    // Stopped on purpose (SIGTERM): whatever the driver saw, the backup was stopped and its staged files removed.
    if (signal?.aborted) throw new JarvisError('INTERRUPTED', `backup of ${schedule.name} stopped (${stopReason(signal)}): nothing was published, its staged files are removed`, { cause: e });
    if (e instanceof JarvisError) throw e;
    throw new JarvisError('BACKUP_FAILED', `backup of ${schedule.name} failed: ${(e as Error).message}`, { cause: e });
  }
}

/** What stopped a backup: the signal's reason when it is a name (`SIGTERM`), else "interrupted". */
function stopReason(signal: AbortSignal): string {
  return typeof signal.reason === 'string' ? signal.reason : 'interrupted';
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
    : `damaged: ${sums.bad.map((b) => `${b.name} (${b.problem})`).join(', ')} in ${entry.repository} (${entry.dir})`;
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

/**
 * Restores a backup from the first repository whose copy passes its checksums (or from the one
 * `repository` names); refuses a backup whose checksums fail everywhere unless forced.
 */
export async function restoreBackup(desired: Desired, id: string, options: Omit<RestoreOptions, 'jobs'> & { env: NodeJS.ProcessEnv; progress?: Progress; repository?: string }): Promise<RestoreResult> {
  const copies = await findBackupCopies(repositoriesFor(desired, options.repository, options.env), id);
  const first = copies[0]!;
  checkRestoreFlags(first.manifest.service, options);
  const progress = options.progress ?? silentProgress;
  let entry = first;
  let sums = { ok: false, bad: [] as { name: string; problem: string }[], bytes: 0 };
  const damaged: string[] = [];
  for (const copy of copies) {
    progress.note(`checking ${plural(copy.manifest.files.length, 'file')} of ${copy.manifest.id}${copies.length > 1 || copy.repository !== 'local' ? ` in ${copy.repository}` : ''}`);
    const result = await verifyChecksums(copy);
    if (result.ok) { entry = copy; sums = result; break; }
    if (copy === first) sums = result;
    damaged.push(`${result.bad.map((b) => `${b.name} (${b.problem})`).join(', ')} in ${copy.repository} (${copy.dir})`);
  }
  if (!sums.ok && !options.force) {
    throw new JarvisError('RESTORE_REFUSED', `backup ${first.manifest.id} is damaged: ${damaged.join('; ')}`, {
      hint: 'restore another backup, or pass --force to try this one anyway',
    });
  }
  if (!sums.ok) progress.note(`warning: --force: restoring ${entry.manifest.id} although ${sums.bad.map((b) => b.name).join(', ')} fail their checksums`);
  const driver = await driverFor(entry.manifest.service);
  const { env, progress: _progress, repository: _repository, ...restoreOptions } = options;
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

/** Deletes one backup by id in one repository (default: the first); the last valid backup of its schedule there needs allowPruneLast. */
/**
 * Deletes one backup from one repository. Never the last valid backup of its schedule there
 * unless `allowLast`, nor its newest unless `allowNewest` (the keep rules never choose it).
 */
export async function pruneOne(desired: Desired, id: string, allow: { allowLast: boolean; allowNewest: boolean; byId?: boolean }, repositoryName?: string, env: NodeJS.ProcessEnv = process.env): Promise<CatalogEntry> {
  const repository = repositoriesFor(desired, repositoryName, env)[0]!;
  const entry = await findBackup(repository, id);
  const siblings = (await listBackups(repository)).filter((e) => e.manifest.schedule === entry.manifest.schedule && e.manifest.service === entry.manifest.service);
  const where = repositoryName ? ` in ${repositoryName}` : '';
  if (siblings.length <= 1 && !allow.allowLast) {
    throw new JarvisError('CONFIRMATION_REQUIRED', `backup ${entry.manifest.id} is the last valid backup of ${entry.manifest.schedule}${where}; not ${allow.byId ? 'deleting' : 'pruning'} it`, {
      hint: allow.byId ? 'nothing would be left to restore from: pass --force to delete it anyway' : `set allowPruneLast: true on schedule ${entry.manifest.schedule} to allow it`,
    });
  }
  if (siblings[0]?.manifest.id === entry.manifest.id && !allow.allowNewest) {
    throw new JarvisError('CONFIRMATION_REQUIRED', `backup ${entry.manifest.id} is the newest valid backup of ${entry.manifest.schedule}; not pruning it`);
  }
  await deleteBackup(entry);
  return entry;
}

/** Files of a backup copied at once: small files overlap the large ones' uploads. */
const COPY_CONCURRENCY = 2;

export interface CopyRequest { id: string; from: string; to: string; env: NodeJS.ProcessEnv; progress?: Progress }

/**
 * Copies a published backup from one repository to another through the sealed-store contract:
 * every file is read from the source (checked against its manifest while it streams) into a
 * staged item of the target, then the same manifest text is published there, last. The copy has
 * the same manifest checksum and file hashes; a failure (or a kill) leaves only debris in the target.
 */
export async function copyBackup(desired: Desired, request: CopyRequest): Promise<{ entry: CatalogEntry; copied: boolean }> {
  const progress = request.progress ?? silentProgress;
  const [source] = repositoriesFor(desired, request.from, request.env);
  const [target] = repositoriesFor(desired, request.to, request.env);
  const entry = await findBackup(source!, request.id);
  const m = entry.manifest;
  const targetStore = backupStore(target!);
  const key = backupKey(m);
  const there = await readManifest(targetStore, m);
  if (typeof there !== 'string') {
    return { entry: { manifest: there, key, dir: targetStore.location(key), store: targetStore, repository: target!.name }, copied: false };
  }
  const manifestText = await entry.store.readText(entry.key, MANIFEST);
  if (manifestText === null) throw new JarvisError('BACKUP_INVALID', `backup ${m.id} lost its manifest in ${source!.name} while being copied`);
  await cleanDebris(target!);
  const item = await targetStore.begin(key, { env: request.env });
  try {
    let n = 0;
    await mapLimit(m.files, COPY_CONCURRENCY, async (file) => {
      const stored = await item.writeFile(file.name, entry.store.read(entry.key, file));
      if (stored.sha256 !== file.sha256 || stored.bytes !== file.bytes) {
        throw new JarvisError('VERIFY_FAILED', `copy of ${m.id}/${file.name} to ${target!.name} does not match its manifest (${stored.bytes} bytes, SHA-256 ${stored.sha256.slice(0, 12)}…)`);
      }
      progress.update(++n, m.files.length);
      progress.note(`copied ${file.name}`);
      await testPausePoint('copy-file-written', request.env);
    });
    await testPausePoint('copy-before-manifest', request.env);
    await item.publish(manifestText);
  } catch (e) {
    await item.abort().catch(() => undefined);
    if (e instanceof JarvisError) throw e;
    throw new JarvisError('BACKUP_FAILED', `copy of backup ${m.id} from ${source!.name} to ${target!.name} failed: ${messageOf(e)}`, { cause: e });
  }
  return { entry: { manifest: m, key, dir: item.location, store: targetStore, repository: target!.name }, copied: true };
}
