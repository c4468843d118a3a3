/**
 * The partition actions (I/O; the decisions are partition-plan.ts's).
 *
 * retention_drop_partitions, one action per policy, never losing a row (docs/architecture.md §4
 * rules 3 and 10); one session for all its partitions:
 *   delete: the partitions are dropped while attached, all in one transaction under the lock
 *      timeout (DROP TABLE takes the parent's lock for that short transaction only). Either all
 *      are gone or none; nothing of theirs is kept anyway.
 *   archive:
 *   1. every partition is marked (a table comment: policy, parent, range, archive or not; one
 *      transaction), so that once detached the next observation finds it and plans to finish it;
 *   2. DETACH PARTITION … CONCURRENTLY (PostgreSQL 14+, no default partition; outside a
 *      transaction block, so concurrent inserts into the parent go on), one by one; else a plain
 *      DETACH of all of them in one transaction under the lock timeout; an interrupted concurrent
 *      detach is FINALIZEd;
 *   3. per detached table, in ONE transaction that holds its lock, every row is streamed with
 *      COPY … TO STDOUT into one chunk written durably (store.ts) under that transaction's xid,
 *      and the table is dropped; COMMIT; then the chunk is marked committed. A crash before the COMMIT rolls
 *      the drop back (the table is still there, marked, and its chunks are void: resolve.ts
 *      removes them); after it, the chunks count (resolve.ts finds the xid committed). So the
 *      rows are always in exactly one place: the parent, the detached table, or the archive.
 *   A table an interrupted run detached is finished the same way (archived if its marker says
 *   so, else dropped with the others).
 * create_partition: a declared partition still to come, created unless a partition now takes its range.
 */
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { Desired, RetentionPolicy } from '../config/types.js';
import type { CreatePartition, Handler, RetentionDropPartitions } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { formatBytes, plural } from '../render/format.js';
import { postgresUrl } from '../services/postgres.js';
import { EncryptionSession, keyRingFromEnv } from '../storage/crypto.js';
import { testPausePoint } from '../storage/durable.js';
import { inspectTable, type TableInfo } from './catalog.js';
import { CopyTextLines, type ChunkManifest, type Row } from './chunk.js';
import type { DropPartitionsParams, PartitionToDrop } from './action-params.js';
import { boundTime, findDetached, inspectPartitioning, type DetachMarker, type PartitionInfo, type Partitioning } from './partition-catalog.js';
import { CONCURRENT_DETACH_VERSION } from './partition-plan.js';
import { coverage, intervalStart, nextStart, partitionName } from './partition-declare.js';
import { copyRowsSql, createPartitionSql, detachSql, dropSql, keyBoundSql, lockSql, markSql, quoted, type Name } from './partition-sql.js';
import { batchTransaction } from './batches.js';
import { resolvePending } from './resolve.js';
import { beginSql, currentXid, databaseIdentity, DEFAULT_SESSION, openSession, RAW, serverVersion } from './session.js';
import { ArchiveWriter, archiveRepository, cleanArchiveDebris, type ArchiveHeader } from './store.js';

/** What became of one partition of a retention_drop_partitions action. */
export interface PartitionOutcome {
  partition: string;
  /** Already gone when the action ran (dropped by an earlier run whose chunks settled). */
  gone: boolean;
  /** How it left its parent: detached now (3 ways), by an earlier run, or dropped while attached (policy delete). */
  detached: 'concurrently' | 'plain' | 'finalize' | 'earlier' | 'dropped-attached';
  rows: number;
  archiveId?: string;
  chunks?: number;
  archiveBytes?: number;
}

export interface DropPartitionsResult {
  partitions: PartitionOutcome[];
  /** The archives written (one per archived partition), for the copies of the same apply. */
  archiveIds: string[];
  ms: number;
  /** Where the time went (the journal keeps it): catalog reads, marks and detaches, archives, the drop of the rest. */
  phasesMs: { inspect: number; detach: number; archive: number; drop: number };
}

/** Attempts of a statement that could not have its lock within the lock timeout. */
const LOCK_ATTEMPTS = 3;

const same = (a: Name, b: Name) => a.schema === b.schema && a.name === b.name;

/** The policy the action names, as the config has it now. */
function policyOf(desired: Desired, params: DropPartitionsParams): RetentionPolicy {
  const policy = desired.retention.find((p) => p.name === params.policy);
  if (!policy?.enabled) throw new JarvisError('PLAN_INVALID', `the plan names retention policy "${params.policy}", which is not an enabled policy of the config; plan again`);
  const changed = params.partitions.find((p) => !p.detached && (policy.action === 'archive') !== p.archiveFirst);
  if (changed) throw new JarvisError('PLAN_INVALID', `the plan says ${changed.archiveFirst ? 'archive' : 'delete'} for ${policy.name}, whose action is now ${policy.action}; plan again`);
  return policy;
}

/** One transaction of statements that take the parent's ACCESS EXCLUSIVE lock: under the lock timeout, tried again when it could not be had. */
async function underLockTimeout(client: pg.Client, statements: string[]): Promise<void> {
  await batchTransaction(client, { retries: LOCK_ATTEMPTS, session: DEFAULT_SESSION }, () => client.query(statements.join('; ')));
}

interface Fresh { entry: PartitionToDrop; live: PartitionInfo }

/**
 * Marks the partitions (one transaction), then detaches them: in one transaction when a plain
 * DETACH it must be, one by one when CONCURRENTLY (which runs outside a transaction block).
 */
async function detachAll(client: pg.Client, version: number, policy: RetentionPolicy, params: DropPartitionsParams, parent: TableInfo, partitioning: Partitioning, fresh: Fresh[], env: NodeJS.ProcessEnv): Promise<{ entry: PartitionToDrop; marker: DetachMarker; how: PartitionOutcome['detached'] }[]> {
  const marked = fresh.map(({ entry, live }) => {
    const marker: DetachMarker = {
      policy: policy.name, parent: `${parent.schema}.${parent.name}`, parentSchema: parent.schema, parentName: parent.name,
      column: params.column, range: live.range, archiveFirst: entry.archiveFirst,
    };
    return { entry, live, marker };
  });
  await client.query(`BEGIN; ${marked.map(({ entry, marker: { parent: _display, ...stored } }) => markSql(entry, stored).text).join('; ')}; COMMIT`);
  await testPausePoint('partition-marked', env);
  const concurrently = version >= CONCURRENT_DETACH_VERSION && partitioning.defaultPartition === null;
  const plain = marked.filter((m) => !m.live.detachPending && !concurrently);
  if (plain.length) await underLockTimeout(client, plain.map((m) => detachSql(parent, m.entry, 'plain').text));
  const out: { entry: PartitionToDrop; marker: DetachMarker; how: PartitionOutcome['detached'] }[] = [];
  for (const m of marked) {
    const how: PartitionOutcome['detached'] = m.live.detachPending ? 'finalize' : concurrently ? 'concurrently' : 'plain';
    if (how !== 'plain') await client.query(detachSql(parent, m.entry, how).text);
    out.push({ entry: m.entry, marker: m.marker, how });
  }
  await testPausePoint('partition-detached', env);
  return out;
}

/**
 * The rows of a detached table streamed into one chunk (`COPY … TO STDOUT`: the server builds
 * the lines, the client only undoes COPY's escaping), the table dropped, in one transaction.
 */
async function archiveAndDrop(client: pg.Client, version: number, writer: ArchiveWriter, table: Name, columns: TableInfo, env: NodeJS.ProcessEnv, outcome: PartitionOutcome): Promise<void> {
  const pk = columns.primaryKey;
  const meta = { columns: columns.columns.map((c) => ({ name: c.name, type: c.type })), primaryKey: [...pk] };
  let published: ChunkManifest | null = null;
  await client.query(beginSql({ ...DEFAULT_SESSION, statementTimeoutMs: 0 }));
  try {
    await client.query(lockSql(table).text);
    const xid = await currentXid(client, version);
    const bounds = pk.length ? await Promise.all((['min', 'max'] as const).map(async (w) => (await client.query<Row>({ text: keyBoundSql(table, pk, w).text, rowMode: 'array', types: RAW })).rows[0])) : [];
    const keyRange = bounds[0] && bounds[1] ? { min: bounds[0], max: bounds[1] } : null;
    if (pk.length === 0 || keyRange) {
      const lines = new CopyTextLines();
      const copy = client.query(copyTo(copyRowsSql(table, columns.columns).text));
      copy.on('error', (e) => lines.destroy(e));
      copy.pipe(lines);
      published = await writer.publishStreamedChunk({ table: writer.header.table, columns: columns.columns.map((c) => c.name), meta: { ...meta, keyRange } }, lines, { xid, now: new Date() });
      outcome.rows = published.rows;
      await testPausePoint('partition-chunk-published', env);
    }
    await client.query(dropSql(table).text);
    await testPausePoint('partition-before-commit', env);
    await client.query('COMMIT');
  } catch (e) {
    const rolledBack = await client.query('ROLLBACK').then(() => true, () => false);
    if (rolledBack && published) await writer.voidChunk(published).catch(() => undefined);
    throw e;
  }
  await testPausePoint('partition-dropped', env);
  if (published) {
    await writer.markCommitted(published.chunk);
    outcome.archiveBytes = published.file.bytes;
  }
  outcome.chunks = published ? 1 : 0;
}

/** Archives one detached table (one archive recording the partition), then drops it, in one transaction. */
async function archivePartition(client: pg.Client, version: number, desired: Desired, policy: RetentionPolicy, params: DropPartitionsParams, table: Name, parent: TableInfo, marker: DetachMarker, env: NodeJS.ProcessEnv, outcome: PartitionOutcome): Promise<void> {
  const repo = archiveRepository(desired, env);
  const enc = desired.storage.encryption;
  const ring = enc ? keyRingFromEnv(enc.passphraseEnv, env) : null;
  const writer = await ArchiveWriter.begin(repo, {
    policy: policy.name, table: marker.parent, children: [], ageColumn: marker.column, cutoff: params.cutoff, database: await databaseIdentity(client),
    partition: { schema: table.schema, name: table.name, from: marker.range?.from ?? 'MINVALUE', to: marker.range?.to ?? 'MAXVALUE' },
  }, { now: new Date(), encryption: ring ? new EncryptionSession(ring) : null, env });
  outcome.archiveId = writer.header.id;
  try {
    await archiveAndDrop(client, version, writer, table, parent, env, outcome);
  } finally {
    if (!(await writer.finish().catch(() => true))) delete outcome.archiveId;
  }
}

export async function dropPartitions(desired: Desired, params: DropPartitionsParams, env: NodeJS.ProcessEnv): Promise<DropPartitionsResult> {
  const started = performance.now();
  const policy = policyOf(desired, params);
  const result: DropPartitionsResult = { partitions: [], archiveIds: [], ms: 0, phasesMs: { inspect: 0, detach: 0, archive: 0, drop: 0 } };
  let mark = performance.now();
  const phase = (name: keyof DropPartitionsResult['phasesMs']) => {
    const now = performance.now();
    result.phasesMs[name] += Math.round(now - mark);
    mark = now;
  };
  const client = await openSession(postgresUrl(desired), DEFAULT_SESSION);
  try {
    const lock = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok`, [`jarvis-db retention ${policy.name}`]);
    if (!lock.rows[0]!.ok) throw new JarvisError('RETENTION_FAILED', `policy ${policy.name} is being run by another jarvis-db process`, { hint: 'wait for it to finish' });
    const parent = await inspectTable(client, policy.table);
    const partitioning = parent ? await inspectPartitioning(client, parent, []) : null;
    const markers = await findDetached(client);
    const version = await serverVersion(client);
    const outcomeOf = (entry: PartitionToDrop, detached: PartitionOutcome['detached']): PartitionOutcome => {
      const outcome: PartitionOutcome = { partition: entry.partition, gone: false, detached, rows: 0 };
      result.partitions.push(outcome);
      return outcome;
    };
    const detached: { entry: PartitionToDrop; marker: DetachMarker; outcome: PartitionOutcome }[] = [];
    const fresh: Fresh[] = [];
    for (const entry of params.partitions) {
      const marker = markers.find((d) => same(d, entry))?.marker;
      if (marker) {
        detached.push({ entry, marker, outcome: outcomeOf(entry, 'earlier') });
        continue;
      }
      if (!parent) throw new JarvisError('RETENTION_FAILED', `policy "${policy.name}": table ${policy.table} does not exist`, { hint: 'plan again' });
      const live = partitioning?.partitions.find((p) => same(p, entry));
      if (!live) {
        outcomeOf(entry, 'earlier').gone = true;
        continue;
      }
      // The live bound, not the planned one: a partition re-created with newer rows is not dropped.
      const to = live.range ? boundTime(live.range.to) : null;
      if (to === null || to > Date.parse(params.cutoff)) {
        throw new JarvisError('RETENTION_FAILED', `partition ${entry.partition} now holds rows up to ${live.range?.to ?? live.bound}, not wholly older than the planned cut-off ${params.cutoff}`, { hint: 'plan again' });
      }
      fresh.push({ entry, live });
    }
    phase('inspect');
    // Dropped while attached (policy delete): the rows are meant to go, and one transaction drops them all or none.
    const attachedDrops = fresh.filter((f) => !f.entry.archiveFirst && !f.live.detachPending);
    const toDetach = fresh.filter((f) => !attachedDrops.includes(f));
    if (toDetach.length) {
      for (const d of await detachAll(client, version, policy, params, parent!, partitioning!, toDetach, env)) {
        detached.push({ entry: d.entry, marker: d.marker, outcome: outcomeOf(d.entry, d.how) });
      }
    }
    phase('detach');
    const archived = detached.filter((d) => d.marker.archiveFirst);
    if (archived.length) {
      // The parent's columns: a partition has the same.
      if (!parent) throw new JarvisError('RETENTION_FAILED', `${archived[0]!.entry.partition} is kept: its parent ${archived[0]!.marker.parent} (whose columns its archive records) does not exist`, { hint: `attach it again, or archive it by hand, then DROP TABLE it` });
      // An earlier attempt's chunks: void if its drop rolled back (the table is still here). Only a
      // partition an earlier run detached can have them: a fresh one skips the scans of every archive.
      if (archived.some((d) => d.outcome.detached === 'earlier')) {
        const repo = archiveRepository(desired, env);
        const enc = desired.storage.encryption;
        await cleanArchiveDebris(repo);
        await resolvePending(client, repo, { policy: policy.name, ring: enc ? keyRingFromEnv(enc.passphraseEnv, env) : null });
      }
      for (const d of archived) {
        await archivePartition(client, version, desired, policy, params, d.entry, parent, d.marker, env, d.outcome);
        if (d.outcome.archiveId) result.archiveIds.push(d.outcome.archiveId);
      }
    }
    phase('archive');
    const dropped = [...detached.filter((d) => !d.marker.archiveFirst).map((d) => d.entry), ...attachedDrops.map((f) => f.entry)];
    if (dropped.length) await underLockTimeout(client, [`DROP TABLE ${dropped.map((e) => quoted(e)).join(', ')}`]);
    for (const f of attachedDrops) outcomeOf(f.entry, 'dropped-attached');
    phase('drop');
    return result;
  } finally {
    result.ms = Math.round(performance.now() - started);
    await client.end().catch(() => undefined);
  }
}

const HOW: Record<PartitionOutcome['detached'], string> = {
  concurrently: 'detached concurrently', plain: 'detached', finalize: 'its interrupted detach finalized', earlier: 'detached by an earlier run', 'dropped-attached': 'dropped',
};

/** One partition's outcome for people: `partition public.metrics_d0 detached concurrently, 300 rows archived into … (1 chunk, 4 kB), dropped`. */
export function partitionSummary(r: PartitionOutcome, archiveFirst: boolean): string {
  if (r.gone) return `partition ${r.partition} is already gone`;
  if (r.detached === 'dropped-attached') return `partition ${r.partition} dropped`;
  const archived = r.archiveId ? `, ${plural(r.rows, 'row')} archived into ${r.archiveId} (${plural(r.chunks ?? 0, 'chunk')}, ${formatBytes(r.archiveBytes ?? 0)})` : archiveFirst ? ', empty: nothing to archive' : '';
  return `partition ${r.partition} ${HOW[r.detached]}${archived}, dropped`;
}

export const dropPartitionsHandler: Handler<RetentionDropPartitions> = async (action, ctx, progress) => {
  const r = await dropPartitions(ctx.desired, action.params, ctx.env);
  const archiveFirst = new Map(action.params.partitions.map((p) => [p.partition, p.archiveFirst]));
  const lines = r.partitions.map((p) => partitionSummary(p, archiveFirst.get(p.partition) ?? false));
  for (const line of lines) progress.note(line);
  const done = r.partitions.filter((p) => !p.gone);
  const rows = done.reduce((n, p) => n + p.rows, 0);
  const bytes = done.reduce((n, p) => n + (p.archiveBytes ?? 0), 0);
  const head = done.length === 0 ? `the partitions of ${action.params.table} planned to drop are already gone; nothing to do`
    : `${plural(done.length, 'partition')} of ${action.params.table} dropped`
      + (r.archiveIds.length ? `, ${plural(rows, 'row')} archived first (${plural(r.archiveIds.length, 'archive')}, ${formatBytes(bytes)})` : '');
  return { summary: done.length === 1 ? lines.find((l) => !l.endsWith('already gone'))! : head, details: { ...r, lines } };
};

/** Where the rows of a partition's archive go back: partitions that take its range, the partition created again, or the default. */
export interface PartitionPlacement { partition: string; how: 'existing' | 'created' | 'default' }

/**
 * Before an archive of a whole partition is restored through its parent: when no partition takes
 * its range, the partition is created again (its name and bounds from the archive's header);
 * when that cannot be done (the name is taken, the default partition holds rows of the range)
 * and there is a default partition, the default takes the rows.
 */
export async function placeArchivedPartition(client: pg.Client, header: ArchiveHeader): Promise<PartitionPlacement | null> {
  const archived = header.partition;
  if (!archived) return null;
  const parent = await inspectTable(client, header.table);
  const partitioning = parent ? await inspectPartitioning(client, parent, []) : null;
  if (!parent || !partitioning) return null;
  const from = boundTime(archived.from);
  const to = boundTime(archived.to);
  const taken = from !== null && to !== null ? coverage({ from, to }, partitioning.partitions) : { covered: false, by: [] };
  if (taken.covered) return { partition: taken.by.join(', '), how: 'existing' };
  try {
    await client.query(createPartitionSql(parent, archived.name, archived.from, archived.to).text);
    return { partition: archived.name, how: 'created' };
  } catch (e) {
    if (partitioning.defaultPartition) return { partition: partitioning.defaultPartition, how: 'default' };
    throw new JarvisError('RESTORE_FAILED', `no partition of ${header.table} takes the rows of ${archived.name} (${archived.from} … ${archived.to}) and it could not be created: ${messageOf(e)}`, {
      cause: e, hint: `create a partition of ${header.table} for that range (or a default partition), then restore again`,
    });
  }
}

/**
 * Daily partitions for [from, to] (UTC days) that no partition takes, created now: the seed
 * loads days of samples into a table a migration partitioned with only the days it had rows for.
 * Returns the names created.
 */
export async function createMissingDaily(client: Pick<pg.ClientBase, 'query'>, parent: Name, from: Date, to: Date): Promise<string[]> {
  const partitioning = await inspectPartitioning(client, parent, []);
  if (!partitioning) return [];
  const created: string[] = [];
  for (let day = intervalStart('1d', from); day.getTime() <= to.getTime(); day = nextStart('1d', day)) {
    const next = nextStart('1d', day);
    if (coverage({ from: day.getTime(), to: next.getTime() }, partitioning.partitions).covered) continue;
    const name = partitionName(parent.name, day);
    await client.query(createPartitionSql(parent, name, day.toISOString(), next.toISOString()).text);
    created.push(name);
  }
  return created;
}

export const createPartitionHandler: Handler<CreatePartition> = async (action, ctx) => {
  const p = action.params;
  const parent = { schema: p.tableSchema, name: p.tableName };
  const client = await openSession(postgresUrl(ctx.desired), DEFAULT_SESSION);
  try {
    const partitioning = await inspectPartitioning(client, parent, []);
    if (!partitioning) throw new JarvisError('RETENTION_FAILED', `table ${p.table} is not partitioned`, { hint: 'plan again' });
    const taken = coverage({ from: Date.parse(p.from), to: Date.parse(p.to) }, partitioning.partitions);
    if (taken.covered) return { summary: `partition ${p.partition} not created: ${taken.by.join(', ')} already take${taken.by.length === 1 ? 's' : ''} its range` };
    await client.query(createPartitionSql(parent, p.partition, p.from, p.to).text);
    return { summary: `created partition ${p.partition} of ${p.table} for ${p.from} … ${p.to}` };
  } finally {
    await client.end().catch(() => undefined);
  }
};
