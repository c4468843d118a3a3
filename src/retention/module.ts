/**
 * The `retention` domain module: observe (catalog, eligible rows, archives; read-only),
 * plan (pure), and the handlers of retention_delete, retention_archive, retention_anonymize,
 * retention_compress and prune_archive (retention_drop_partitions and create_partition: partition-run.ts;
 * copy_archive: archive-copy.ts). Handlers never re-decide: they take the policy and the
 * planned cut-off from the action and check the live catalog before touching a row.
 */
import type { Desired, RetentionPolicy } from '../config/types.js';
import type { DomainModule, Handler, HandlerMap, PruneArchive, RetentionAnonymize, RetentionArchive, RetentionCompress, RetentionDelete } from '../engine/types.js';
import { formatBytes, formatCount, formatDuration, plural } from '../render/format.js';
import { JarvisError } from '../errors.js';
import { describePolicyChanges } from './describe.js';
import type { RetentionObserved } from './observe.js';
import { planRetention, retentionFingerprint, type RetentionRun } from './plan.js';
import { hasPendingMigrations, type MigrateObserved } from '../migrate/observe.js';

export const retentionModule: DomainModule<RetentionObserved> = {
  name: 'retention',
  appliesTo: (desired) => desired.retention.some((p) => p.enabled) || desired.retention.some((p) => p.archive?.deleteAfter !== undefined) || Boolean(desired.partitions?.length),
  async observe(ctx) {
    const { observeRetention } = await import('./observe.js');
    return observeRetention(ctx.desired, ctx.env, ctx.now);
  },
  plan: (desired, observed, now, all) => planRetention(desired, observed, now, { migrationsPending: hasPendingMigrations(all.migrate as MigrateObserved | undefined) }),
  describeChange: describePolicyChanges,
  fingerprint: (observed) => retentionFingerprint(observed),
  /** Under the apply lock: removes what killed archive runs left, settles their interrupted chunks. */
  async beforeApply(ctx) {
    const [{ archiveRepository, cleanArchiveDebris, scanArchives }, { openRepositories }] = await Promise.all([import('./store.js'), import('../storage/repositories.js')]);
    const lines: string[] = [];
    for (const [i, repository] of openRepositories(ctx.desired, ctx.env).entries()) {
      // Another repository that cannot be read now holds back only the copies to it (the plan says so).
      const removed = await cleanArchiveDebris(repository).catch((e: unknown) => { if (i === 0) throw e; return []; });
      lines.push(...removed.map((path) => `removed ${path}, left by a killed archive run or copy`));
    }
    const { archives } = await scanArchives(archiveRepository(ctx.desired, ctx.env));
    if (ctx.desired.services.postgres && archives.some((a) => a.chunks.some((c) => c.state === 'pending'))) {
      const { settle } = await import('./archives.js');
      const r = await settle(ctx.desired, ctx.env);
      if (r.committed || r.voided) lines.push(`settled the chunks of interrupted archive runs: ${formatCount(r.committed)} kept (their delete committed), ${formatCount(r.voided)} void and removed (their rows are still in the table)`);
      for (const p of r.pending) lines.push(`archive ${p.archive} chunk ${p.chunk} is still pending: ${p.why}`);
    }
    return lines;
  },
};

function policyOf(desired: Desired, action: RetentionRun): RetentionPolicy {
  const name = action.params.policy;
  const policy = desired.retention.find((p) => p.name === name);
  if (!policy) throw new JarvisError('PLAN_INVALID', `the plan names retention policy "${String(name)}", which is not in the config`);
  if (!policy.enabled) throw new JarvisError('PLAN_INVALID', `retention policy "${policy.name}" is disabled in the config; plan again`);
  return policy;
}

function runHandler<A extends RetentionRun>(expected: RetentionPolicy['action']): Handler<A> {
  return async (action, ctx, progress) => {
    const policy = policyOf(ctx.desired, action);
    if (policy.action !== expected) throw new JarvisError('PLAN_INVALID', `the plan says ${action.type} for ${policy.name}, whose action is now ${policy.action}; plan again`);
    const { params } = action;
    const { runPolicy } = await import('./runner.js');
    const result = await runPolicy(ctx.desired, policy, { cutoff: params.cutoff, ...(params.capBoundary ? { capBoundary: params.capBoundary } : {}), batchSize: params.batchSize }, {
      env: ctx.env, progress, signal: ctx.signal, log: ctx.log, ...(action.estimate?.rows !== undefined ? { expectedRows: action.estimate.rows } : {}),
    });
    const kids = Object.entries(result.childRows).map(([t, rows]) => ` and ${plural(rows, 'row')} of ${t}`).join('');
    const verb = { delete: 'deleted', archive: 'archived', anonymize: 'anonymized', compress: 'compressed', erase: 'erased' }[expected];
    const where = result.archiveId ? ` into archive ${result.archiveId} (${plural(result.chunks ?? 0, 'chunk')}, ${formatBytes(result.archiveBytes!)})` : '';
    const v = result.vacuum;
    const vacuum = !v ? '' : v.problem ? `; VACUUM (ANALYZE) of ${v.tables.join(', ')} not done (${v.problem}): autovacuum will` : `; then VACUUM (ANALYZE) of ${v.tables.join(', ')} in ${formatDuration(v.ms)}`;
    return {
      summary: `${verb} ${plural(result.rows, 'row')} of ${result.table}${kids}${where} in ${plural(result.batches, 'batch')} (longest ${formatDuration(result.longestBatchMs)})${vacuum}`,
      details: { ...result },
    };
  };
}

export const retentionDeleteHandler = runHandler<RetentionDelete>('delete');
export const retentionArchiveHandler = runHandler<RetentionArchive>('archive');
export const retentionAnonymizeHandler = runHandler<RetentionAnonymize>('anonymize');
export const retentionCompressHandler = runHandler<RetentionCompress>('compress');

export const pruneArchiveHandler: Handler<PruneArchive> = async (action, ctx) => {
  const id = action.params.archiveId;
  const [{ pruneEverywhere }, { archiveRepository, summarize }] = await Promise.all([import('./archive-copy.js'), import('./store.js')]);
  // Without `repositories` (a single repository) the archive is in the first one.
  const names = action.params.repositories ?? [archiveRepository(ctx.desired, ctx.env).name];
  const { repositories, entry } = await pruneEverywhere(ctx.desired, id, names, ctx.env);
  const summary = summarize(entry);
  const where = action.params.repositories ? ` from ${repositories.join(', ')}` : '';
  return { summary: `archive ${id} of ${summary.policy} deleted${where} (${plural(summary.rows, 'row')}, ${formatBytes(summary.bytes)})` };
};

/** The handlers this module provides, for the engine's handler map. */
export const retentionHandlers: Pick<HandlerMap, 'retention_delete' | 'retention_archive' | 'retention_anonymize' | 'retention_compress' | 'retention_drop_partitions' | 'create_partition' | 'prune_archive'> = {
  retention_drop_partitions: async (action, ctx, progress) => (await import('./partition-run.js')).dropPartitionsHandler(action, ctx, progress),
  create_partition: async (action, ctx, progress) => (await import('./partition-run.js')).createPartitionHandler(action, ctx, progress),
  retention_delete: retentionDeleteHandler,
  retention_archive: retentionArchiveHandler,
  retention_anonymize: retentionAnonymizeHandler,
  retention_compress: retentionCompressHandler,
  prune_archive: pruneArchiveHandler,
};
