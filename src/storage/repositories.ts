/**
 * The repositories of a config (docs/architecture.md §6): each one a place that holds backups and
 * retention archives through the sealed-store contract, a local directory or an S3 bucket.
 * Without `repositories:` the storage path is the only one (named `local`), laid out as before:
 * backups at its root, archives under `archives/`.
 */
import { join } from 'node:path';
import { JarvisError } from '../errors.js';
import type { Desired, KeepRules, RepositoryConfig } from '../config/types.js';
import { openLocalStore } from './local-store.js';
import { openS3Store } from './s3-store.js';
import type { SealedStore } from './sealed-store.js';

export const DEFAULT_REPOSITORY = 'local';

export interface Repository {
  readonly name: string;
  readonly kind: 'local' | 's3';
  /** For messages and `--json`: a path or `s3://bucket/prefix`. */
  readonly location: string;
  /** Its own keep rules; absent: each schedule's. */
  readonly keep?: KeepRules;
  readonly config: RepositoryConfig;
  /**
   * The sealed store of one part of the repository: `''` with `manifest.json` for backups,
   * `'archives/'` with `archive.json` for retention archives, `'locks/'` for the repository lock.
   */
  store(subPrefix: string, manifestName: string): SealedStore;
}

/** The repositories `desired` names, in order; the storage path alone when it names none. */
export function repositoryConfigs(desired: Pick<Desired, 'storage' | 'repositories'>): RepositoryConfig[] {
  if (desired.repositories && desired.repositories.length > 0) return desired.repositories;
  return [{ name: DEFAULT_REPOSITORY, kind: 'local', dir: desired.storage.path, path: 'storage.path' }];
}

export function openRepository(config: RepositoryConfig, env: NodeJS.ProcessEnv = process.env): Repository {
  if (config.kind === 'local') {
    const root = config.dir;
    return {
      name: config.name, kind: 'local', location: root, keep: config.keep, config,
      store: (subPrefix, manifestName) => openLocalStore(subPrefix === '' ? root : join(root, subPrefix), { manifestName }),
    };
  }
  const { bucket, prefix, region, endpoint, forcePathStyle } = config.s3;
  return {
    name: config.name, kind: 's3', location: `s3://${bucket}/${prefix}`, keep: config.keep, config,
    store: (subPrefix, manifestName) => openS3Store(
      { bucket, prefix, region, forcePathStyle, ...(endpoint ? { endpoint } : {}) },
      { repository: config.name, manifestName, subPrefix, env },
    ),
  };
}

export function openRepositories(desired: Pick<Desired, 'storage' | 'repositories'>, env: NodeJS.ProcessEnv = process.env): Repository[] {
  return repositoryConfigs(desired).map((c) => openRepository(c, env));
}

/**
 * Where backups or archives are read: a storage path (the implicit repository `local` there, as
 * before repositories existed), one repository, or several in order.
 */
export type RepositoryPlace = string | Repository | readonly Repository[];

/** The implicit repository of a storage path: backups at its root, archives under `archives/`. */
export function storagePathRepository(storagePath: string): Repository {
  return openRepository({ name: DEFAULT_REPOSITORY, kind: 'local', dir: storagePath, path: 'storage.path' });
}

export function repositoriesAt(place: RepositoryPlace): Repository[] {
  if (typeof place === 'string') return [storagePathRepository(place)];
  return isRepository(place) ? [place] : [...place];
}

function isRepository(place: Repository | readonly Repository[]): place is Repository {
  return !Array.isArray(place);
}

/** For messages: `local (/srv/backups), offsite (s3://bucket/prod/)`. */
export function describeRepositories(repositories: readonly Repository[]): string {
  return repositories.map((r) => `${r.name} (${r.location})`).join(', ');
}

/** The repository `name` among `desired`'s; an unknown name is a usage error that lists them. */
export function repositoryNamed(repositories: readonly Repository[], name: string): Repository {
  const found = repositories.find((r) => r.name === name);
  if (!found) {
    throw new JarvisError('USAGE', `no repository named "${name}" (repositories: ${repositories.map((r) => r.name).join(', ')})`);
  }
  return found;
}
