/**
 * Tombstones (docs/erasure.md): the record that a user was erased, kept in every repository so
 * that a restore of an older backup erases them again. Each is an item `tombstones/<id>` of the
 * sealed store (storage/sealed-store.ts) whose only file is `tombstone.json`, published
 * atomically like a recovery point (backup/point-store.ts). It is written before the first store
 * is touched and holds the keys to remove on the other sides, since once the PostgreSQL rows are
 * gone nothing else says which Chroma records and Redis keys were the user's.
 */
import { createHash } from 'node:crypto';
import { JarvisError, messageOf } from '../errors.js';
import { testPausePoint } from '../storage/durable.js';
import { repositoriesAt, type Repository, type RepositoryPlace } from '../storage/repositories.js';
import type { SealedStore } from '../storage/sealed-store.js';

export const TOMBSTONE_FILE = 'tombstone.json';
/** Where tombstones live in a repository, beside backups, points/, archives/ and wal/. */
export const TOMBSTONES_PREFIX = 'tombstones/';

/** One other side of a link, with the keys of the user's rows there. */
export type TombstoneSide =
  | { link: string; store: 'chroma'; collection: string; metadata: string; keys: string[] }
  | { link: string; store: 'redis'; database: number; keys: string[] };

export interface Tombstone {
  formatVersion: 1;
  id: string;
  /** The erased user's id, as `erase --user` was given it. */
  user: string;
  /** When it was recorded: a restore of a backup taken before this re-applies it. */
  at: string;
  /** The links followed (their names). */
  links: string[];
  /** PostgreSQL: the users table and key, the tables whose rows of the user go, the users row's fate. */
  postgres: { table: string; key: string; tables: string[]; user: 'anonymize' | 'delete' };
  /** The Chroma metadata field holding the user id (its records go too). */
  userMetadata: string;
  sides: TombstoneSide[];
}

export function tombstoneStore(repository: Repository): SealedStore {
  return repository.store(TOMBSTONES_PREFIX, TOMBSTONE_FILE);
}

/** `20261207T142325123Z-<8 hex of the user id>`: sorts by time; the id itself never reaches a path. */
export function tombstoneId(user: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:.]/g, '');
  return `${stamp}-${createHash('sha256').update(user).digest('hex').slice(0, 8)}`;
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** A tombstone's text as a Tombstone, or what is wrong with it. */
export function parseTombstone(text: string, id: string): Tombstone | string {
  let v: Partial<Tombstone>;
  try {
    v = JSON.parse(text) as Partial<Tombstone>;
  } catch (e) {
    return `${TOMBSTONE_FILE} is not JSON: ${messageOf(e)}`;
  }
  if (v.formatVersion !== 1) return `${TOMBSTONE_FILE} has format ${JSON.stringify(v.formatVersion)}, expected 1`;
  if (v.id !== id) return `${TOMBSTONE_FILE} names ${JSON.stringify(v.id)}, not its item ${id}`;
  if (typeof v.user !== 'string' || typeof v.at !== 'string' || Number.isNaN(Date.parse(v.at)) || !isStrings(v.links) || typeof v.userMetadata !== 'string') return `${TOMBSTONE_FILE} lacks user, at, links or userMetadata`;
  const p = v.postgres;
  if (!p || typeof p.table !== 'string' || typeof p.key !== 'string' || !isStrings(p.tables) || (p.user !== 'anonymize' && p.user !== 'delete')) return `${TOMBSTONE_FILE} has no valid postgres part`;
  if (!Array.isArray(v.sides) || !v.sides.every((s) => isStrings(s?.keys) && typeof s.link === 'string' && (s.store === 'chroma' ? typeof s.collection === 'string' && typeof s.metadata === 'string' : s.store === 'redis' && Number.isInteger(s.database)))) {
    return `${TOMBSTONE_FILE} has a side that is not chroma { collection, metadata, keys } or redis { database, keys }`;
  }
  return v as Tombstone;
}

export interface TombstoneScan { tombstones: Tombstone[]; invalid: { id: string; repository: string; problem: string }[]; unreachable: { repository: string; message: string }[] }

/** Every tombstone of the repositories (one per id, the first copy read), oldest first. */
export async function scanTombstones(place: RepositoryPlace): Promise<TombstoneScan> {
  const out: TombstoneScan = { tombstones: [], invalid: [], unreachable: [] };
  const seen = new Set<string>();
  for (const repository of repositoriesAt(place)) {
    const store = tombstoneStore(repository);
    try {
      for (const id of await store.list('')) {
        if (seen.has(id)) continue;
        const text = await store.readText(id, TOMBSTONE_FILE).catch(() => null);
        const t = text === null ? `${TOMBSTONE_FILE} is missing` : parseTombstone(text, id);
        if (typeof t === 'string') out.invalid.push({ id, repository: repository.name, problem: t });
        else { seen.add(id); out.tombstones.push(t); }
      }
    } catch (e) {
      out.unreachable.push({ repository: repository.name, message: messageOf(e) });
    }
  }
  out.tombstones.sort((a, b) => a.id.localeCompare(b.id));
  return out;
}

/** The tombstones recorded at or after `since` (a backup's start): what its restore must re-apply. */
export function tombstonesSince(all: readonly Tombstone[], since: string): Tombstone[] {
  const from = Date.parse(since);
  return all.filter((t) => Date.parse(t.at) >= from);
}

/**
 * Publishes the tombstone in every repository, each staged then published (a kill before leaves
 * debris, never a half tombstone). A repository that cannot be written stops the erasure before
 * any store is touched: an erasure not remembered everywhere could come back from a backup.
 */
export async function recordTombstone(repositories: readonly Repository[], tombstone: Tombstone, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const written: string[] = [];
  for (const repository of repositories) {
    const store = tombstoneStore(repository);
    try {
      await removeTombstoneDebris(store);
      const item = await store.begin(tombstone.id, { env });
      try {
        await testPausePoint('tombstone-before-manifest', env);
        await item.publish(JSON.stringify(tombstone, null, 2) + '\n');
      } catch (e) {
        await item.abort().catch(() => undefined);
        throw e;
      }
    } catch (e) {
      throw new JarvisError('STORAGE_FAILED', `could not record the tombstone of user ${JSON.stringify(tombstone.user)} in repository ${repository.name}: ${messageOf(e)}; nothing was erased`, {
        cause: e, hint: 'make the repository writable (or reachable) and run the erase again',
      });
    }
    written.push(repository.name);
  }
  return written;
}

async function removeTombstoneDebris(store: SealedStore): Promise<void> {
  const debris = await store.findDebris('');
  if (debris.length) await store.removeDebris(debris);
}
