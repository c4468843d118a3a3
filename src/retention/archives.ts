/**
 * What `jarvis-db archive list|verify|restore` and the prune_archive handler do with archives.
 * Restore re-inserts the rows of committed chunks only (pending ones are settled against the
 * server first), parents before children, each chunk in one transaction, with the identity
 * values kept (OVERRIDING SYSTEM VALUE) and ON CONFLICT DO NOTHING: a row that is already
 * there is left alone, so restoring twice, or restoring chunks that overlap after a row was
 * restored and archived again, never duplicates a row.
 */
import type pg from 'pg';
import type { Desired } from '../config/types.js';
import type { ApplyReporter, EngineParts } from '../engine/index.js';
import type { Handler, Progress, RestoreArchive } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { postgresUrl, sqlState } from '../services/postgres.js';
import { keyRingFromEnv, type KeyRing } from '../storage/crypto.js';
import { inspectTable, type ColumnInfo, type TableInfo } from './catalog.js';
import { readChunk, type Row } from './chunk.js';
import { resolvePending, type Resolution } from './resolve.js';
import { beginSql, DEFAULT_SESSION, openSession } from './session.js';
import { restoreInsert } from './sql.js';
import type { PartitionPlacement } from './partition-run.js';
import { openRepositories } from '../storage/repositories.js';
import { archiveRepository, findArchive, openChunk, reloadArchive, scanArchives, summarize, verifyArchive, type ArchiveEntry, type ArchiveSummary, type ChunkVerification } from './store.js';

/**
 * An archive by id (or prefix) in the first repository, else in the first other repository that
 * holds it: after the loss of the host, the copies are what `archive verify|restore` read.
 */
export async function locateArchive(desired: Desired, id: string, env: NodeJS.ProcessEnv = process.env): Promise<ArchiveEntry> {
  let notFound: unknown;
  for (const repository of openRepositories(desired, env)) {
    try {
      return await findArchive(repository, id);
    } catch (e) {
      if (!(e instanceof JarvisError && e.code === 'ARCHIVE_INVALID')) throw e;
      notFound ??= e;
    }
  }
  throw notFound;
}

export function archiveKeyRing(desired: Desired, env: NodeJS.ProcessEnv, entry?: ArchiveEntry): KeyRing | null {
  const enc = desired.storage.encryption;
  if (entry && !entry.header.encrypted) return null;
  if (!enc) {
    if (entry?.header.encrypted) throw new JarvisError('DECRYPT_FAILED', `archive ${entry.header.id} is encrypted, but storage.encryption is not configured`, { hint: 'set storage.encryption.passphraseEnv to the variable holding its passphrase' });
    return null;
  }
  return keyRingFromEnv(enc.passphraseEnv, env);
}

/** Settles the pending chunks of one archive (or all) against the configured database. */
export async function settle(desired: Desired, env: NodeJS.ProcessEnv, entry?: ArchiveEntry): Promise<Resolution> {
  const client = await openSession(postgresUrl(desired), DEFAULT_SESSION, 'jarvis-db archive');
  try {
    return await resolvePending(client, archiveRepository(desired), { ring: archiveKeyRing(desired, env, entry), ...(entry ? { policy: entry.header.policy } : {}) });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The archives of every repository, each once, oldest first; with several repositories each
 * says where it is (`repositories`). A repository that cannot be read is reported in `invalid`.
 */
export async function listArchives(desired: Desired, env: NodeJS.ProcessEnv = process.env): Promise<{ archives: ArchiveSummary[]; invalid: { dir: string; problem: string }[] }> {
  const repositories = openRepositories(desired, env);
  const scan = await scanArchives(repositories[0]!);
  if (repositories.length === 1) return { archives: scan.archives.map(summarize), invalid: scan.invalid };
  const byId = new Map(scan.archives.map((a) => [a.header.id, { ...summarize(a), repositories: [repositories[0]!.name] }]));
  const invalid = [...scan.invalid];
  for (const repository of repositories.slice(1)) {
    let other: Awaited<ReturnType<typeof scanArchives>>;
    try {
      other = await scanArchives(repository);
    } catch (e) {
      invalid.push({ dir: repository.location, problem: `cannot be read: ${messageOf(e)}` });
      continue;
    }
    invalid.push(...other.invalid);
    for (const a of other.archives) {
      const known = byId.get(a.header.id);
      if (known) known.repositories.push(repository.name);
      else byId.set(a.header.id, { ...summarize(a), repositories: [repository.name] });
    }
  }
  const archives = [...byId.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  return { archives, invalid };
}

export interface ArchiveVerifyResult {
  archive: ArchiveSummary;
  ok: boolean;
  chunks: ChunkVerification[];
  problems: string[];
  resolution: Resolution | null;
}

/** Settles pending chunks when the database is reachable, then reads every chunk end to end. */
export async function verifyArchiveById(desired: Desired, id: string, env: NodeJS.ProcessEnv, options: { settle: boolean } = { settle: true }): Promise<ArchiveVerifyResult> {
  let entry = await locateArchive(desired, id, env);
  let resolution: Resolution | null = null;
  if (options.settle && entry.chunks.some((c) => c.state === 'pending') && desired.services.postgres) {
    resolution = await settle(desired, env, entry);
    entry = await reloadArchive(entry);
  }
  const v = await verifyArchive(entry, archiveKeyRing(desired, env, entry));
  const problems = [...v.problems];
  for (const c of entry.chunks.filter((x) => x.state === 'pending')) problems.push(`chunk ${c.manifest.chunk} is pending: whether its rows were deleted is not settled yet`);
  return { archive: summarize(entry), ok: problems.length === 0, chunks: v.chunks, problems, resolution };
}

export interface ArchiveRestoreResult {
  archiveId: string;
  chunks: number;
  inserted: Record<string, number>;
  /** Rows already present (ON CONFLICT DO NOTHING). */
  alreadyThere: Record<string, number>;
  pendingSkipped: number;
  /** An archive of a whole partition: where its rows went back (partition-run.ts). */
  partition?: PartitionPlacement;
}

const INSERT_ROWS = 1000;

interface LiveTable { info: TableInfo; columns: ColumnInfo[]; positions: number[] }

async function liveTable(client: pg.Client, archived: { table: string; columns: { name: string }[] }): Promise<LiveTable> {
  const info = await inspectTable(client, archived.table);
  if (!info) throw new JarvisError('RESTORE_FAILED', `table ${archived.table} does not exist; create it (migrate) before restoring`);
  const columns: ColumnInfo[] = [];
  const positions: number[] = [];
  archived.columns.forEach((c, i) => {
    const live = info.columns.find((x) => x.name === c.name);
    if (!live) throw new JarvisError('RESTORE_FAILED', `column ${c.name} of ${archived.table} no longer exists; the archive cannot be restored into this table as is`);
    if (live.generated) return;
    columns.push(live);
    positions.push(i);
  });
  return { info, columns, positions };
}

export async function restoreArchiveById(desired: Desired, id: string, options: { table?: string; env: NodeJS.ProcessEnv; progress?: Progress }): Promise<ArchiveRestoreResult> {
  let entry = await locateArchive(desired, id, options.env);
  const ring = archiveKeyRing(desired, options.env, entry);
  const client = await openSession(postgresUrl(desired), DEFAULT_SESSION, 'jarvis-db archive restore');
  try {
    if (entry.chunks.some((c) => c.state === 'pending')) {
      await resolvePending(client, archiveRepository(desired), { policy: entry.header.policy, ring });
      entry = await reloadArchive(entry);
    }
    const tables = [entry.header.table, ...entry.header.children];
    let only: string | undefined;
    if (options.table) {
      only = tables.find((t) => t === options.table || t.split('.').slice(1).join('.') === options.table);
      if (!only) throw new JarvisError('USAGE', `archive ${entry.header.id} holds ${tables.join(', ')}, not ${options.table}`);
    }
    const committed = entry.chunks.filter((c) => c.state === 'committed');
    // Everything is checked before the first row goes in.
    const check = await verifyArchive({ ...entry, chunks: committed }, ring);
    if (!check.ok) throw new JarvisError('ARCHIVE_INVALID', `archive ${entry.header.id} fails verification: ${check.problems[0]}`, { hint: `jarvis-db archive verify ${entry.header.id} lists every problem` });
    const result: ArchiveRestoreResult = { archiveId: entry.header.id, chunks: 0, inserted: {}, alreadyThere: {}, pendingSkipped: entry.chunks.length - committed.length };
    if (entry.header.partition && committed.length) {
      const { placeArchivedPartition } = await import('./partition-run.js');
      const placed = await placeArchivedPartition(client, entry.header);
      if (placed) result.partition = placed;
    }
    const live = new Map<string, LiveTable>();
    let done = 0;
    const total = committed.reduce((n, c) => n + c.manifest.rows, 0);
    for (const chunk of committed) {
      await client.query(beginSql({ ...DEFAULT_SESSION, statementTimeoutMs: 600_000 }));
      try {
        let buffer: Row[] = [];
        let current: string | null = null;
        const flush = async () => {
          if (!current || buffer.length === 0) return;
          const t = live.get(current)!;
          const values = t.positions.map((p) => buffer.map((r) => r[p] ?? null));
          const r = await client.query(restoreInsert(t.info, t.columns).text, values);
          const inserted = r.rowCount ?? 0;
          result.inserted[current] = (result.inserted[current] ?? 0) + inserted;
          result.alreadyThere[current] = (result.alreadyThere[current] ?? 0) + buffer.length - inserted;
          done += buffer.length;
          options.progress?.update(done, total);
          buffer = [];
        };
        const read = await readChunk(openChunk(entry, chunk.manifest), chunk.manifest, ring, {
          header: async (table) => {
            await flush();
            current = only && table !== only ? null : table;
            const meta = chunk.manifest.tables.find((t) => t.table === table)!;
            if (current && !live.has(table)) live.set(table, await liveTable(client, meta));
          },
          row: async (_table, row) => {
            if (!current) return;
            buffer.push(row);
            if (buffer.length >= INSERT_ROWS) await flush();
          },
        });
        await flush();
        if (!read.ok) throw new JarvisError('ARCHIVE_INVALID', `chunk ${chunk.manifest.chunk} of ${entry.header.id}: ${read.problem}`);
        await client.query('COMMIT');
        result.chunks++;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (e instanceof JarvisError) throw e;
        const state = sqlState(e);
        throw new JarvisError('RESTORE_FAILED', `restoring chunk ${chunk.manifest.chunk} of ${entry.header.id} failed: ${messageOf(e)}`, {
          cause: e, ...(state === '23503' ? { hint: 'a row needs a parent that is not in the table: restore the parents first (without --table)' } : {}),
        });
      }
    }
    return result;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Where a partition archive's rows went, in words. */
export function placementText(p: PartitionPlacement): string {
  return p.how === 'created' ? `partition ${p.partition} created again for its rows` : p.how === 'default' ? `its rows went to the default partition ${p.partition} (the partition could not be created)` : `its rows went to the existing partition${p.partition.includes(', ') ? 's' : ''} ${p.partition}`;
}

/** The restore_archive handler; `onResult` gets the result as it is (`archive restore` prints it). */
export function restoreArchiveHandlerWith(onResult: (result: ArchiveRestoreResult) => void = () => undefined): Handler<RestoreArchive> {
  return async (action, ctx, progress) => {
    const r = await restoreArchiveById(ctx.desired, action.params.archiveId, { ...(action.params.table ? { table: action.params.table } : {}), env: ctx.env, progress });
    onResult(r);
    const rows = Object.values(r.inserted).reduce((n, x) => n + x, 0);
    return { summary: `archive ${r.archiveId}: ${r.chunks} chunks, ${rows} rows restored${r.partition ? `, ${placementText(r.partition)}` : ''}`, details: { ...r } };
  };
}

/** `jarvis-db archive restore` (command-only): the rows of an archive back into their tables. */
export const restoreArchiveHandler: Handler<RestoreArchive> = restoreArchiveHandlerWith();

/**
 * `archive restore ID`: a one-action plan (restore_archive) run by the engine's `apply`, under
 * its lock and journaled (docs/architecture.md §4 rule 6). Safe: rows already there are left alone.
 */
export async function restoreArchiveCommand(desired: Desired, id: string, options: {
  table?: string; env: NodeJS.ProcessEnv; lockTimeoutMs: number; progress?: Progress; waitingForLock?: ApplyReporter['waitingForLock'];
}): Promise<ArchiveRestoreResult> {
  const entry = await locateArchive(desired, id, options.env);
  const archiveId = entry.header.id;
  const action: RestoreArchive = {
    id: `retention.restore.${archiveId}`, type: 'restore_archive', module: 'retention', target: archiveId,
    reason: `requested (archive restore${options.table ? ` --table ${options.table}` : ''})`, risk: 'safe', estimate: { rows: summarize(entry).rows },
    params: { archiveId, ...(options.table ? { table: options.table } : {}) },
  };
  const [{ HANDLERS }, { apply }, { commandModule, newRecord, recording, throwIfFailed }] = await Promise.all([
    import('../engine/registry.js'), import('../engine/index.js'), import('../engine/command.js'),
  ]);
  const record = newRecord();
  let result: ArchiveRestoreResult | null = null;
  const parts: EngineParts = {
    modules: [commandModule({ name: 'retention', observe: async () => ({}) }, () => [action])],
    handlers: { ...HANDLERS, restore_archive: recording(restoreArchiveHandlerWith((r) => { result = r; }), record) },
  };
  const run = await apply({
    desired, parts, env: options.env, lockTimeoutMs: options.lockTimeoutMs, probeServices: false,
    reporter: { ...(options.waitingForLock ? { waitingForLock: options.waitingForLock } : {}), ...(options.progress ? { actionStarted: () => options.progress } : {}) },
  });
  throwIfFailed(run, record);
  return result!;
}

