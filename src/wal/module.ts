/**
 * The `wal` domain module (docs/architecture.md §6, "PITR in plan and health"): with
 * services.postgres.pitr.enabled, the findings of point-in-time recovery in every plan. It
 * observes only the server (one query, never an exception: a server that is down is one
 * finding); the archive listing and the base backups are the backup module's observation (one
 * WAL listing per repository per plan, the one the WAL prune plans from). It plans no actions.
 */
import type { Desired } from '../config/types.js';
import type { DomainModule, ModulePlan } from '../engine/types.js';
import type { BackupObserved } from '../backup/module.js';
import { walFindings } from './findings.js';
import { observeWalServer, type ObservedWalServer } from './observe.js';
import type { BaseStart } from './prune.js';

export interface WalObserved { server: ObservedWalServer }

/** Pure: the physical base backups of each repository in the backup module's observation. */
export function basesIn(backup: BackupObserved | undefined): (repository: string) => BaseStart[] {
  const first = backup?.repositories?.[0]?.name;
  return (repository) => (backup?.backups ?? []).flatMap((b) => (b.walStart && (b.repository ?? first) === repository ? [{ id: b.id, ...b.walStart }] : []));
}

export function planWal(desired: Desired, observed: WalObserved, now: Date, backup: BackupObserved | undefined): ModulePlan {
  const pitr = desired.services.postgres?.pitr;
  if (!pitr?.enabled) return { actions: [], findings: [], errors: [] };
  return { actions: [], errors: [], findings: walFindings({ pitr, server: observed.server, wal: backup?.wal, basesOf: basesIn(backup), now }) };
}

export const walModule: DomainModule<WalObserved> = {
  name: 'wal',
  appliesTo: (desired) => desired.services.postgres?.pitr?.enabled === true,
  async observe(ctx) {
    const pg = ctx.desired.services.postgres!;
    return { server: await observeWalServer(pg.url, pg.pitr!.slot) };
  },
  plan: (desired, observed, now, all) => planWal(desired, observed, now, all.backup as BackupObserved | undefined),
  // No actions: nothing an apply does depends on it.
  fingerprint: () => null,
};
