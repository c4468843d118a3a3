/**
 * The logical Chroma restore and restore test (the export is logical.ts).
 *
 * Import: a collection is created under a temporary name with the same metadata and
 * configuration, the records are added in batches, counted and read back; only when the
 * counts and both checksums match the backup does it take its final name (replacing an
 * existing collection only with --force). A failed restore leaves the existing collection as
 * it was and removes the temporary one.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { createBrotliDecompress } from 'node:zlib';
import type { ChromaService } from '../../config/types.js';
import type { Progress } from '../../engine/types.js';
import { JarvisError, messageOf } from '../../errors.js';
import { plural } from '../../render/format.js';
import { ChromaRest } from '../../services/chroma.js';
import {
  asCollection, cleanTemporaryCollections, countRecords, deleteCollection, ensureDatabase, findCollection, readPages, renameCollection, temporaryName,
} from '../../services/chroma-collections.js';
import { embeddingBytes, floatBytes, floatsOf, parseLossless, stringifyLossless } from '../../services/chroma-wire.js';
import { CollectionDigest, addRequestBody, decodeLine, type CollectionHeader, type CollectionTrailer, type StoredRecord } from './codec.js';
import { cosinePreimage, ulpDistance } from './cosine.js';
import { digestCollection, pageSizeFor, spaceOf, type CollectionSummary } from './logical.js';
import { decryptor, type KeyRing } from '../../storage/crypto.js';

/** Lines of a (possibly encrypted) brotli-compressed backup file, streamed. */
export async function* fileLines(path: string, fileName: string, keyRing: KeyRing | null): AsyncGenerator<string> {
  const stages: (NodeJS.ReadableStream | Transform)[] = [createReadStream(path, { highWaterMark: 1 << 20 })];
  if (fileName.endsWith('.enc')) {
    if (!keyRing) throw new JarvisError('DECRYPT_FAILED', `${fileName} is encrypted and no passphrase is configured`, { hint: 'set storage.encryption.passphraseEnv and that environment variable' });
    stages.push(decryptor(keyRing, fileName));
  }
  const decompress = createBrotliDecompress();
  const piping = (pipeline as (...s: unknown[]) => Promise<void>)(...stages, decompress);
  piping.catch(() => undefined);
  const decoder = new StringDecoder('utf8');
  let partial = '';
  try {
    for await (const chunk of decompress) {
      partial += decoder.write(chunk as Buffer);
      let nl: number;
      let from = 0;
      while ((nl = partial.indexOf('\n', from)) >= 0) {
        yield partial.slice(from, nl);
        from = nl + 1;
      }
      partial = partial.slice(from);
    }
    await piping;
  } catch (e) {
    if (e instanceof JarvisError) throw e;
    throw new JarvisError('BACKUP_INVALID', `${fileName} cannot be read: ${messageOf(e)}`, { cause: e });
  }
  partial += decoder.end();
  if (partial) yield partial;
}

/** Chroma's rule for collection names, checked before anything is changed. */
export function checkCollectionName(name: string): void {
  const ok = name.length >= 3 && name.length <= 512 && /^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$/.test(name) && !name.includes('..') && !/^\d{1,3}(\.\d{1,3}){3}$/.test(name);
  if (!ok) {
    throw new JarvisError('USAGE', `"${name}" is not a valid Chroma collection name`, {
      hint: '3-512 characters from a-z A-Z 0-9 . _ -, starting and ending with a letter or digit, no "..", not an IPv4 address',
    });
  }
}

export interface LoadResult {
  header: CollectionHeader;
  trailer: CollectionTrailer;
  id: string;
  /** cosine collections: embeddings for which no exact pre-image was found (sent as they are). */
  unsolved: number;
}

/** Records per add request: the server's batch limit, and about 4 MB of body. */
function addBatchSize(maxBatch: number, dimension: number | null): number {
  return Math.max(1, Math.min(maxBatch, Math.floor(4_000_000 / (Math.ceil(((dimension ?? 384) * 4) / 3) * 4 + 300))));
}

/**
 * Creates collection `name` from a backup file and adds its records; checks the file's own
 * trailer and the manifest's figures. Does not read the collection back (see `compareWith`).
 */
export async function loadCollection(rest: ChromaRest, file: { path: string; name: string; summary: CollectionSummary }, name: string, keyRing: KeyRing | null, progress: Progress, onRecords: (n: number) => void): Promise<LoadResult> {
  const preflight = JSON.parse((await rest.call('GET', '/api/v2/pre-flight-checks')).toString('utf8')) as { max_batch_size?: number; supports_base64_encoding?: boolean };
  const base64 = preflight.supports_base64_encoding === true;
  let header: CollectionHeader | null = null;
  let trailer: CollectionTrailer | null = null;
  let id = '';
  let batch: StoredRecord[] = [];
  let batchSize = 1000;
  const digest = new CollectionDigest();
  let lineNumber = 0;
  let cosine = false;
  let unsolved = 0;
  let pending: Promise<unknown> = Promise.resolve();
  const flush = async () => {
    if (!batch.length) return;
    const body = addRequestBody(batch, base64);
    const n = batch.length;
    batch = [];
    // one add in flight while the next batch is decoded
    await pending;
    pending = rest.call('POST', `${rest.collectionsPath}/${id}/add`, body).then(() => onRecords(n));
    pending.catch(() => undefined);
  };
  for await (const line of fileLines(file.path, file.name, keyRing)) {
    lineNumber++;
    if (!line) continue;
    if (trailer) throw new JarvisError('BACKUP_INVALID', `${file.name}: line ${lineNumber} follows the end line`);
    const decoded = decodeLine(line, lineNumber);
    if (decoded.kind === 'header') {
      if (header) throw new JarvisError('BACKUP_INVALID', `${file.name}: a second collection line at line ${lineNumber}`);
      header = decoded.header;
      const body = `{"name":${JSON.stringify(name)},"metadata":${stringifyLossless(header.metadata)},"configuration":${stringifyLossless(header.configuration)},"get_or_create":false}`;
      const created = asCollection(parseLossless((await rest.call('POST', rest.collectionsPath, body)).toString('utf8')));
      id = created.id;
      batchSize = addBatchSize(preflight.max_batch_size ?? 1000, header.dimension);
      // JARVIS_DB_TEST_COSINE_AS_IS: tests play a server whose rounding differs from the one compensated for
      cosine = spaceOf(header) === 'cosine' && !process.env.JARVIS_DB_TEST_COSINE_AS_IS;
      progress.note(`restoring ${header.name} (${plural(file.summary.count, 'record')})`);
      continue;
    }
    if (!header) throw new JarvisError('BACKUP_INVALID', `${file.name} does not start with its collection line`);
    if (decoded.kind === 'end') {
      trailer = decoded.trailer;
      continue;
    }
    const r = decoded.record;
    const bytes = Buffer.from(r.embedding, 'base64');
    if (header.dimension !== null && bytes.length !== header.dimension * 4) {
      throw new JarvisError('BACKUP_INVALID', `${file.name}: record ${JSON.stringify(r.id)} has ${bytes.length / 4} dimensions, the collection ${header.dimension}`);
    }
    digest.add(r.id, bytes, r.document, r.uri, r.metadata);
    if (cosine) {
      // Chroma re-normalises cosine vectors on insert: send the vector it turns into this one
      const target = floatsOf(bytes);
      const preimage = cosinePreimage(target);
      if (!preimage) unsolved++;
      batch.push(preimage && preimage !== target ? { ...r, embedding: floatBytes(preimage).toString('base64') } : r);
    } else {
      batch.push(r);
    }
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  await pending;
  if (!header) throw new JarvisError('BACKUP_INVALID', `${file.name} is empty`);
  if (!trailer) throw new JarvisError('BACKUP_INVALID', `${file.name} ends without its end line: it is truncated`);
  const read = digest.result();
  const problems = compareTrailers(file.summary, trailer, 'the manifest', 'the file\'s end line');
  problems.push(...compareTrailers(trailer, read, 'the file\'s end line', 'its records'));
  if (problems.length) throw new JarvisError('BACKUP_INVALID', `${file.name} (${header.name}): ${problems.join('; ')}`);
  return { header, trailer, id, unsolved };
}

/** Differences between two sets of figures, as sentences. */
export function compareTrailers(expected: CollectionTrailer, actual: CollectionTrailer, expectedName: string, actualName: string): string[] {
  const out: string[] = [];
  if (expected.count !== actual.count) out.push(`${actualName} count ${actual.count} records, ${expectedName} ${expected.count}`);
  if (expected.embeddingsSha256 !== actual.embeddingsSha256) out.push(`the ids and embeddings of ${actualName} differ from ${expectedName} (checksum)`);
  if (expected.contentSha256 !== actual.contentSha256) out.push(`the documents, uris or metadata of ${actualName} differ from ${expectedName} (checksum)`);
  return out;
}

// ------------------------------------------------------------------ restore and restore test

export interface LogicalRestoreOptions { collection?: string; as?: string; force: boolean }

/** The collections of a logical backup, from its manifest. */
export function backupCollections(extra: Record<string, unknown>, id: string): CollectionSummary[] {
  const list = extra.collections;
  if (!Array.isArray(list) || !list.every((c) => c && typeof c === 'object' && typeof (c as CollectionSummary).name === 'string' && typeof (c as CollectionSummary).file === 'string')) {
    throw new JarvisError('BACKUP_INVALID', `backup ${id} has no list of collections in its manifest`);
  }
  return list as CollectionSummary[];
}

/** Pure: which backed-up collection goes to which name. */
export function restoreTargets(collections: CollectionSummary[], options: { collection?: string; as?: string }, id: string): { summary: CollectionSummary; target: string }[] {
  let chosen = collections;
  if (options.collection !== undefined) {
    const found = collections.find((c) => c.name === options.collection);
    if (!found) {
      throw new JarvisError('USAGE', `backup ${id} has no collection "${options.collection}"`, {
        hint: collections.length ? `it has: ${collections.map((c) => c.name).slice(0, 10).join(', ')}${collections.length > 10 ? ', …' : ''}` : 'it has no collections',
      });
    }
    chosen = [found];
  }
  if (options.as !== undefined) {
    if (chosen.length !== 1) throw new JarvisError('USAGE', `--as names one collection; backup ${id} has ${chosen.length}`, { hint: 'add --collection NAME' });
    checkCollectionName(options.as);
    return [{ summary: chosen[0]!, target: options.as }];
  }
  return chosen.map((summary) => ({ summary, target: summary.name }));
}

/** How far a restored cosine collection's embeddings are from the backup's, record by record. */
export interface CosineDrift { records: number; differing: number; maxUlps: number }

/**
 * Compares the backup file with the restored collection in lockstep (records are added in file
 * order, one batch at a time, and `get` lists them in insertion order). Null when the orders
 * differ, so that nothing can be said record by record.
 */
async function cosineDrift(rest: ChromaRest, id: string, file: { path: string; name: string }, keyRing: KeyRing | null, dimension: number | null): Promise<CosineDrift | null> {
  const drift: CosineDrift = { records: 0, differing: 0, maxUlps: 0 };
  const backup = fileLines(file.path, file.name, keyRing);
  let lineNumber = 0;
  const nextRecord = async (): Promise<StoredRecord | null> => {
    for (;;) {
      const { value, done } = await backup.next();
      if (done) return null;
      lineNumber++;
      if (!value) continue;
      const decoded = decodeLine(value, lineNumber);
      if (decoded.kind === 'record') return decoded.record;
    }
  };
  try {
    for await (const page of readPages(rest, id, pageSizeFor(dimension), ['embeddings'])) {
      for (let i = 0; i < page.ids.length; i++) {
        const expected = await nextRecord();
        if (!expected || expected.id !== page.ids[i]) return null;
        const want = floatsOf(Buffer.from(expected.embedding, 'base64'));
        const got = floatsOf(embeddingBytes(page.embeddings!, i));
        let worst = 0;
        for (let k = 0; k < want.length; k++) worst = Math.max(worst, ulpDistance(want[k]!, got[k]!));
        drift.records++;
        if (worst > 0) drift.differing++;
        drift.maxUlps = Math.max(drift.maxUlps, worst);
      }
    }
    return (await nextRecord()) ? null : drift;
  } finally {
    await backup.return(undefined);
  }
}

/** Chroma's own rounding when it re-normalises a cosine vector is within this many float32 steps. */
export const COSINE_TOLERANCE_ULPS = 2;

/**
 * Loads one backed-up collection under a temporary name and checks it: the server's count,
 * then every record read back against the backup's checksums. A cosine collection whose only
 * difference is Chroma's re-normalisation rounding (a server whose arithmetic is not the one
 * cosine.ts reproduces) is accepted, and the drift reported. Returns the temporary collection.
 */
async function loadAndCheck(rest: ChromaRest, dir: string, summary: CollectionSummary, keyRing: KeyRing | null, progress: Progress, onRecords: (n: number) => void): Promise<{ id: string; name: string; trailer: CollectionTrailer; drift: CosineDrift | null }> {
  const name = temporaryName();
  try {
    const file = { path: join(dir, summary.file), name: summary.file, summary };
    const loaded = await loadCollection(rest, file, name, keyRing, progress, onRecords);
    progress.note(`reading ${summary.name} back`);
    const count = await countRecords(rest, loaded.id);
    const actual = count === loaded.trailer.count ? await digestCollection(rest, loaded.id, loaded.header.dimension) : { ...loaded.trailer, count };
    const problems = compareTrailers(loaded.trailer, actual, 'the backup', 'the restored collection');
    let drift: CosineDrift | null = null;
    const onlyEmbeddings = problems.length === 1 && actual.embeddingsSha256 !== loaded.trailer.embeddingsSha256;
    if (onlyEmbeddings && spaceOf(loaded.header) === 'cosine') {
      drift = await cosineDrift(rest, loaded.id, file, keyRing, loaded.header.dimension);
      if (drift && drift.maxUlps <= COSINE_TOLERANCE_ULPS) problems.length = 0;
      else if (drift) problems.push(`embeddings differ by up to ${drift.maxUlps} float32 steps, more than Chroma's cosine re-normalisation explains`);
    }
    if (problems.length) throw new JarvisError('RESTORE_FAILED', `${summary.name}: ${problems.join('; ')}`);
    return { id: loaded.id, name, trailer: loaded.trailer, drift };
  } catch (e) {
    await deleteCollection(rest, name).catch(() => undefined);
    throw e;
  }
}

/** A sentence about embeddings that came back with Chroma's rounding, or ''. */
function driftNote(name: string, drift: CosineDrift | null): string {
  if (!drift || drift.differing === 0) return '';
  return `${name}: ${drift.differing} of ${drift.records} embeddings differ from the backup by at most ${drift.maxUlps} float32 step${drift.maxUlps === 1 ? '' : 's'} (this Chroma server re-normalises cosine vectors with other rounding; the physical method restores them bit for bit)`;
}

export async function restoreLogical(dir: string, backupId: string, extra: Record<string, unknown>, service: ChromaService, keyRing: KeyRing | null, progress: Progress, options: LogicalRestoreOptions): Promise<{ target: string; summary: string; details: Record<string, unknown> }> {
  const targets = restoreTargets(backupCollections(extra, backupId), options, backupId);
  const rest = new ChromaRest(service);
  try {
    const created = await ensureDatabase(rest);
    await cleanTemporaryCollections(rest);
    const existing = new Set<string>();
    for (const { target } of targets) if (await findCollection(rest, target)) existing.add(target);
    if (existing.size && !options.force) {
      const names = [...existing].map((n) => `"${n}"`).join(', ');
      throw new JarvisError('RESTORE_REFUSED', `collection${existing.size > 1 ? 's' : ''} ${names} already exist${existing.size > 1 ? '' : 's'} in tenant ${rest.tenant}, database ${rest.database}; restoring would replace ${existing.size > 1 ? 'them' : 'it'}`, {
        hint: options.collection ? 'restore under another name (--as NEW_NAME) or pass --force to replace it' : 'restore one collection under another name (--collection NAME --as NEW_NAME) or pass --force to replace them',
      });
    }
    const total = targets.reduce((n, t) => n + t.summary.count, 0);
    let done = 0;
    const restored: { name: string; as: string; count: number; replaced: boolean; note: string }[] = [];
    for (const { summary, target } of targets) {
      const loaded = await loadAndCheck(rest, dir, summary, keyRing, progress, (n) => { done += n; progress.update(done, total); });
      let oldDeleted = false;
      try {
        // the old collection goes only now, once its replacement is complete and checked
        if (existing.has(target)) {
          await deleteCollection(rest, target);
          oldDeleted = true;
        }
        await renameCollection(rest, loaded.id, target);
      } catch (e) {
        if (!oldDeleted) {
          await deleteCollection(rest, loaded.name).catch(() => undefined);
          throw e;
        }
        throw new JarvisError('RESTORE_FAILED', `replaced ${target}, but could not give the restored collection its name: ${messageOf(e)}`, {
          cause: e, hint: `the restored records are in collection ${loaded.name}; rename it to ${target} (or run the restore again)`,
        });
      }
      restored.push({ name: summary.name, as: target, count: loaded.trailer.count, replaced: existing.has(target), note: driftNote(target, loaded.drift) });
    }
    const records = restored.reduce((n, r) => n + r.count, 0);
    const names = restored.map((r) => (r.as === r.name ? r.name : `${r.name} as ${r.as}`)).join(', ');
    return {
      target: `${rest.tenant}/${rest.database}`,
      summary: `restored ${backupId} into Chroma (${rest.tenant}/${rest.database}${created.length ? `, created: ${created.join(', ')}` : ''}): ${plural(restored.length, 'collection')} (${names}), ${plural(records, 'record')}; ${restored.some((r) => r.note) ? 'counts match, checksums match but for Chroma\'s rounding below' : 'counts and checksums match'}`
        + restored.filter((r) => r.note).map((r) => `\n! ${r.note}`).join(''),
      details: { tenant: rest.tenant, database: rest.database, created, collections: restored, records },
    };
  } finally {
    rest.close();
  }
}

export async function restoreTestLogical(dir: string, backupId: string, extra: Record<string, unknown>, service: ChromaService, keyRing: KeyRing | null, progress: Progress): Promise<{ ok: boolean; message: string }> {
  const collections = backupCollections(extra, backupId);
  const rest = new ChromaRest(service);
  const total = collections.reduce((n, c) => n + c.count, 0);
  let done = 0;
  try {
    await ensureDatabase(rest);
    await cleanTemporaryCollections(rest);
    const notes: string[] = [];
    for (const summary of collections) {
      try {
        const loaded = await loadAndCheck(rest, dir, summary, keyRing, progress, (n) => { done += n; progress.update(done, total); });
        await deleteCollection(rest, loaded.name);
        const note = driftNote(summary.name, loaded.drift);
        if (note) notes.push(note);
      } catch (e) {
        if (e instanceof JarvisError && ['RESTORE_FAILED', 'BACKUP_INVALID', 'DECRYPT_FAILED'].includes(e.code)) return { ok: false, message: e.message };
        throw e;
      }
    }
    return { ok: true, message: `${plural(collections.length, 'collection')}, ${plural(total, 'record')} restored into scratch collections: counts and checksums match${notes.length ? `; ${notes.join('; ')}` : ''}` };
  } finally {
    rest.close();
  }
}
