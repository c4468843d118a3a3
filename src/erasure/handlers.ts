/**
 * The erasure's handlers (src/engine/registry.ts HANDLERS): erase_user (`erase --user`) and
 * reapply_tombstones (after `restore ID` / `restore --point ID`, reading where the restores it
 * requires put the data from their outcomes).
 */
import type { EraseUser, Handler, ReapplyTombstones } from '../engine/types.js';
import { plural } from '../render/format.js';
import { openRepositories } from '../storage/repositories.js';
import { eraseUser, reapplyTombstones, type ErasureReport, type ReapplyTarget } from './run.js';
import { scanTombstones } from './tombstones.js';

/** One line per store of what an erasure touched (or would touch). */
export function describeReport(r: ErasureReport, verb: { rows: string; records: string; keys: string }): string[] {
  const rows = Object.entries(r.postgres.rows);
  const total = rows.reduce((a, [, n]) => a + n, 0);
  const lines = [`postgres: ${plural(total, 'row')} ${verb.rows}${rows.length ? ` (${rows.map(([t, n]) => `${t} ${n}`).join(', ')})` : ''}; users row ${r.postgres.user}`];
  for (const s of r.sides) {
    const unit = s.store === 'chroma' ? 'record' : 'key';
    lines.push(`${s.store}: ${plural(s.count, unit)} ${s.store === 'chroma' ? verb.records : verb.keys} (link ${s.link}, ${s.where}${s.missing ? ': absent' : ''})`);
  }
  for (const skipped of r.skipped) lines.push(`skipped ${skipped}`);
  return lines;
}

export const eraseUserHandler: Handler<EraseUser> = async (action, ctx, progress) => {
  progress.note(`erasing user ${action.params.user}`);
  const report = await eraseUser(ctx.desired, action.params.user, ctx.env);
  const lines = describeReport(report, { rows: 'deleted', records: 'deleted', keys: 'deleted' });
  return {
    summary: `user ${JSON.stringify(report.user)} erased, tombstone ${report.tombstone!.id} in ${report.tombstone!.repositories.join(', ')}\n${lines.map((l) => `  ${l}`).join('\n')}`,
    details: { ...report },
  };
};

/** Where the restores put the data back, from their outcomes (docs/erasure.md). */
function targetOf(action: ReapplyTombstones, outcomes: ReadonlyMap<string, { details?: Record<string, unknown> }>, notes: string[]): ReapplyTarget {
  const target: ReapplyTarget = {};
  const { postgres, redis, chroma } = action.params;
  if (postgres) {
    const d = outcomes.get(postgres)?.details ?? {};
    if (typeof d.database === 'string') target.postgres = { database: d.database };
    else notes.push(`postgres: a physical restore (${String(d.dir ?? d.target ?? '?')}); erase the users again once the server runs (jarvis-db erase --user ID)`);
  }
  if (redis && outcomes.has(redis)) target.redis = true;
  if (chroma && outcomes.has(chroma)) {
    const collections = (outcomes.get(chroma)?.details?.collections ?? []) as { name: string; as: string }[];
    target.chroma = { rename: new Map(collections.map((c) => [c.name, c.as])), only: new Set(collections.map((c) => c.name)) };
  }
  return target;
}

export const reapplyTombstonesHandler: Handler<ReapplyTombstones> = async (action, ctx, progress) => {
  const wanted = new Set(action.params.tombstones);
  const scan = await scanTombstones(openRepositories(ctx.desired, ctx.env));
  const tombstones = scan.tombstones.filter((t) => wanted.has(t.id));
  const notes: string[] = [];
  const target = targetOf(action, ctx.outcomes, notes);
  progress.note(`re-applying ${plural(tombstones.length, 'tombstone')}`);
  const done = await reapplyTombstones(ctx.desired, tombstones, target, ctx.env);
  notes.push(...done.notes);
  const summary = `${plural(done.applied, 'tombstone')} applied (erasures since ${action.params.since}): ${plural(done.postgresRows, 'row')}, ${plural(done.chroma, 'Chroma record')}, ${plural(done.redis, 'Redis key')} removed again`;
  return { summary: [summary, ...notes.map((n) => `! ${n}`)].join('\n'), details: { applied: done.applied, postgresRows: done.postgresRows, chroma: done.chroma, redis: done.redis, notes } };
};
