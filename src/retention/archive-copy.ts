/**
 * Retention archives in every repository (docs/architecture.md §6), the I/O part: what the other
 * repositories hold, the copy_archive handler, and pruning an archive wherever it is. A copy is
 * one sealed-store item written like any other (staged, each file checked against the
 * source's manifest as it streams, the header published last), so a killed copy leaves debris
 * that the next apply removes, never an archive that lists.
 */
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import type { Desired } from '../config/types.js';
import type { CopyArchive, Handler } from '../engine/types.js';
import { JarvisError, messageOf } from '../errors.js';
import { mapLimit } from '../platform/concurrency.js';
import { formatBytes, plural } from '../render/format.js';
import { testPausePoint } from '../storage/durable.js';
import { openRepositories, type Repository } from '../storage/repositories.js';
import type { ArchiveCopiesObserved, ArchiveHeld } from './archive-copies.js';
import { isFinished } from './archive-copies.js';
import { chunkBaseName } from './chunk.js';
import { ARCHIVE_ID, HEADER, archiveStore, deleteArchive, findArchive, summarize, type ArchiveEntry, type ArchiveHeader } from './store.js';

/** Chunks copied at once, their three files each at once: about what `aws s3 cp` keeps in flight. */
const COPY_CONCURRENCY = 4;

function repositoryNamed(desired: Desired, name: string, env: NodeJS.ProcessEnv): Repository {
  const repository = openRepositories(desired, env).find((r) => r.name === name);
  if (!repository) throw new JarvisError('PLAN_INVALID', `the plan names repository ${name}, which is not in the config; plan again`);
  return repository;
}

/** The archives a repository holds, from their headers (nothing of their chunks is read). */
export async function listHeld(repository: Repository): Promise<ArchiveHeld[]> {
  const store = archiveStore(repository);
  const held: ArchiveHeld[] = [];
  for (const policy of await store.list('')) {
    for (const id of await store.list(policy)) {
      if (!ARCHIVE_ID.test(id)) continue;
      const text = await store.readText(`${policy}/${id}`, HEADER);
      if (text === null) continue;
      const header = JSON.parse(text) as ArchiveHeader;
      held.push({ id: header.id, policy: header.policy, cutoff: header.cutoff });
    }
  }
  return held;
}

/** Every repository after the first, and what it holds (a repository that cannot be read says why). */
export async function observeCopies(desired: Desired, env: NodeJS.ProcessEnv): Promise<ArchiveCopiesObserved[]> {
  return Promise.all(openRepositories(desired, env).slice(1).map(async (repository): Promise<ArchiveCopiesObserved> => {
    try {
      return { repository: repository.name, archives: await listHeld(repository) };
    } catch (e) {
      return { repository: repository.name, archives: null, problem: messageOf(e) };
    }
  }));
}

/** Copies a finished archive: its committed chunks (data, manifest, marker), then its header, last. */
export async function copyArchive(entry: ArchiveEntry, to: Repository, env: NodeJS.ProcessEnv): Promise<{ chunks: number; bytes: number; already: boolean }> {
  const target = archiveStore(to);
  if ((await target.readText(entry.key, HEADER)) !== null) return { chunks: 0, bytes: 0, already: true };
  const header = await entry.store.readText(entry.key, HEADER);
  if (header === null) throw new JarvisError('ARCHIVE_INVALID', `archive ${entry.header.id}: ${entry.store.location(entry.key, HEADER)} is gone`);
  const item = await target.begin(entry.key, { env });
  let bytes = 0;
  try {
    // Chunks are small objects: round trips, not bytes, bound the copy.
    await mapLimit(entry.chunks, COPY_CONCURRENCY, async ({ manifest }) => {
      const base = chunkBaseName(manifest.chunk);
      const record = await entry.store.readText(entry.key, `${base}.json`);
      if (record === null) throw new JarvisError('ARCHIVE_INVALID', `archive ${entry.header.id}: ${base}.json is gone`);
      // read() fails the stream when the source bytes differ from the manifest; the copy is checked too.
      const [stored] = await Promise.all([
        item.writeFile(manifest.file.name, entry.store.read(entry.key, manifest.file)),
        item.writeFile(`${base}.json`, Readable.from([Buffer.from(record)])),
        item.writeFile(`${base}.committed`, Readable.from([Buffer.alloc(0)])),
      ]);
      if (stored.sha256 !== manifest.file.sha256 || stored.bytes !== manifest.file.bytes) {
        throw new JarvisError('VERIFY_FAILED', `archive ${entry.header.id} ${manifest.file.name}: the copy in ${to.name} does not match its manifest`);
      }
      bytes += stored.bytes;
      await testPausePoint('archive-copy-chunk', env);
    });
    await item.publish(header);
  } catch (e) {
    await item.abort().catch(() => undefined);
    throw e;
  }
  return { chunks: entry.chunks.length, bytes, already: false };
}

/** The archives an earlier action of this apply wrote: one for a batch run, one per partition for retention_drop_partitions. */
function archivesOf(details: Record<string, unknown> | undefined): string[] {
  if (Array.isArray(details?.archiveIds)) return details.archiveIds.filter((id): id is string => typeof id === 'string');
  return typeof details?.archiveId === 'string' ? [details.archiveId] : [];
}

async function copyOne(ctx: Parameters<Handler<CopyArchive>>[1], archiveId: string, from: string, to: string): Promise<string> {
  const entry = await findArchive(repositoryNamed(ctx.desired, from, ctx.env), archiveId);
  if (entry.header.id !== archiveId) throw new JarvisError('PLAN_INVALID', `the plan names archive ${archiveId}, which is not in ${from}`);
  // This process wrote it in an earlier action of the apply, which has ended: it is finished.
  const ours = entry.header.writer.pid === process.pid && entry.header.writer.host === hostname();
  const summary = summarize(entry);
  if (!isFinished({ ...summary, writerAlive: summary.writerAlive && !ours })) throw new JarvisError('PLAN_INVALID', `archive ${archiveId} is not finished (pending or damaged chunks, or still being written); plan again`);
  const copied = await copyArchive(entry, repositoryNamed(ctx.desired, to, ctx.env), ctx.env);
  if (copied.already) return `archive ${archiveId} is already in ${to}`;
  return `archive ${archiveId} of ${entry.header.policy} copied from ${from} to ${to} (${plural(copied.chunks, 'chunk')}, ${formatBytes(copied.bytes)})`;
}

export const copyArchiveHandler: Handler<CopyArchive> = async (action, ctx, progress) => {
  const { from, to, fromAction } = action.params;
  const ids = action.params.archiveId ? [action.params.archiveId] : fromAction ? archivesOf(ctx.outcomes.get(fromAction)?.details) : [];
  if (!ids.length) {
    if (fromAction && ctx.outcomes.has(fromAction)) return { summary: `${fromAction} wrote no archive: nothing to copy to ${to}` };
    throw new JarvisError('PLAN_INVALID', `${action.id} copies the archive of ${String(fromAction)}, which did not run in this apply`);
  }
  const lines: string[] = [];
  for (const id of ids) {
    lines.push(await copyOne(ctx, id, from, to));
    if (ids.length > 1) progress.note(lines[lines.length - 1]!);
  }
  return { summary: ids.length === 1 ? lines[0]! : `${plural(ids.length, 'archive')} of ${action.params.policy} copied from ${from} to ${to}` };
};

/** Deletes an archive from each of `names` that holds it; at least one must. */
export async function pruneEverywhere(desired: Desired, id: string, names: readonly string[], env: NodeJS.ProcessEnv): Promise<{ repositories: string[]; entry: ArchiveEntry }> {
  const deleted: string[] = [];
  let first: ArchiveEntry | undefined;
  for (const name of names) {
    let entry: ArchiveEntry;
    try {
      entry = await findArchive(repositoryNamed(desired, name, env), id);
    } catch (e) {
      if (e instanceof JarvisError && e.code === 'ARCHIVE_INVALID') continue;
      throw e;
    }
    if (entry.header.id !== id) continue;
    if (summarize(entry).writerAlive) throw new JarvisError('RETENTION_FAILED', `archive ${id} is still being written by process ${entry.header.writer.pid}`);
    await deleteArchive(entry);
    deleted.push(name);
    first ??= entry;
  }
  if (!first) throw new JarvisError('PLAN_INVALID', `the plan names archive ${id}, which is in none of ${names.join(', ')}`);
  return { repositories: deleted, entry: first };
}
