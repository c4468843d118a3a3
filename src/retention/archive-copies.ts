/**
 * Retention archives in every repository (docs/architecture.md §6), the pure part. Archives are
 * written to the first repository, like backups; a finished archive (every chunk committed, its
 * writer gone) is then copied to each other repository (copy_archive), so that the rows a
 * policy took out of the database survive the loss of the host as its backups do. An expired
 * archive is pruned wherever it is held (prune_archive names the repositories).
 */
import { parseDuration } from '../config/durations.js';
import type { Desired } from '../config/types.js';
import type { CopyArchive, PlanError, PruneArchive } from '../engine/types.js';
import { plural } from '../render/format.js';
import type { ArchiveSummary } from './store.js';

/** What is known of an archive from its header alone (the copies in the other repositories). */
export interface ArchiveHeld { id: string; policy: string; cutoff: string }

/** One repository after the first: the archives it holds, or why they could not be listed. */
export interface ArchiveCopiesObserved {
  repository: string;
  archives: ArchiveHeld[] | null;
  problem?: string;
}

/** An action of this plan that writes an archive (retention_archive, a partition archived before its drop). */
export interface ArchiveRun { id: string; policy: string }

/** A finished archive: nothing pending or damaged, nobody writing it, at least one chunk. */
export function isFinished(archive: ArchiveSummary): boolean {
  return archive.pending === 0 && archive.damaged === 0 && !archive.writerAlive && archive.chunks > 0;
}

function expiresAt(desired: Desired, archive: ArchiveHeld): Date | null {
  const deleteAfter = desired.retention.find((p) => p.name === archive.policy)?.archive?.deleteAfter;
  return deleteAfter ? new Date(Date.parse(archive.cutoff) + parseDuration(deleteAfter) * 1000) : null;
}

/**
 * Pure: copy_archive for every finished archive of the first repository missing from another
 * one and for the archive each run of this plan writes (after it), prune_archive for every expired archive wherever it is, and an error per repository that
 * could not be listed (it holds back only the actions that reach it).
 */
export function planArchiveCopies(desired: Desired, first: string, archives: ArchiveSummary[], others: ArchiveCopiesObserved[], now: Date, runs: ArchiveRun[] = []): { copies: CopyArchive[]; prunes: PruneArchive[]; errors: PlanError[] } {
  const copies: CopyArchive[] = [];
  const errors: PlanError[] = [];
  const expired = (a: ArchiveHeld) => { const at = expiresAt(desired, a); return at !== null && at.getTime() <= now.getTime() ? at : null; };
  for (const other of others) {
    if (other.archives === null) {
      errors.push({ module: 'retention', repository: other.repository, message: `the archives in repository ${other.repository} cannot be listed: ${other.problem ?? 'unknown error'}; copies to it wait until it can be read` });
      continue;
    }
    for (const run of runs) {
      copies.push({
        id: `retention.copy.${run.id.replace(/^retention\./, '')}.${other.repository}`, type: 'copy_archive', module: 'retention', target: `${run.policy}/<new archive> to ${other.repository}`,
        reason: `missing there: the archive that ${run.id} writes in ${first}`, risk: 'safe', estimate: null,
        params: { fromAction: run.id, policy: run.policy, from: first, to: other.repository },
        requires: [run.id], repositories: [first, other.repository],
      });
    }
    const held = new Set(other.archives.map((a) => a.id));
    for (const archive of archives) {
      if (held.has(archive.id) || !isFinished(archive) || expired(archive)) continue;
      copies.push({
        id: `retention.copy.${archive.id}.${other.repository}`, type: 'copy_archive', module: 'retention', target: `${archive.policy}/${archive.id} to ${other.repository}`,
        reason: `missing there (from ${first}): ${plural(archive.rows, 'archived row')} of ${archive.table}`,
        risk: 'safe', estimate: { rows: archive.rows, bytes: archive.bytes },
        params: { archiveId: archive.id, policy: archive.policy, from: first, to: other.repository },
        repositories: [first, other.repository],
      });
    }
  }
  const holders = new Map<string, { archive: ArchiveHeld; repositories: string[]; summary?: ArchiveSummary }>();
  for (const archive of archives) {
    // An archive still being written is pruned once its writer is done.
    if (!archive.writerAlive) holders.set(archive.id, { archive, repositories: [first], summary: archive });
  }
  for (const other of others) {
    for (const archive of other.archives ?? []) {
      const entry = holders.get(archive.id);
      if (entry) entry.repositories.push(other.repository);
      else if (!archives.some((a) => a.id === archive.id)) holders.set(archive.id, { archive, repositories: [other.repository] });
    }
  }
  const prunes: PruneArchive[] = [];
  for (const { archive, repositories, summary } of holders.values()) {
    const at = expired(archive);
    if (!at) continue;
    const deleteAfter = desired.retention.find((p) => p.name === archive.policy)!.archive!.deleteAfter!;
    const elsewhere = others.length > 0;
    prunes.push({
      id: `retention.prune.${archive.id}`, type: 'prune_archive', module: 'retention', target: archive.id,
      reason: `archive of ${archive.policy} holds rows older than ${archive.cutoff}, past deleteAfter ${deleteAfter} since ${at.toISOString()}${elsewhere ? `; in ${repositories.join(', ')}` : ''}`,
      risk: 'destructive',
      estimate: summary ? { rows: summary.rows, bytes: summary.bytes } : null,
      params: { archiveId: archive.id, policy: archive.policy, ...(elsewhere ? { repositories } : {}) },
      ...(elsewhere ? { repositories } : {}),
    });
  }
  return { copies, prunes, errors };
}
