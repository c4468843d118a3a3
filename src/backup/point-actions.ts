/**
 * The handlers of the recovery-point actions (src/backup/points.ts): create_point records the
 * backups its member actions of this apply wrote, in every repository that holds them all
 * (checked there first: a point never names a backup that is not published), the first one
 * before the others; prune_point deletes one point in one repository.
 */
import type { ServiceName } from '../config/types.js';
import type { CreatePoint, Handler, PrunePoint } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { openRepositories, repositoryNamed } from '../storage/repositories.js';
import { readManifest } from './catalog.js';
import { deletePoint, writePoint } from './point-store.js';
import { sealPoint, type PointMember } from './points.js';
import { backupStore, newBackupId } from './storage.js';

export const createPointHandler: Handler<CreatePoint> = async (action, ctx) => {
  const members: PointMember[] = [];
  let pitr: { lsn: string; at: string } | undefined;
  for (const from of action.params.members) {
    const d = ctx.outcomes.get(from)?.details;
    if (typeof d?.id !== 'string') throw new JarvisError('PLAN_INVALID', `${action.id} records the backup of ${from}, which did not run in this apply`);
    members.push({ service: String(d.service) as ServiceName, schedule: String(d.schedule), id: d.id });
    if (typeof d.startLsn === 'string' && typeof d.startAt === 'string') pitr = { lsn: d.startLsn, at: d.startAt };
  }
  const repositories = openRepositories(ctx.desired, ctx.env);
  const written: string[] = [];
  const missing: string[] = [];
  let startedAt: string | null = null;
  const id = newBackupId(new Date());
  for (const repository of repositories) {
    const store = backupStore(repository);
    const manifests = await Promise.all(members.map((m) => readManifest(store, m).catch((e: unknown) => String(e))));
    const problem = manifests.findIndex((m) => typeof m === 'string');
    if (problem >= 0) {
      missing.push(`${repository.name}: ${members[problem]!.service} backup ${members[problem]!.id}: ${String(manifests[problem])}`);
      continue;
    }
    startedAt ??= manifests.map((m) => (m as { startedAt: string }).startedAt).sort()[0]!;
    const manifest = sealPoint({ formatVersion: 1, id, schedule: action.params.schedule, startedAt, finishedAt: new Date().toISOString(), members, ...(pitr ? { pitr } : {}) });
    await writePoint(repository, manifest, ctx.env);
    written.push(repository.name);
  }
  if (written.length === 0) throw new JarvisError('BACKUP_FAILED', `recovery point not recorded: no repository holds all its backups (${missing.join('; ')})`);
  const where = ctx.desired.repositories ? ` in ${written.join(', ')}` : '';
  return {
    summary: `recovery point ${id} recorded${where}: ${members.map((m) => `${m.service} ${m.id}`).join(', ')}${pitr ? `; WAL position ${pitr.lsn} at ${pitr.at}` : ''}`,
    details: { id, schedule: action.params.schedule, members, repositories: written, ...(pitr ? { pitr } : {}), ...(missing.length ? { notIn: missing } : {}) },
  };
};

export const prunePointHandler: Handler<PrunePoint> = async (action, ctx) => {
  const repositories = openRepositories(ctx.desired, ctx.env);
  const repository = action.params.repository ? repositoryNamed(repositories, action.params.repository) : repositories[0]!;
  await deletePoint(repository, action.params.id);
  return { summary: `recovery point ${action.params.id} deleted${action.params.repository ? ` from ${repository.name}` : ''}`, details: { id: action.params.id, repository: repository.name } };
};
