/**
 * `jarvis-db restore --point ID` (src/backup/points.ts): the point's members restored one after
 * the other, each to its usual target with the flags that apply to its service, as a narrowed
 * plan of restore_backup actions run by the engine's `apply` (one lock, one journal), like
 * `restore ID` (src/backup/commands.ts). A point whose member is gone or damaged everywhere is
 * refused before anything is restored. The tombstones recorded since the point was taken are
 * re-applied after the members (reapply_tombstones, src/erasure), in the same run.
 */
import type { Desired } from '../config/types.js';
import { commandModule, newRecord, recording, throwIfFailed } from '../engine/command.js';
import type { EngineParts } from '../engine/index.js';
import type { Action, RestoreBackup, RunResult } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { scanStorage } from './catalog.js';
import { tombstonesOutcome, type RestoreCommandOptions } from './commands.js';
import { repositoriesFor } from './operations.js';
import { findPoint } from './point-store.js';
import { pointProblems, type PointManifest, type PointMember } from './points.js';

export interface RestoredMember extends PointMember { summary: string; details: Record<string, unknown> }

/** The restore_backup of one member: the command's flags that apply to its service. */
function memberAction(m: PointMember, method: string | undefined, options: RestoreCommandOptions): RestoreBackup {
  const { force, flush, target, targetDir, repository } = options;
  const flags = {
    ...(m.service === 'postgres' && target !== undefined ? { target } : {}),
    ...(m.service === 'redis' && flush ? { flush } : {}),
    ...(method === 'physical' && targetDir !== undefined ? { targetDir } : {}),
    ...(repository !== undefined ? { repository } : {}),
  };
  return {
    id: `backup.restore.${m.id}`, type: 'restore_backup', module: 'backup', target: m.id,
    reason: `requested (restore --point: ${m.service}/${m.schedule} ${m.id})`, risk: force || flags.flush ? 'destructive' : 'safe',
    estimate: null, params: { ...flags, id: m.id, service: m.service, force },
  };
}

export async function restorePointCommand(desired: Desired, id: string, options: RestoreCommandOptions): Promise<{ point: PointManifest; restored: RestoredMember[]; run: RunResult; tombstones: { applied: number; summary: string } }> {
  const repositories = repositoriesFor(desired, options.repository, options.env);
  const point = (await findPoint(repositories, id))[0]!.manifest;
  const scan = await scanStorage(repositories);
  const valid = scan.valid.map((e) => ({ id: e.manifest.id, service: e.manifest.service, schedule: e.manifest.schedule, verified: e.manifest.verification?.ok ?? null }));
  // Whole when each member is valid in some repository read (restore takes the first copy that passes).
  const problems = pointProblems(point, valid, scan.invalid.filter((d) => !valid.some((v) => v.id === d.id)));
  if (problems.length) {
    throw new JarvisError('RESTORE_REFUSED', `recovery point ${point.id} is broken: ${problems.join('; ')}; nothing was restored`, {
      hint: 'restore its other members one by one with jarvis-db restore ID, or choose another point (jarvis-db backup list)',
    });
  }
  const methods = new Map(scan.valid.map((e) => [e.manifest.id, e.manifest.method]));
  const actions: Action[] = point.members.map((m) => memberAction(m, methods.get(m.id), options));
  // Erasures recorded since the point was taken are re-applied to all three before it reports success.
  const { reapplyAction } = await import('../erasure/commands.js');
  const reapply = await reapplyAction(desired, point.startedAt, Object.fromEntries(point.members.map((m) => [m.service, `backup.restore.${m.id}`])), options.env);
  if (reapply) actions.push(reapply);
  const { HANDLERS } = await import('../engine/registry.js');
  const { apply } = await import('../engine/index.js');
  const record = newRecord();
  const parts: EngineParts = {
    modules: [commandModule({ name: 'backup', observe: async () => ({}) }, () => actions)],
    handlers: { ...HANDLERS, restore_backup: recording(HANDLERS.restore_backup, record), reapply_tombstones: recording(HANDLERS.reapply_tombstones, record) },
  };
  const { env, lockTimeoutMs, waitingForLock, progress } = options;
  const run = await apply({
    desired, parts, env, lockTimeoutMs, probeServices: false,
    reporter: { ...(waitingForLock ? { waitingForLock } : {}), ...(progress ? { actionStarted: () => progress } : {}) },
  });
  throwIfFailed(run, record);
  const restored = point.members.map((m) => {
    const outcome = record.outcomes.get(`backup.restore.${m.id}`)!;
    return { ...m, summary: outcome.summary, details: outcome.details ?? {} };
  });
  return { point, restored, run, tombstones: tombstonesOutcome(reapply ? record.outcomes.get(reapply.id) : undefined) };
}
