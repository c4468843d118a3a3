/**
 * The retention action `erase` (a policy on the users table with `action: erase`): each user
 * older than the policy's cut-off and not erased yet is erased from every store as
 * `erase --user` does it (src/erasure/run.ts), tombstone first, one user after the other, so a
 * stop or a kill between users leaves each one either untouched or erased (or completed by the
 * next run, from its tombstone). The ids are read from the catalog's columns, the cut-off bound.
 */
import type { RetentionPolicy } from '../config/types.js';
import type { Handler, RetentionErase } from '../engine/types.js';
import { JarvisError } from '../errors.js';
import { plural } from '../render/format.js';
import { column, displayName, ident, qualified, sameTable } from '../retention/catalog.js';
import { connectPostgres, postgresUrl } from '../services/postgres.js';
import { resolveOn } from './postgres.js';
import { eraseUser } from './run.js';

function policyOf(action: RetentionErase, retention: readonly RetentionPolicy[]): RetentionPolicy {
  const policy = retention.find((p) => p.name === action.params.policy);
  if (!policy || !policy.enabled) throw new JarvisError('PLAN_INVALID', `the plan names retention policy "${action.params.policy}", which is not an enabled policy in the config; plan again`);
  if (policy.action !== 'erase') throw new JarvisError('PLAN_INVALID', `the plan says retention_erase for ${policy.name}, whose action is now ${policy.action}; plan again`);
  return policy;
}

/** The next users to erase: older than the cut-off, not erased yet (marker unset), oldest first. */
async function nextUsers(desired: Parameters<Handler<RetentionErase>>[1]['desired'], policy: RetentionPolicy, cutoff: string, limit: number): Promise<string[]> {
  const client = await connectPostgres(postgresUrl(desired), { applicationName: 'jarvis-db retention erase' });
  try {
    const r = await resolveOn(client, desired);
    if (!sameTable(policy.table, r.users)) {
      throw new JarvisError('CONFIG_INVALID', `${policy.source.file} ${policy.source.path}: an erase policy applies to the users table ${displayName(r.users)} (erasure.users.table), not to ${policy.table}`, {
        hint: 'point the policy at the users table, or use delete, archive or anonymize for other tables',
      });
    }
    const age = column(r.users, policy.age.column);
    if (!age) throw new JarvisError('CONFIG_INVALID', `${policy.source.file} ${policy.source.path}: column "${policy.age.column}" does not exist in table ${displayName(r.users)}`);
    const marker = r.anonymize?.resolved.anonymize?.marker;
    const pending = marker ? ` AND t.${ident(marker.name)} IS NULL` : '';
    const res = await client.query<{ k: string }>(
      `SELECT t.${ident(r.key.name)}::text AS k FROM ${qualified(r.users)} AS t WHERE t.${ident(age.name)} < $1::${age.type}${pending} ORDER BY t.${ident(age.name)}, t.${ident(r.key.name)} LIMIT $2`,
      [cutoff, limit],
    );
    return res.rows.map((row) => row.k);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export const retentionEraseHandler: Handler<RetentionErase> = async (action, ctx, progress) => {
  const policy = policyOf(action, ctx.desired.retention);
  const total = action.estimate?.rows;
  const done = new Set<string>();
  const counts = { rows: 0, records: 0, keys: 0 };
  for (;;) {
    if (ctx.signal.aborted) break;
    const batch = (await nextUsers(ctx.desired, policy, action.params.cutoff, action.params.batchSize)).filter((id) => !done.has(id));
    if (!batch.length) break;
    for (const user of batch) {
      if (ctx.signal.aborted) break;
      const report = await eraseUser(ctx.desired, user, ctx.env);
      done.add(user);
      counts.rows += Object.values(report.postgres.rows).reduce((a, b) => a + b, 0);
      for (const s of report.sides) counts[s.store === 'chroma' ? 'records' : 'keys'] += s.count;
      ctx.log('retention_erased_user', { policy: policy.name, tombstone: report.tombstone?.id });
      progress.update(done.size, total);
    }
  }
  return {
    summary: `${plural(done.size, 'user')} of ${policy.table} erased (${policy.name}): ${plural(counts.rows, 'row')} deleted, ${plural(counts.records, 'Chroma record')}, ${plural(counts.keys, 'Redis key')}; a tombstone each`,
    details: { policy: policy.name, users: done.size, ...counts },
  };
};
