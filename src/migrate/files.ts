/**
 * The migration files on disk, in the order node-pg-migrate runs them (its own ordering
 * function, so that jarvis-db and the runner never disagree), each with its SHA-256.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { compareMigrationFileNames } from 'node-pg-migrate/utils/comparators';
import { JarvisError, messageOf } from '../errors.js';

export interface MigrationFile {
  /** node-pg-migrate's name: the file name without its extension (`0003_memory`). */
  name: string;
  /** The file name (`0003_memory.sql`). */
  file: string;
  sha256: string;
  /** SQL files: whether a `-- Down Migration` section exists. Other languages: null (known once loaded). */
  hasDown: boolean | null;
}

export interface MigrationFiles {
  files: MigrationFile[];
  /** Why the folder cannot be used as it is (missing, unreadable, duplicate names). */
  problems: string[];
}

export function sha256(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Where the up and down sections of a SQL migration start, by node-pg-migrate's own markers. */
export function sqlSections(content: string): { upStart: number; downStart: number } {
  return {
    upStart: content.search(/^\s*--[\s-]*up\s+migration/im),
    downStart: content.search(/^\s*--[\s-]*down\s+migration/im),
  };
}

export async function readMigrationFiles(dir: string): Promise<MigrationFiles> {
  try {
    if (!(await stat(dir)).isDirectory()) return { files: [], problems: [`the migrations path ${dir} is not a directory`] };
  } catch {
    return { files: [], problems: [`the migrations directory ${dir} does not exist`] };
  }
  let paths: string[];
  try {
    paths = await migrationFilePaths(dir);
  } catch (e) {
    return { files: [], problems: [`cannot list migrations in ${dir}: ${messageOf(e)}`] };
  }
  const files: MigrationFile[] = [];
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const path of paths) {
    const file = basename(path);
    const name = basename(path, extname(path));
    const content = await readFile(path);
    const other = seen.get(name);
    if (other) problems.push(`two migration files have the name ${name}: ${other} and ${file}`);
    seen.set(name, file);
    const hasDown = extname(file).toLowerCase() === '.sql' ? sqlSections(content.toString('utf8')).downStart >= 0 : null;
    files.push({ name, file, sha256: sha256(content), hasDown });
  }
  return { files, problems };
}

/**
 * node-pg-migrate's `getMigrationFilePaths` without globs (jarvis-db passes a directory): the
 * files and symlinks not starting with ".", sorted by its own comparator. Importing only the
 * comparator keeps node-pg-migrate's ~120 modules out of every plan (they load when migrating).
 */
async function migrationFilePaths(dir: string): Promise<string[]> {
  const entries = await readdir(`${dir}/`, { withFileTypes: true });
  return entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.'))
    .sort((a, b) => compareMigrationFileNames(a.name, b.name, silentLogger))
    .map((e) => resolve(dir, e.name));
}

/** node-pg-migrate logs to the console by default; jarvis-db reports problems itself. */
export const silentLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** `migrate create NAME`: the next numbered SQL migration from node-pg-migrate's template. */
export async function createMigrationFile(directory: string, name: string): Promise<string> {
  if (!/^[a-z0-9][a-z0-9_-]*$/i.test(name)) {
    throw new JarvisError('USAGE', `a migration name is letters, digits, _ and - (got "${name}")`, { hint: 'jarvis-db migrate create add_user_locale' });
  }
  try {
    const { Migration } = await import('node-pg-migrate/migration');
    return await Migration.create(name, directory, { filenameFormat: 'index', language: 'sql' });
  } catch (e) {
    throw new JarvisError('USAGE', `cannot create a migration in ${directory}: ${messageOf(e)}`, { cause: e });
  }
}
