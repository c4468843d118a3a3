/**
 * The archive action (docs/architecture.md §4 rule 3). Per batch, in one transaction:
 *   1. lock the next keys (FOR UPDATE SKIP LOCKED, in (age, key) order): a parent locked
 *      FOR UPDATE cannot gain a child until the transaction ends;
 *   2. delete the rows of each child table that point at them, returning them as chunk lines
 *      (built by the server), and check that none is left (the cascade would take it unarchived);
 *   3. delete the parents by key, returning them as chunk lines;
 *   4. write the chunk (zstd or gzip, fsync, manifest published: store.ts);
 *   5. COMMIT, then mark the chunk committed.
 * A plain table without children does 1 and 3 in one statement (sql.ts archiveBatchByCtid).
 * The rows disappear only if the transaction commits, and it commits only once their chunk is
 * durable. A crash before 5 rolls the deletes back and leaves a pending chunk that resolve.ts
 * voids (or keeps, if the commit made it), so no row is lost and none is restored twice.
 *
 * Two connections take turns: while one batch's chunk is compressed and fsynced (in the
 * thread pool), the next batch is selected and deleted on the other connection. The batches
 * never share a row (the keyset starts after the previous batch), and each still commits only
 * after its own chunk is durable.
 */
import type pg from 'pg';
import type { Desired } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { postgresUrl } from '../services/postgres.js';
import { EncryptionSession, keyRingFromEnv } from '../storage/crypto.js';
import { testPausePoint } from '../storage/durable.js';
import { displayName, type ColumnInfo, type TableInfo } from './catalog.js';
import { keyRange, type ChunkManifest, type ChunkTable, type Row } from './chunk.js';
import { account, batchSizeOf, isTransient, keysOf, phasesOf, selectValues, type BatchContext, type Walk } from './batches.js';
import { resolvePending } from './resolve.js';
import { beginSql, currentXid, databaseIdentity, openSession, RAW, serverVersion } from './session.js';
import { ageBoundOf, archiveBatchByCtid, childrenLeft, deleteChildrenReturningRows, deleteReturningRows, selectBatch } from './sql.js';
import { ArchiveWriter, archiveRepository, cleanArchiveDebris } from './store.js';

function columnsMeta(table: TableInfo): { columns: { name: string; type: string }[]; primaryKey: string[] } {
  return { columns: table.columns.map((c) => ({ name: c.name, type: c.type })), primaryKey: [...table.primaryKey] };
}

function keyTypes(table: TableInfo): string[] {
  return table.primaryKey.map((k) => (table.columns.find((c) => c.name === k) as ColumnInfo).type);
}

type Part = { table: string; columns: string[]; lines: string[]; meta: Omit<ChunkTable, 'rows' | 'table'> };

/** A batch whose rows are deleted in its open transaction and whose chunk is being written. */
interface Started {
  conn: pg.Client;
  began: number;
  /** The batch's rows, and its last (age, key): where the next batch starts. */
  rows: number;
  keyset: Row;
  children: number[];
  chunk: Promise<ChunkManifest>;
}

export async function runArchive(ctx: BatchContext, desired: Desired): Promise<void> {
  const { client, resolved, options } = ctx;
  const env = options.env;
  const enc = desired.storage.encryption;
  const ring = enc ? keyRingFromEnv(enc.passphraseEnv, env) : null;
  // What earlier, interrupted runs left: settled first, so this run starts from the truth.
  await cleanArchiveDebris(archiveRepository(desired));
  const settled = await resolvePending(client, archiveRepository(desired), { policy: ctx.policy.name, ring });
  ctx.result.resolved = { committed: settled.committed, voided: settled.voided, pending: settled.pending.length };
  const version = await serverVersion(client);
  const writer = await ArchiveWriter.begin(archiveRepository(desired), {
    policy: ctx.policy.name, table: displayName(resolved.table), children: resolved.children.map((c) => displayName(c.info)),
    ageColumn: resolved.age.name, cutoff: ctx.params.cutoff, database: await databaseIdentity(client),
  }, { now: options.now?.() ?? new Date(), encryption: ring ? new EncryptionSession(ring) : null, env });
  ctx.result.archiveId = writer.header.id;
  ctx.result.chunks = 0;
  ctx.result.archiveBytes = 0;
  const timings = { selectMs: 0, deleteMs: 0, writeMs: 0, commitMs: 0 };
  ctx.result.timings = timings;

  // The batch's select returns the age, the key, then the parent columns the children point at.
  const ordered = [resolved.age, ...resolved.primaryKey];
  const extra = resolved.children.map((c) => c.parentColumn).filter((c, i, all) => !ordered.some((o) => o.name === c.name) && all.findIndex((x) => x.name === c.name) === i);
  const selected = [...ordered, ...extra];
  const keyPos = resolved.primaryKey.map((_, i) => i + 1);
  const bound = ageBoundOf(resolved.table, resolved.age, resolved.primaryKey);
  const del = deleteReturningRows(resolved.table, resolved.primaryKey, bound);
  const childSql = resolved.children.map((child) => ({
    child, del: deleteChildrenReturningRows(child), left: childrenLeft(child),
    parentPos: selected.findIndex((c) => c.name === child.parentColumn.name),
  }));

  // A plain table without children: steps 1 and 3 in one statement, no key list sent back and forth.
  const oneStatement = resolved.table.plain === true && childSql.length === 0;
  const tableMeta = { table: displayName(resolved.table), columns: resolved.table.columns.map((x) => x.name), meta: columnsMeta(resolved.table) };

  /** Steps 1 and 3 at once (archiveBatchByCtid): the rows come back as [line, age, key…], in order. */
  const lockAndDelete = async (conn: pg.Client, walk: Walk): Promise<{ parts: Part[]; rows: number; keyset: Row } | null> => {
    const res = await conn.query<Row>({ text: archiveBatchByCtid(resolved, walk.phase, { keyset: walk.keyset !== null }).text, values: selectValues(walk, batchSizeOf(ctx)), rowMode: 'array', types: RAW });
    const rows = res.rows;
    if (rows.length === 0) return null;
    const lines = new Array<string>(rows.length);
    for (let i = 0; i < rows.length; i++) lines[i] = rows[i]![0]!;
    const { table, columns, meta } = tableMeta;
    return {
      parts: [{ table, columns, lines, meta: { ...meta, keyRange: keyRange(rows, keyPos.map((p) => p + 1), keyTypes(resolved.table)) } }],
      rows: rows.length, keyset: rows[rows.length - 1]!.slice(1, 1 + ordered.length),
    };
  };

  /** Steps 1-3 and the start of 4; null when no row is left in this phase. */
  const start = async (conn: pg.Client, walk: Walk): Promise<Started | null> => {
    for (let attempt = 1; ; attempt++) {
      const began = performance.now();
      await conn.query(beginSql(ctx.session));
      try {
        const xid = await currentXid(conn, version);
        if (oneStatement) {
          const batch = await lockAndDelete(conn, walk);
          if (!batch) {
            await conn.query('ROLLBACK');
            return null;
          }
          const deletedAt = performance.now();
          timings.deleteMs += deletedAt - began;
          await testPausePoint('archive-selected', env);
          const chunk = writer.publishChunk(batch.parts, { xid, now: options.now?.() ?? new Date() });
          chunk.then(() => { timings.writeMs += performance.now() - deletedAt; }, () => undefined);
          return { conn, began, rows: batch.rows, keyset: batch.keyset, children: [], chunk };
        }
        const sel = await conn.query<Row>({ text: selectBatch(resolved, walk.phase, { keyset: walk.keyset !== null, extra }).text, values: selectValues(walk, batchSizeOf(ctx)), rowMode: 'array', types: RAW });
        const keys = sel.rows;
        const selectedAt = performance.now();
        timings.selectMs += selectedAt - began;
        if (keys.length === 0) {
          await conn.query('ROLLBACK');
          return null;
        }
        // Children first: deleting the parents would take them through the cascade, unarchived.
        const parts: Part[] = [];
        const children: number[] = [];
        for (const c of childSql) {
          const refs = keys.map((r) => r[c.parentPos] ?? null);
          const kids = await conn.query<Row>({ text: c.del.text, values: [refs], rowMode: 'array', types: RAW });
          const left = await conn.query<{ left: boolean }>(c.left.text, [refs]);
          if (left.rows[0]!.left) throw new JarvisError('RETENTION_FAILED', `rows of ${displayName(c.child.info)} appeared under archived parents; the batch is rolled back`);
          children.push(kids.rows.length);
          parts.push({
            table: displayName(c.child.info), columns: c.child.info.columns.map((x) => x.name), lines: kids.rows.map((r) => r[0]!),
            meta: { ...columnsMeta(c.child.info), keyRange: keyRange(kids.rows.map((r) => r.slice(1)), c.child.info.primaryKey.map((_, i) => i), keyTypes(c.child.info)) },
          });
        }
        const keyValues = keysOf(keys, keyPos);
        const gone = await conn.query<{ j: string }>({ text: del.text, values: bound ? [...keyValues, keys[keys.length - 1]![0] ?? null] : keyValues, types: RAW });
        if (gone.rows.length !== keys.length) throw new JarvisError('RETENTION_FAILED', `deleted ${gone.rows.length} rows of ${ctx.result.table} for ${keys.length} locked keys`);
        parts.unshift({
          table: displayName(resolved.table), columns: resolved.table.columns.map((x) => x.name), lines: gone.rows.map((x) => x.j),
          meta: { ...columnsMeta(resolved.table), keyRange: keyRange(keys, keyPos, keyTypes(resolved.table)) },
        });
        const deletedAt = performance.now();
        timings.deleteMs += deletedAt - selectedAt;
        await testPausePoint('archive-selected', env);
        const chunk = writer.publishChunk(parts, { xid, now: options.now?.() ?? new Date() });
        chunk.then(() => { timings.writeMs += performance.now() - deletedAt; }, () => undefined);
        return { conn, began, rows: keys.length, keyset: ordered.map((_, i) => keys[keys.length - 1]![i] ?? null), children, chunk };
      } catch (e) {
        const rolledBack = await conn.query('ROLLBACK').then(() => true, () => false);
        if (rolledBack && isTransient(e) && attempt < ctx.retries) continue;
        throw e;
      }
    }
  };

  /** Step 4's end and step 5: the chunk is durable, the transaction commits, the chunk is marked. */
  const finish = async (b: Started): Promise<void> => {
    let manifest: ChunkManifest | null = null;
    try {
      manifest = await b.chunk;
      await testPausePoint('chunk-published', env);
      await testPausePoint('before-commit', env);
      const committing = performance.now();
      await b.conn.query('COMMIT');
      timings.commitMs += performance.now() - committing;
    } catch (e) {
      await abort(b, manifest);
      throw e;
    }
    await testPausePoint('committed', env);
    await writer.markCommitted(manifest.chunk);
    ctx.result.chunks!++;
    ctx.result.archiveBytes! += manifest.file.bytes;
    b.children.forEach((n, i) => {
      const name = displayName(childSql[i]!.child.info);
      ctx.result.childRows[name] = (ctx.result.childRows[name] ?? 0) + n;
    });
    account(ctx, b.rows, performance.now() - b.began);
  };

  /** A batch that cannot commit: rolled back, its chunk (if published) voided. Unknown outcomes stay pending for resolve.ts. */
  const abort = async (b: Started, manifest: ChunkManifest | null): Promise<void> => {
    const rolledBack = await b.conn.query('ROLLBACK').then(() => true, () => false);
    const published = manifest ?? (await b.chunk.catch(() => null));
    if (rolledBack && published) await writer.voidChunk(published).catch(() => undefined);
  };

  const second = await openSession(postgresUrl(desired), ctx.session);
  const conns = [client, second];
  let turn = 0;
  let inflight: Started | null = null;
  try {
    for (const phase of phasesOf(ctx.params)) {
      const walk: Walk = { phase, keyset: null };
      for (;;) {
        if (options.signal?.aborted) break;
        // The next batch's server work and the previous batch's commit run side by side.
        const done: Started | null = inflight;
        inflight = null;
        const [started, finished]: [PromiseSettledResult<Started | null>, PromiseSettledResult<void>] = await Promise.allSettled([start(conns[turn++ % 2]!, walk), done ? finish(done) : Promise.resolve()]);
        if (finished.status === 'rejected') {
          if (started.status === 'fulfilled' && started.value) await abort(started.value, null);
          throw finished.reason;
        }
        if (started.status === 'rejected') throw started.reason;
        const next: Started | null = started.value;
        if (!next) break;
        walk.keyset = next.keyset;
        inflight = next;
      }
    }
    if (inflight) {
      const done: Started = inflight;
      inflight = null;
      await finish(done);
    }
  } catch (e) {
    if (inflight) await abort(inflight, null);
    options.log?.('retention.archive.failed', { policy: ctx.policy.name, error: messageOf(e) });
    throw e;
  } finally {
    await second.end().catch(() => undefined);
    const kept = await writer.finish().catch(() => true);
    if (!kept) delete ctx.result.archiveId;
  }
}
