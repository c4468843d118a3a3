/**
 * What erasing one user means for this config and this catalog, pure (docs/erasure.md): the users
 * table and its key, the tables whose rows of the user are deleted (configured, or every table
 * with a foreign key to the users table), the rows that go with them by ON DELETE CASCADE, how the
 * users row is anonymized (a retention anonymize policy checked by retention's own checkPolicy,
 * so the strategies and their rules are the same), and per link the column that says whose a row
 * is. Every identifier comes from the catalog, never from YAML (docs/architecture.md §4 rule 5).
 */
import type { Desired, ErasureSettings, LinkDeclaration, RetentionPolicy } from '../config/types.js';
import { JarvisError } from '../errors.js';
import { column, displayName, sameTable, type ColumnInfo, type ReferenceInfo, type TableInfo } from '../retention/catalog.js';
import { checkPolicy, type ResolvedPolicy } from '../retention/check.js';

/** The catalog's description of every table erasure names or reaches, by configured name and by `schema.name`. */
export type ErasureCatalog = Map<string, TableInfo | null>;

/** A table whose rows are deleted: the rows where `column` is the user (directly) or where it names a deleted parent row. */
export interface DeletedTable {
  info: TableInfo;
  /** Its foreign-key column(s) and what they reference. */
  ref: ReferenceInfo;
  /** The table referenced: the users table, or a parent that is itself deleted. */
  parent: string;
  /** Whether the rows go by the erasure's own DELETE (direct) or by ON DELETE CASCADE. */
  cascade: boolean;
}

export interface ResolvedLink {
  link: LinkDeclaration;
  table: TableInfo;
  key: ColumnInfo;
  /** The column holding the user id: `postgres.user`, else the table's foreign key to the users table. */
  user: ColumnInfo;
}

export interface ResolvedErasure {
  settings: ErasureSettings;
  users: TableInfo;
  key: ColumnInfo;
  /** Direct tables first, then their cascade children in the order reached. */
  tables: DeletedTable[];
  /** user: anonymize: the policy the SQL of retention's anonymizeByKey is built from. */
  anonymize?: { resolved: ResolvedPolicy; saltEnv?: string; redaction: string };
  links: ResolvedLink[];
  /** Links that are not per user (no user column, no foreign key to the users table), in words. */
  skipped: string[];
}

/** The settings in force: `erasure:` or its defaults. */
export function erasureSettingsOf(desired: Desired): ErasureSettings {
  return desired.erasure ?? { users: { table: 'users', key: 'id' }, user: 'anonymize', userMetadata: 'user_id' };
}

/** The tables to look up before resolving: the users table, the configured tables, the links' tables. */
export function namedTables(desired: Desired): string[] {
  const s = erasureSettingsOf(desired);
  return [...new Set([s.users.table, ...(s.tables ?? []), ...(desired.links ?? []).map((l) => l.postgres.table)])];
}

const where = (desired: Desired, path: string): string => `${desired.configFile.split('/').pop()} ${path}`;
const linkWhere = (l: LinkDeclaration): string => `${l.source.file}${l.source.line ? `:${l.source.line}` : ''} ${l.source.path}`;

function refsTo(parent: TableInfo, column: string): ReferenceInfo[] {
  return parent.references.filter((r) => r.refColumns.length === 1 && r.refColumns[0] === column && r.columns.length === 1);
}

/**
 * Resolves the erasure against the catalog; a name the catalog does not know is a config error
 * naming where it is written. `lookup` gives the catalog of a table reached by cascade.
 */
export function resolveErasure(desired: Desired, catalog: ErasureCatalog): ResolvedErasure {
  const settings = erasureSettingsOf(desired);
  const fail = (path: string, message: string, hint?: string): never => { throw new JarvisError('CONFIG_INVALID', `${where(desired, path)}: ${message}`, hint ? { hint } : {}); };
  const users = catalog.get(settings.users.table);
  if (!users) return fail('erasure.users.table', `table "${settings.users.table}" does not exist`, 'name the users table in erasure.users.table');
  const key = column(users, settings.users.key) ?? fail('erasure.users.key', `column "${settings.users.key}" does not exist in table ${displayName(users)}`);
  const direct = refsTo(users, key.name).filter((r) => !(r.schema === users.schema && r.table === users.name));
  let chosen: ReferenceInfo[];
  if (settings.tables) {
    chosen = settings.tables.map((name, i) => {
      const info = catalog.get(name) ?? fail(`erasure.tables[${i}]`, `table "${name}" does not exist`);
      return direct.find((r) => r.schema === info.schema && r.table === info.name)
        ?? fail(`erasure.tables[${i}]`, `table ${displayName(info)} has no foreign key to ${displayName(users)}(${key.name}): its rows cannot be told to be the user's`);
    });
  } else chosen = direct;
  const tables: DeletedTable[] = [];
  const reached = new Set<string>();
  const visit = (ref: ReferenceInfo, parent: TableInfo, cascade: boolean, depth: number): void => {
    const name = `${ref.schema}.${ref.table}`;
    if (reached.has(name) || depth > 4) return;
    const info = catalog.get(name);
    if (!info) return;
    reached.add(name);
    tables.push({ info, ref, parent: displayName(parent), cascade });
    for (const child of info.references) {
      if (child.onDelete === 'cascade' && child.columns.length === 1) visit(child, info, true, depth + 1);
    }
  };
  for (const ref of chosen) visit(ref, users, false, 0);
  const out: ResolvedErasure = { settings, users, key, tables, links: [], skipped: [] };
  if (settings.user === 'anonymize') out.anonymize = resolveAnonymize(desired, settings, users, fail);
  for (const link of desired.links ?? []) {
    const table = catalog.get(link.postgres.table);
    if (!table) throw new JarvisError('CONFIG_INVALID', `${linkWhere(link)}: link ${link.name}: table "${link.postgres.table}" does not exist`);
    const linkKey = column(table, link.postgres.key);
    if (!linkKey) throw new JarvisError('CONFIG_INVALID', `${linkWhere(link)}: link ${link.name}: column "${link.postgres.key}" does not exist in table ${displayName(table)}`);
    let user: ColumnInfo | undefined;
    if (link.postgres.user !== undefined) {
      user = column(table, link.postgres.user);
      if (!user) throw new JarvisError('CONFIG_INVALID', `${linkWhere(link)}: link ${link.name}: user column "${link.postgres.user}" does not exist in table ${displayName(table)}`);
    } else {
      const fk = direct.find((r) => r.schema === table.schema && r.table === table.name);
      user = fk ? column(table, fk.columns[0]!) : undefined;
    }
    if (!user) { out.skipped.push(`link ${link.name}: ${displayName(table)} has no user column (postgres.user) nor a foreign key to ${displayName(users)}`); continue; }
    out.links.push({ link, table, key: linkKey, user });
  }
  return out;
}

function resolveAnonymize(desired: Desired, settings: ErasureSettings, users: TableInfo, fail: (path: string, message: string, hint?: string) => never): ResolvedErasure['anonymize'] {
  const fromPolicy = desired.retention.find((p) => p.action === 'anonymize' && p.anonymize && sameTable(p.table, users));
  const anonymize = settings.anonymize ?? fromPolicy?.anonymize
    ?? fail('erasure.anonymize', `nothing says how to anonymize ${displayName(users)}: no erasure.anonymize and no retention anonymize policy on it`, 'add erasure.anonymize.columns (column → null, redact, hash or email), or erasure.user: delete');
  const path = settings.anonymize ? 'erasure.anonymize' : `retention policy ${fromPolicy!.name} (its anonymize)`;
  // The marker stands in for the age column: checkPolicy needs one, and the marker must be a timestamp too.
  const policy: RetentionPolicy = {
    name: 'erasure', table: settings.users.table, age: { column: anonymize.marker, olderThan: '0s' }, action: 'anonymize', batchSize: 1,
    anonymize, enabled: true, source: { file: desired.configFile, path },
  };
  const check = checkPolicy(policy, { table: users, children: [] }, { saltSet: true });
  if (check.errors.length || !check.resolved) fail(path, check.errors.join('; '));
  return { resolved: check.resolved!, ...(anonymize.saltEnv ? { saltEnv: anonymize.saltEnv } : {}), redaction: anonymize.redaction ?? '[redacted]' };
}
