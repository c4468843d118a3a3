/**
 * `jarvis-db verify --point ID`: the links compared exactly in a recovery point's backups,
 * nothing read from the live services. Per link, every key of the other side's backup goes into
 * a Set (the Chroma logical backup's records by their metadata field; the Redis RDB's keys
 * walked by rdb.ts, or the logical backup's), then the PostgreSQL rows stream past it from the
 * logical backup (`pg_restore -a -t TABLE -f -`, its COPY text parsed line by line). Memory: one
 * Set of keys per link at a time (about 100 bytes a key: millions are fine).
 *
 * A row is expected on the other side unless its `until` is at or before the point's start.
 * A physical member (a base backup, a copy of Chroma's data directory) is not comparable
 * without a restore: the link says so and is skipped.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Desired, LinkDeclaration } from '../config/types.js';
import { JarvisError, messageOf } from '../errors.js';
import type { CatalogEntry } from '../backup/storage.js';
import { findBackup } from '../backup/catalog.js';
import { keyRingFor, repositoriesFor } from '../backup/operations.js';
import { findPoint } from '../backup/point-store.js';
import type { PointManifest } from '../backup/points.js';
import { findPostgresTool } from '../services/postgres.js';
import { parseRedisUrl } from '../services/redis.js';
import type { KeyRing } from '../storage/crypto.js';
import {
  KeyMatcher, copyFields, copyTimestampMs, describeCompared, keyOfMetadataValue, keyOfRedisKey, parseCopyHeader, patternParts, sourceOf,
  type LinkFailure, type LinkOutcome, type LinkReport,
} from './compare.js';
import { linkConfigError } from './rows.js';

export interface PointLinks { point: PointManifest; outcomes: LinkOutcome[] }

export interface PointVerifyOptions {
  env?: NodeJS.ProcessEnv;
  repository?: string;
  note?: (line: string) => void;
}

class Skip extends Error {}

export async function verifyPointLinks(desired: Desired, id: string, options: PointVerifyOptions = {}): Promise<PointLinks> {
  const env = options.env ?? process.env;
  const links = desired.links ?? [];
  if (!links.length) throw new JarvisError('USAGE', 'the config declares no links to compare', { hint: 'declare links: between the stores (docs/config.md)' });
  const repositories = repositoriesFor(desired, options.repository, env);
  const point = (await findPoint(repositories, id))[0]!.manifest;
  const keyRing = keyRingFor(desired, env);
  const members = new Map<string, CatalogEntry | Error>();
  for (const m of point.members) members.set(m.service, await findBackup(repositories, m.id).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e)))));
  const atMs = Date.parse(point.startedAt);
  const outcomes: LinkOutcome[] = [];
  for (const link of links) {
    options.note?.(`comparing ${link.name} in point ${point.id}`);
    outcomes.push(await compareInPoint(desired, link, point, members, keyRing, atMs, env));
  }
  return { point, outcomes };
}

function memberOf(point: PointManifest, members: Map<string, CatalogEntry | Error>, service: string): CatalogEntry {
  const entry = members.get(service);
  if (!entry) throw new Skip(`the point has no ${service} backup`);
  if (entry instanceof Error) throw new JarvisError('BACKUP_NOT_FOUND', `its ${service} backup ${point.members.find((m) => m.service === service)?.id}: ${entry.message}`);
  return entry;
}

async function compareInPoint(desired: Desired, link: LinkDeclaration, point: PointManifest, members: Map<string, CatalogEntry | Error>, keyRing: KeyRing | null, atMs: number, env: NodeJS.ProcessEnv): Promise<LinkOutcome> {
  const base = { link: link.name, source: sourceOf(link), other: link.side.store };
  try {
    const pgEntry = memberOf(point, members, 'postgres');
    if (pgEntry.manifest.method === 'pg_basebackup') throw new Skip(`not comparable without a restore: its PostgreSQL backup ${pgEntry.manifest.id} is a physical base backup`);
    const sideEntry = memberOf(point, members, link.side.store);
    const matcher = new KeyMatcher();
    if (link.side.store === 'chroma') await chromaKeys(link, sideEntry, keyRing, matcher);
    else await redisKeys(link, sideEntry, keyRing, matcher, desired.services.redis?.url ? parseRedisUrl(desired.services.redis.url).db : 0);
    await postgresRows(link, pgEntry, keyRing, atMs, env, matcher);
    const { expected, ...r } = matcher.finish();
    const report: LinkReport = { ...base, mode: 'exact', ...r, note: describeCompared('exact', r.rows, r.records, link.side.store, undefined, expected) };
    return report;
  } catch (e) {
    const kind: LinkFailure['kind'] = e instanceof Skip ? 'skipped' : e instanceof JarvisError && e.code === 'CONFIG_INVALID' ? 'broken' : 'failed';
    return { ...base, problem: messageOf(e), kind };
  }
}

// ------------------------------------------------------------------ the other side's backup

async function chromaKeys(link: LinkDeclaration, entry: CatalogEntry, keyRing: KeyRing | null, matcher: KeyMatcher): Promise<void> {
  const side = link.side as Extract<LinkDeclaration['side'], { store: 'chroma' }>;
  const m = entry.manifest;
  if (m.method === 'physical') throw new Skip(`not comparable without a restore: its Chroma backup ${m.id} is a copy of the data directory`);
  const { backupCollections, fileLines } = await import('../backup/chroma/logical-restore.js');
  const { decodeLine } = await import('../backup/chroma/codec.js');
  const summary = backupCollections(m.extra, m.id).find((c) => c.name === side.collection);
  if (!summary) throw linkConfigError(link, 'chroma.collection', `collection ${side.collection} is not in Chroma backup ${m.id}`);
  const local = await entry.store.openLocalDirectory(entry.key);
  try {
    let n = 0;
    for await (const line of fileLines(join(local.path, summary.file), summary.file, keyRing)) {
      n++;
      if (!line) continue;
      const decoded = decodeLine(line, n);
      if (decoded.kind !== 'record') continue;
      const key = keyOfMetadataValue(decoded.record.metadata?.[side.metadata]);
      if (key === null) matcher.sideWithoutKey(`record ${decoded.record.id} (no ${side.metadata})`);
      else matcher.sideKey(key);
    }
  } finally {
    await local.release();
  }
}

async function redisKeys(link: LinkDeclaration, entry: CatalogEntry, keyRing: KeyRing | null, matcher: KeyMatcher, urlDb: number): Promise<void> {
  const side = link.side as Extract<LinkDeclaration['side'], { store: 'redis' }>;
  const db = side.database ?? urlDb;
  const parts = patternParts(side.pattern);
  const take = (keyDb: number, name: Buffer) => {
    if (keyDb !== db) return;
    const key = keyOfRedisKey(name.toString('utf8'), parts);
    if (key !== null) matcher.sideKey(key);
  };
  const { openBackupData, isRdb } = await import('../backup/redis/stored.js');
  const data = openBackupData(entry, { keyRing });
  if (isRdb(entry)) {
    const { RdbScanner } = await import('../backup/redis/rdb.js');
    const scanner = new RdbScanner();
    scanner.onKey = take;
    for await (const chunk of data) scanner.push(chunk as Buffer);
    const summary = scanner.finish();
    if (summary.structure !== 'walked') throw new JarvisError('BACKUP_INVALID', `the keys of Redis backup ${entry.manifest.id} cannot all be read: ${summary.structure}`);
    return;
  }
  const { readLogical } = await import('../backup/redis/logical.js');
  for await (const batch of readLogical(data)) for (const record of batch) take(record.db, record.key);
}

// ------------------------------------------------------------------ the rows, from the logical PostgreSQL backup

async function postgresRows(link: LinkDeclaration, entry: CatalogEntry, keyRing: KeyRing | null, atMs: number, env: NodeJS.ProcessEnv, matcher: KeyMatcher): Promise<void> {
  const { restoreSource } = await import('../backup/postgres/driver.js');
  const m = entry.manifest;
  const major = Number(/PostgreSQL (\d+)/.exec(String(m.extra.serverVersion ?? ''))?.[1] ?? 0);
  const tool = findPostgresTool('pg_restore', major, env);
  const { table, key, until } = link.postgres;
  const dot = table.lastIndexOf('.');
  const args = ['-a', ...(dot > 0 ? ['-n', table.slice(0, dot)] : []), '-t', dot > 0 ? table.slice(dot + 1) : table, '-f', '-'];
  const source = await restoreSource(entry, { keyRing });
  try {
    const child = spawn(tool, [...args, source.path], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
    const exited = new Promise<number | null>((resolve, reject) => { child.on('error', reject); child.on('close', resolve); });
    let columns: number[] | null = null;
    let inData = false;
    let found = false;
    // a link found wrong half-way stops pg_restore with it
    const stop = () => { if (child.exitCode === null) child.kill(); };
    try {
      for await (const line of createInterface({ input: child.stdout, crlfDelay: Infinity })) {
        if (!inData) {
          const header = parseCopyHeader(line);
          if (!header) continue;
          const k = header.columns.indexOf(key);
          if (k < 0) throw linkConfigError(link, 'postgres.key', `table ${table} in PostgreSQL backup ${m.id} has no column ${key}`);
          const u = until === undefined ? -1 : header.columns.indexOf(until);
          if (until !== undefined && u < 0) throw linkConfigError(link, 'postgres.until', `table ${table} in PostgreSQL backup ${m.id} has no column ${until}`);
          columns = u < 0 ? [k] : [k, u];
          inData = true;
          found = true;
          continue;
        }
        if (line === '\\.') { inData = false; continue; }
        const [rowKey, end] = copyFields(line, columns!);
        if (rowKey === null || rowKey === undefined) continue;
        const expected = end === undefined || end === null || !(copyTimestampMs(end) <= atMs);
        matcher.row(rowKey, expected);
      }
    } catch (e) {
      stop();
      await exited.catch(() => undefined);
      throw e;
    }
    const code = await exited;
    if (code !== 0) throw new JarvisError('TOOL_FAILED', `pg_restore could not read PostgreSQL backup ${m.id} (exit ${code}): ${stderr.trim().split('\n').at(-1) ?? ''}`);
    if (!found) throw linkConfigError(link, 'postgres.table', `table ${table} is not in PostgreSQL backup ${m.id}`);
  } finally {
    await source.cleanup();
  }
}
