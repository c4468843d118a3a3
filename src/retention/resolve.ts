/**
 * Settles pending chunks (published, but their deleting transaction's outcome not recorded:
 * the writer was killed between publishing a chunk and marking it). The server's commit log
 * is the truth: pg_xact_status(xid) says committed (the rows are gone: the chunk counts),
 * aborted (the rows are still in the table: the chunk is removed, so that restoring never
 * inserts them twice) or in progress (left for later). When the commit log no longer knows
 * the xid, or the archive comes from another cluster, the rows themselves decide: none of the
 * chunk's keys left in the table → committed; all of them → void; a mix stays pending and is
 * reported, never guessed.
 */
import type pg from 'pg';
import { JarvisError, messageOf } from '../errors.js';
import type { KeyRing } from '../storage/crypto.js';
import { inspectTable, type ColumnInfo, type TableInfo } from './catalog.js';
import { readChunk, type ChunkManifest, type Row } from './chunk.js';
import { databaseIdentity, serverVersion, xidStatus } from './session.js';
import { markCommitted, openChunk, removeChunk, scanArchives, type ArchiveEntry, type ArchivePlace } from './store.js';
import { countByKey } from './sql.js';

export interface Resolution {
  committed: number;
  voided: number;
  /** Chunks still pending, with why. */
  pending: { archive: string; chunk: number; why: string }[];
}

type Queryable = Pick<pg.ClientBase, 'query'>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The chunk's keys of its first (policy) table that are still in the live table. */
async function keysLeft(client: Queryable, archive: ArchiveEntry, manifest: ChunkManifest, ring: KeyRing | null): Promise<{ left: number; total: number } | string> {
  const first = manifest.tables[0];
  if (!first) return 'the chunk has no table';
  const table: TableInfo | null = await inspectTable(client, first.table);
  if (!table) return `table ${first.table} no longer exists`;
  const positions = first.primaryKey.map((k) => first.columns.findIndex((c) => c.name === k));
  const keyColumns = first.primaryKey.map((k) => table.columns.find((c) => c.name === k));
  if (positions.some((p) => p < 0) || keyColumns.some((c) => !c)) return `the primary key of ${first.table} changed`;
  const keys: Row[] = [];
  const read = await readChunk(openChunk(archive, manifest), manifest, ring, {
    row: (t, row) => { if (t === first.table) keys.push(positions.map((p) => row[p] ?? null)); },
  });
  if (!read.ok) return `unreadable: ${read.problem}`;
  const r = await client.query<{ n: number }>(countByKey(table, keyColumns as ColumnInfo[]).text, first.primaryKey.map((_, i) => keys.map((k) => k[i])));
  return { left: r.rows[0]!.n, total: keys.length };
}

export async function resolvePending(client: Queryable, place: ArchivePlace, options: { policy?: string; ring: KeyRing | null; waitMs?: number }): Promise<Resolution> {
  const out: Resolution = { committed: 0, voided: 0, pending: [] };
  const { archives } = await scanArchives(place);
  const mine = archives.filter((a) => (!options.policy || a.header.policy === options.policy) && a.chunks.some((c) => c.state === 'pending'));
  if (mine.length === 0) return out;
  const identity = await databaseIdentity(client);
  const version = await serverVersion(client);
  const deadline = Date.now() + (options.waitMs ?? 5_000);
  for (const archive of mine) {
    const sameCluster = archive.header.database.systemIdentifier === identity.systemIdentifier && archive.header.database.database === identity.database;
    for (const chunk of archive.chunks.filter((c) => c.state === 'pending')) {
      const verdict = await decide(client, archive, chunk.manifest, { sameCluster, version, ring: options.ring, deadline });
      if (verdict.state === 'committed') {
        await markCommitted(archive, chunk.manifest.chunk);
        out.committed++;
      } else if (verdict.state === 'void') {
        await removeChunk(archive, chunk.manifest);
        out.voided++;
      } else {
        out.pending.push({ archive: archive.header.id, chunk: chunk.manifest.chunk, why: verdict.why });
      }
    }
  }
  return out;
}

async function decide(client: Queryable, archive: ArchiveEntry, manifest: ChunkManifest, o: { sameCluster: boolean; version: number; ring: KeyRing | null; deadline: number }): Promise<{ state: 'committed' | 'void' | 'pending'; why: string }> {
  if (o.sameCluster) {
    for (;;) {
      let status: string | null;
      try {
        status = await xidStatus(client, o.version, manifest.xid);
      } catch {
        status = null; // an xid this server never issued: the database was restored from elsewhere
      }
      if (status === 'committed') return { state: 'committed', why: '' };
      if (status === 'aborted') return { state: 'void', why: '' };
      if (status !== 'in progress') break;
      // A killed writer's transaction ends as soon as the server notices the lost connection.
      if (Date.now() >= o.deadline) return { state: 'pending', why: `transaction ${manifest.xid} is still in progress` };
      await sleep(200);
    }
  }
  let left: Awaited<ReturnType<typeof keysLeft>>;
  try {
    left = await keysLeft(client, archive, manifest, o.ring);
  } catch (e) {
    if (e instanceof JarvisError) throw e;
    left = messageOf(e);
  }
  if (typeof left === 'string') return { state: 'pending', why: left };
  if (left.left === 0) return { state: 'committed', why: '' };
  if (left.left === left.total) return { state: 'void', why: '' };
  return { state: 'pending', why: `${left.left} of its ${left.total} rows are in the table again; decide by hand` };
}
