/**
 * The partition actions (I/O; the decisions are partition-plan.ts's).
 *
 * retention_drop_partition, never losing a row (docs/architecture.md §4 rules 3 and 10):
 *   1. the partition is marked (a table comment: policy, parent, range, archive or not), so that
 *      once detached the next observation finds it and plans to finish it;
 *   2. DETACH PARTITION … CONCURRENTLY (PostgreSQL 14+, no default partition; outside a
 *      transaction block, so concurrent inserts into the parent go on), else a plain DETACH under
 *      the lock timeout; an interrupted concurrent detach is FINALIZEd;
 *   3. archive: in ONE transaction that holds the detached table's lock, every row is read with a
 *      cursor into chunks written durably (store.ts) under that transaction's xid, and the table
 *      is dropped; COMMIT; then the chunks are marked committed. A crash before the COMMIT rolls
 *      the drop back (the table is still there, marked, and its chunks are void: resolve.ts
 *      removes them); after it, the chunks count (resolve.ts finds the xid committed). So the
 *      rows are always in exactly one place: the parent, the detached table, or the archive.
 *   delete: the detached table is dropped.
 * create_partition: a declared partition still to come, created unless a partition now takes its range.
 */
import type pg from 'pg';
import type { Desired, RetentionPolicy } from '../config/types.js';
import type { CreatePartition, Handler, RetentionDropPartition } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { formatBytes, plural } from '../render/format.js';
import { postgresUrl } from '../services/postgres.js';
import { EncryptionSession, keyRingFromEnv } from '../storage/crypto.js';
import { testPausePoint } from '../storage/durable.js';
import { inspectTable, type TableInfo } from './catalog.js';
import { keyRange, type ChunkManifest, type Row } from './chunk.js';
import type { DropPartitionParams } from './action-params.js';
import { boundTime, findDetached, inspectPartitioning, type DetachMarker } from './partition-catalog.js';
import { CONCURRENT_DETACH_VERSION } from './partition-plan.js';
import { coverage, intervalStart, nextStart, partitionName } from './partition-declare.js';
import { createPartitionSql, declareRowsCursor, detachSql, dropSql, fetchSql, lockSql, markSql, type Name } from './partition-sql.js';
import { isTransient } from './batches.js';
import { resolvePending } from './resolve.js';
import { beginSql, currentXid, databaseIdentity, DEFAULT_SESSION, openSession, RAW, serverVersion } from './session.js';
import { ArchiveWriter, archiveRepository, cleanArchiveDebris, type ArchiveHeader } from './store.js';

export interface DropPartitionResult {
  partition: string;
  /** Already gone when the action ran (dropped by an earlier run whose chunks settled). */
  gone: boolean;
  detached: 'concurrently' | 'plain' | 'finalize' | 'earlier';
  rows: number;
  archiveId?: string;
  chunks?: number;
  archiveBytes?: number;
  ms: number;
}

/** Attempts of a plain DETACH that could not have its lock within the lock timeout. */
const DETACH_ATTEMPTS = 3;

const same = (a: Name, b: Name) => a.schema === b.schema && a.name === b.name;

/** The policy the action names, as the config has it now. */
function policyOf(desired: Desired, params: DropPartitionParams): RetentionPolicy {
  const policy = desired.retention.find((p) => p.name === params.policy);
  if (!policy?.enabled) throw new JarvisError('PLAN_INVALID', `the plan names retention policy "${params.policy}", which is not an enabled policy of the config; plan again`);
  if (!params.detached && (policy.action === 'archive') !== params.archiveFirst) throw new JarvisError('PLAN_INVALID', `the plan says ${params.archiveFirst ? 'archive' : 'delete'} for ${policy.name}, whose action is now ${policy.action}; plan again`);
  return policy;
}

/** Detaches the partition (marked first), unless an earlier run did; returns its marker. */
async function detach(client: pg.Client, policy: RetentionPolicy, params: DropPartitionParams, parent: TableInfo, env: NodeJS.ProcessEnv): Promise<{ marker: DetachMarker; how: DropPartitionResult['detached'] } | null> {
  const partition = { schema: params.partitionSchema, name: params.partitionName };
  const partitioning = await inspectPartitioning(client, parent, []);
  const live = partitioning?.partitions.find((p) => same(p, partition));
  if (!partitioning || !live) return null;
  // The live bound, not the planned one: a partition re-created with newer rows is not dropped.
  const to = live.range ? boundTime(live.range.to) : null;
  if (to === null || to > Date.parse(params.cutoff)) {
    throw new JarvisError('RETENTION_FAILED', `partition ${params.partition} now holds rows up to ${live.range?.to ?? live.bound}, not wholly older than the planned cut-off ${params.cutoff}`, { hint: 'plan again' });
  }
  const marker: DetachMarker = {
    policy: policy.name, parent: `${parent.schema}.${parent.name}`, parentSchema: parent.schema, parentName: parent.name,
    column: params.column, range: live.range, archiveFirst: params.archiveFirst,
  };
  const { parent: _display, ...stored } = marker;
  await client.query(markSql(partition, stored).text);
  await testPausePoint('partition-marked', env);
  const version = await serverVersion(client);
  const how = live.detachPending ? 'finalize' : version >= CONCURRENT_DETACH_VERSION && partitioning.defaultPartition === null ? 'concurrently' : 'plain';
  if (how === 'plain') {
    // Takes the parent's ACCESS EXCLUSIVE lock: under the lock timeout, tried again when it could not be had.
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(`${beginSql(DEFAULT_SESSION)}; ${detachSql(parent, partition, how).text}; COMMIT`);
        break;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (!isTransient(e) || attempt >= DETACH_ATTEMPTS) throw e;
      }
    }
  } else await client.query(detachSql(parent, partition, how).text);
  await testPausePoint('partition-detached', env);
  return { marker, how };
}

/** Step 3: the detached table's rows into an archive and the table dropped, in one transaction. */
async function archiveAndDrop(client: pg.Client, desired: Desired, policy: RetentionPolicy, table: Name, columns: TableInfo, marker: DetachMarker, params: DropPartitionParams, env: NodeJS.ProcessEnv, result: DropPartitionResult): Promise<void> {
  const repo = archiveRepository(desired, env);
  const enc = desired.storage.encryption;
  const ring = enc ? keyRingFromEnv(enc.passphraseEnv, env) : null;
  // An earlier attempt's chunks: void if its drop rolled back (the table is still here).
  await cleanArchiveDebris(repo);
  await resolvePending(client, repo, { policy: policy.name, ring });
  const version = await serverVersion(client);
  const parentName = marker.parent;
  const writer = await ArchiveWriter.begin(repo, {
    policy: policy.name, table: parentName, children: [], ageColumn: marker.column, cutoff: params.cutoff, database: await databaseIdentity(client),
    partition: { schema: table.schema, name: table.name, from: marker.range?.from ?? 'MINVALUE', to: marker.range?.to ?? 'MAXVALUE' },
  }, { now: new Date(), encryption: ring ? new EncryptionSession(ring) : null, env });
  result.archiveId = writer.header.id;
  const pk = columns.primaryKey;
  const keyTypes = pk.map((k) => columns.columns.find((c) => c.name === k)?.type ?? 'text');
  const meta = { columns: columns.columns.map((c) => ({ name: c.name, type: c.type })), primaryKey: [...pk] };
  const published: ChunkManifest[] = [];
  await client.query(beginSql({ ...DEFAULT_SESSION, statementTimeoutMs: 0 }));
  try {
    await client.query(lockSql(table).text);
    const xid = await currentXid(client, version);
    await client.query(declareRowsCursor('jarvis_db_partition_rows', table, columns.columns, pk).text);
    for (;;) {
      const r = await client.query<Row>({ text: fetchSql('jarvis_db_partition_rows', policy.batchSize).text, rowMode: 'array', types: RAW });
      if (r.rows.length === 0) break;
      const keys = r.rows.map((x) => x.slice(1));
      published.push(await writer.publishChunk([{
        table: parentName, columns: columns.columns.map((c) => c.name), lines: r.rows.map((x) => x[0]!),
        meta: { ...meta, keyRange: keyRange(keys, pk.map((_, i) => i), keyTypes) },
      }], { xid, now: new Date() }));
      result.rows += r.rows.length;
      await testPausePoint('partition-chunk-published', env);
    }
    await client.query('CLOSE jarvis_db_partition_rows');
    await client.query(dropSql(table).text);
    await testPausePoint('partition-before-commit', env);
    await client.query('COMMIT');
  } catch (e) {
    const rolledBack = await client.query('ROLLBACK').then(() => true, () => false);
    if (rolledBack) for (const m of published) await writer.voidChunk(m).catch(() => undefined);
    await writer.finish().catch(() => true);
    throw e;
  }
  await testPausePoint('partition-dropped', env);
  for (const m of published) {
    await writer.markCommitted(m.chunk);
    result.archiveBytes = (result.archiveBytes ?? 0) + m.file.bytes;
  }
  result.chunks = published.length;
  if (!(await writer.finish())) delete result.archiveId;
}

export async function dropPartition(desired: Desired, params: DropPartitionParams, env: NodeJS.ProcessEnv): Promise<DropPartitionResult> {
  const started = performance.now();
  const policy = policyOf(desired, params);
  const table = { schema: params.partitionSchema, name: params.partitionName };
  const result: DropPartitionResult = { partition: params.partition, gone: false, detached: 'earlier', rows: 0, ms: 0 };
  const client = await openSession(postgresUrl(desired), DEFAULT_SESSION);
  try {
    const lock = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok`, [`jarvis-db retention ${policy.name}`]);
    if (!lock.rows[0]!.ok) throw new JarvisError('RETENTION_FAILED', `policy ${policy.name} is being run by another jarvis-db process`, { hint: 'wait for it to finish' });
    const parent = await inspectTable(client, policy.table);
    let marker = (await findDetached(client)).find((d) => same(d, table))?.marker ?? null;
    if (!marker) {
      if (!parent) throw new JarvisError('RETENTION_FAILED', `policy "${policy.name}": table ${policy.table} does not exist`, { hint: 'plan again' });
      const detached = await detach(client, policy, params, parent, env);
      if (!detached) {
        result.gone = true;
        return result;
      }
      marker = detached.marker;
      result.detached = detached.how;
    }
    if (marker.archiveFirst) {
      // The parent's columns: a partition has the same.
      if (!parent) throw new JarvisError('RETENTION_FAILED', `${params.partition} is kept: its parent ${marker.parent} (whose columns its archive records) does not exist`, { hint: `attach it again, or archive it by hand, then DROP TABLE it` });
      await archiveAndDrop(client, desired, policy, table, parent, marker, params, env, result);
    } else {
      await client.query(`${beginSql(DEFAULT_SESSION)}; ${lockSql(table).text}; ${dropSql(table).text}; COMMIT`).catch(async (e: unknown) => {
        await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      });
    }
    return result;
  } finally {
    result.ms = Math.round(performance.now() - started);
    await client.end().catch(() => undefined);
  }
}

export const dropPartitionHandler: Handler<RetentionDropPartition> = async (action, ctx) => {
  const r = await dropPartition(ctx.desired, action.params, ctx.env);
  if (r.gone) return { summary: `partition ${r.partition} is already gone; nothing to do`, details: { ...r } };
  const how = { concurrently: 'detached concurrently', plain: 'detached', finalize: 'its interrupted detach finalized', earlier: 'detached by an earlier run' }[r.detached];
  const archived = r.archiveId ? `, ${plural(r.rows, 'row')} archived into ${r.archiveId} (${plural(r.chunks ?? 0, 'chunk')}, ${formatBytes(r.archiveBytes ?? 0)})` : action.params.archiveFirst ? ', empty: nothing to archive' : '';
  return { summary: `partition ${r.partition} ${how}${archived}, dropped`, details: { ...r } };
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
