/**
 * Backups: for each schedule, how old its newest valid backup is against the schedule's cron
 * interval, how many valid and damaged backups it has, and the result of its most recent
 * verification. The catalog is the manifests in the repositories (src/backup/catalog.ts). With
 * `repositories:` in the config, the repository.* checks say of each one whether it can be
 * listed and how old its newest valid backup of each schedule is.
 */
import type { BackupSchedule, Desired } from '../../config/types.js';
import { nextRun } from '../../config/cron.js';
import { lastFireAtOrBefore } from '../../schedule/due.js';
import { messageOf } from '../../errors.js';
import { redact } from '../../services/redact.js';
import type { Repository } from '../../storage/repositories.js';
import type { Sample } from '../samples.js';
import { formatDuration } from '../../render/format.js';
import { formatSeconds } from '../format.js';

/** What the probe needs of a catalog entry (plain data). */
export interface BackupFacts {
  id: string;
  service: string;
  schedule: string;
  startedAt: string;
  verification: { at: string; ok: boolean; message: string } | null;
}

export interface DamagedFacts { id: string; service: string; schedule: string; problem: string }

/** Seconds between the two most recent fire times of a cron at `now` (the schedule's period there). */
export function cronIntervalSeconds(schedule: Pick<BackupSchedule, 'cron' | 'timezone'>, now: Date): number {
  const last = lastFireAtOrBefore(schedule.cron, schedule.timezone, now);
  if (last) {
    const before = lastFireAtOrBefore(schedule.cron, schedule.timezone, new Date(last.getTime() - 1000));
    if (before) return (last.getTime() - before.getTime()) / 1000;
    return (nextRun(schedule.cron, schedule.timezone, last).getTime() - last.getTime()) / 1000;
  }
  const next = nextRun(schedule.cron, schedule.timezone, now);
  return (nextRun(schedule.cron, schedule.timezone, next).getTime() - next.getTime()) / 1000;
}

/** Pure: the samples of every schedule. */
export function backupSamples(schedules: BackupSchedule[], valid: BackupFacts[], damaged: DamagedFacts[], now: Date): Sample[] {
  const samples: Sample[] = [];
  for (const schedule of schedules) {
    const labels = { schedule: schedule.name };
    const mine = valid
      .filter((b) => b.schedule === schedule.name && b.service === schedule.service)
      .sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    const bad = damaged.filter((b) => b.schedule === schedule.name && b.service === schedule.service);
    samples.push({ check: 'backups.valid', labels, value: mine.length });
    samples.push({ check: 'backups.damaged', labels, value: bad.length, ...(bad.length ? { detail: bad.map((b) => `${b.id}: ${b.problem}`).join('; ') } : {}) });
    const newest = mine[0];
    if (!newest) {
      samples.push({ check: 'backups.age_interval_ratio', labels, value: null, problem: `no valid backup of ${schedule.service} schedule ${schedule.name}` });
    } else {
      const started = Date.parse(newest.startedAt);
      const age = Math.max((now.getTime() - started) / 1000, 0);
      samples.push({ check: 'backups.age_seconds', labels, value: age, detail: newest.id });
      samples.push({ check: 'backups.newest_timestamp_seconds', labels, value: started / 1000 });
      try {
        const interval = cronIntervalSeconds(schedule, now);
        samples.push({ check: 'backups.age_interval_ratio', labels, value: age / interval, detail: `${newest.id} is ${formatSeconds(age)} old, \`${schedule.cron}\` runs every ${formatSeconds(interval)}` });
      } catch (e) {
        samples.push({ check: 'backups.age_interval_ratio', labels, value: null, problem: `cron "${schedule.cron}": ${messageOf(e)}` });
      }
    }
    const verified = mine.filter((b) => b.verification).sort((a, b) => b.verification!.at.localeCompare(a.verification!.at))[0];
    if (verified) {
      const v = verified.verification!;
      samples.push({ check: 'backups.last_verification_success', labels, value: v.ok ? 1 : 0, detail: `${verified.id} at ${v.at}`, ...(v.ok ? {} : { problem: v.message }) });
    }
  }
  return samples;
}

export async function probeBackups(desired: Desired, now: Date): Promise<Sample[]> {
  const { scanStorage } = await import('../../backup/catalog.js');
  const { openRepositories } = await import('../../storage/repositories.js');
  const scan = await scanStorage(openRepositories(desired));
  // One sample set per backup, whichever repositories hold copies of it (the first copy: the first repository's).
  const firstCopies = scan.valid.filter((e, i, all) => all.findIndex((x) => x.manifest.id === e.manifest.id) === i);
  const valid = firstCopies.map(({ manifest: m }) => ({ id: m.id, service: m.service, schedule: m.schedule, startedAt: m.startedAt, verification: m.verification }));
  return backupSamples(desired.backups, valid, scan.invalid, now);
}

/** A repository's backups as the probes see them, or why it could not be listed. */
export type RepositoryScan = { valid: BackupFacts[]; damaged: DamagedFacts[] } | { error: string };

/**
 * The one use of the backup catalog in health: every published backup of a repository, valid or
 * damaged, through its sealed store (a directory or a bucket alike). Kept in this one function
 * so that it follows the catalog's signatures when they change.
 */
export async function scanRepository(repository: Repository): Promise<{ valid: BackupFacts[]; damaged: DamagedFacts[] }> {
  const { readManifest } = await import('../../backup/catalog.js');
  const { BACKUP_ID, MANIFEST } = await import('../../backup/storage.js');
  const { SERVICE_NAMES } = await import('../../config/types.js');
  const store = repository.store('', MANIFEST);
  const valid: BackupFacts[] = [];
  const damaged: DamagedFacts[] = [];
  for (const service of SERVICE_NAMES) {
    for (const schedule of await store.list(service)) {
      for (const id of await store.list(`${service}/${schedule}`)) {
        if (!BACKUP_ID.test(id)) continue;
        const m = await readManifest(store, { id, service, schedule });
        if (typeof m === 'string') damaged.push({ id, service, schedule, problem: m });
        else valid.push({ id: m.id, service: m.service, schedule: m.schedule, startedAt: m.startedAt, verification: m.verification });
      }
    }
  }
  return { valid, damaged };
}

/**
 * Pure: the repository.* samples. A repository that could not be listed has only its `up` (0,
 * with the reason). The age of each one's newest backup is judged when there are several: with
 * one repository, backups.age_interval_ratio already judges it.
 */
export function repositorySamples(schedules: BackupSchedule[], repositories: { name: string; scan: RepositoryScan }[], now: Date): Sample[] {
  const samples: Sample[] = [];
  const judged = repositories.length > 1;
  for (const { name, scan } of repositories) {
    if ('error' in scan) {
      samples.push({ check: 'repository.up', labels: { repository: name }, value: 0, problem: scan.error });
      continue;
    }
    samples.push({ check: 'repository.up', labels: { repository: name }, value: 1 });
    for (const schedule of schedules) {
      const labels = { repository: name, schedule: schedule.name };
      const mine = scan.valid
        .filter((b) => b.schedule === schedule.name && b.service === schedule.service)
        .sort((a, b) => b.startedAt.localeCompare(a.startedAt));
      samples.push({ check: 'repository.backups_valid', labels, value: mine.length });
      const newest = mine[0];
      const age = newest ? Math.max((now.getTime() - Date.parse(newest.startedAt)) / 1000, 0) : null;
      if (newest && age !== null) samples.push({ check: 'repository.backup_age_seconds', labels, value: age, detail: newest.id });
      if (!judged) continue;
      if (!newest || age === null) {
        samples.push({ check: 'repository.backup_age_interval_ratio', labels, value: null, problem: `no valid backup of ${schedule.service} schedule ${schedule.name} in repository ${name}` });
        continue;
      }
      try {
        const interval = cronIntervalSeconds(schedule, now);
        samples.push({ check: 'repository.backup_age_interval_ratio', labels, value: age / interval, detail: `${newest.id} is ${formatSeconds(age)} old, \`${schedule.cron}\` runs every ${formatSeconds(interval)}` });
      } catch (e) {
        samples.push({ check: 'repository.backup_age_interval_ratio', labels, value: null, problem: `cron "${schedule.cron}": ${messageOf(e)}` });
      }
    }
  }
  return samples;
}

/** Every repository listed at once, each within `timeoutMs`: one that hangs does not hide the others. */
export async function probeRepositories(desired: Desired, now: Date, env: NodeJS.ProcessEnv = process.env, timeoutMs = 9000): Promise<Sample[]> {
  const { openRepositories } = await import('../../storage/repositories.js');
  const repositories = openRepositories(desired, env);
  const scans = await Promise.all(repositories.map(async (repository) => {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${repository.location} did not answer within ${formatDuration(timeoutMs)}`)), timeoutMs);
    });
    try {
      return { name: repository.name, scan: await Promise.race([scanRepository(repository), limit]) as RepositoryScan };
    } catch (e) {
      // One line, never a secret (the AWS secret key, a password in a URL).
      return { name: repository.name, scan: { error: redact(messageOf(e).split('\n')[0]!, env) } };
    } finally {
      clearTimeout(timer);
    }
  }));
  return repositorySamples(desired.backups, scans, now);
}
