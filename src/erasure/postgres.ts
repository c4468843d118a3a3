/**
 * The PostgreSQL side of an erasure: the catalog it is resolved against (read-only), the keys of
 * the user's linked rows, the rows that would go (counts), and the erasure itself in one
 * transaction: the deletes of the user's rows (their ON DELETE CASCADE children go with them),
 * then the users row anonymized with retention's anonymizeByKey or deleted. The user id is always
 * a bind parameter cast to the key column's catalog type; identifiers are the catalog's, quoted.
 */
import type pg from 'pg';
import { JarvisError } from '../errors.js';
import { displayName, ident, inspectTable, qualified } from '../retention/catalog.js';
import { anonymizeByKey } from '../retention/sql.js';
import { sqlState } from '../services/postgres.js';
import { namedTables, resolveErasure, type DeletedTable, type ErasureCatalog, type ResolvedErasure } from './resolve.js';
import type { Desired } from '../config/types.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The tables erasure names, and every table reached from the users table by foreign keys (a few levels). */
export async function readErasureCatalog(client: Queryable, desired: Desired): Promise<ErasureCatalog> {
  const catalog: ErasureCatalog = new Map();
  const add = async (name: string) => {
    if (catalog.has(name)) return catalog.get(name) ?? null;
    const info = await inspectTable(client, name);
    catalog.set(name, info);
    if (info) catalog.set(`${info.schema}.${info.name}`, info);
    return info;
  };
  for (const name of namedTables(desired)) await add(name);
  const users = catalog.get(namedTables(desired)[0]!);
  let frontier = users ? [users] : [];
  for (let depth = 0; depth < 5 && frontier.length; depth++) {
    const next = [];
    for (const table of frontier) {
      for (const ref of table.references) {
        const name = `${ref.schema}.${ref.table}`;
        if (catalog.has(name)) continue;
        const info = await add(name);
        if (info) next.push(info);
      }
    }
    frontier = next;
  }
  return catalog;
}

export async function resolveOn(client: Queryable, desired: Desired): Promise<ResolvedErasure> {
  return resolveErasure(desired, await readErasureCatalog(client, desired));
}

const userParam = (r: ResolvedErasure) => `$1::${r.key.type}`;

/** `FROM t WHERE …`: the rows of a deleted table that are the user's, through its parents up to the users table. */
function rowsOf(r: ResolvedErasure, entry: DeletedTable, alias = 't'): string {
  const column = `${alias}.${ident(entry.ref.columns[0]!)}`;
  if (!entry.cascade) return `${qualified(entry.info)} AS ${alias} WHERE ${column} = ${userParam(r)}`;
  const parent = r.tables.find((t) => displayName(t.info) === entry.parent)!;
  const inner = `p${alias}`;
  return `${qualified(entry.info)} AS ${alias} WHERE ${column} IN (SELECT ${inner}.${ident(entry.ref.refColumns[0]!)} FROM ${rowsOf(r, parent, inner)})`;
}

/** The user's rows in each table that erasure deletes (cascade children included), by `schema.table`. */
export async function countUserRows(client: Queryable, r: ResolvedErasure, user: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const entry of r.tables) {
    const res = await query<{ n: number }>(client, r, `SELECT count(*)::int AS n FROM ${rowsOf(r, entry)}`, [user]);
    out[displayName(entry.info)] = res.rows[0]!.n;
  }
  return out;
}

/** The users row: absent, present, or present and anonymized (its marker set). */
export async function userRowState(client: Queryable, r: ResolvedErasure, user: string): Promise<'absent' | 'present' | 'anonymized'> {
  const marker = r.anonymize ? `${ident(r.anonymize.resolved.anonymize!.marker.name)} IS NOT NULL` : 'false';
  const res = await query<{ done: boolean }>(client, r, `SELECT ${marker} AS done FROM ${qualified(r.users)} WHERE ${ident(r.key.name)} = ${userParam(r)}`, [user]);
  const row = res.rows[0];
  return !row ? 'absent' : row.done ? 'anonymized' : 'present';
}

/** The keys (as text) of the user's rows of each resolved link, by link name. */
export async function linkKeys(client: Queryable, r: ResolvedErasure, user: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const l of r.links) {
    const res = await query<{ k: string }>(client, r,
      `SELECT DISTINCT t.${ident(l.key.name)}::text AS k FROM ${qualified(l.table)} AS t WHERE t.${ident(l.user.name)} = $1::${l.user.type} AND t.${ident(l.key.name)} IS NOT NULL`, [user]);
    out.set(l.link.name, res.rows.map((row) => row.k));
  }
  return out;
}

export interface PostgresErased { rows: Record<string, number>; user: 'anonymized' | 'deleted' | 'absent' }

/**
 * Deletes the user's rows and anonymizes (or deletes) the users row, in one transaction: a kill
 * leaves either everything or nothing done here, and a re-run does what is left.
 */
export async function erasePostgres(client: pg.ClientBase, r: ResolvedErasure, user: string, env: NodeJS.ProcessEnv): Promise<PostgresErased> {
  const salt = r.anonymize?.saltEnv ? env[r.anonymize.saltEnv] ?? '' : '';
  if (r.anonymize && r.anonymize.resolved.anonymize!.columns.some((c) => c.strategy === 'hash') && !salt) {
    throw new JarvisError('USAGE', `the hash strategy of the users row needs its salt, but $${r.anonymize.saltEnv ?? '(saltEnv)'} is not set`, { hint: 'set the variable named by anonymize.saltEnv' });
  }
  await client.query('BEGIN');
  try {
    const rows = await countUserRows(client, r, user);
    for (const entry of r.tables.filter((t) => !t.cascade)) await query(client, r, `DELETE FROM ${rowsOf(r, entry)}`, [user]);
    let state: PostgresErased['user'] = 'absent';
    const pk = r.users.primaryKey.length ? r.users.primaryKey : [r.key.name];
    const found = await query<Record<string, unknown>>(client, r, `SELECT ${pk.map((c) => `${ident(c)}::text AS ${ident(c)}`).join(', ')} FROM ${qualified(r.users)} WHERE ${ident(r.key.name)} = ${userParam(r)}`, [user]);
    if (found.rows.length) {
      if (r.anonymize) {
        const sql = anonymizeByKey(r.anonymize.resolved);
        const values: unknown[] = pk.map((c) => found.rows.map((row) => row[c]));
        values[sql.saltParam - 1] = salt;
        values[sql.redactionParam - 1] = r.anonymize.redaction;
        await client.query(sql.text, values);
        state = 'anonymized';
      } else {
        await query(client, r, `DELETE FROM ${qualified(r.users)} WHERE ${ident(r.key.name)} = ${userParam(r)}`, [user]);
        state = 'deleted';
      }
    }
    await client.query('COMMIT');
    return { rows, user: state };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/** A query with the user id bound; an id the key column's type refuses is a usage error, not a stack trace. */
async function query<R extends pg.QueryResultRow>(client: Queryable, r: ResolvedErasure, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
  try {
    return await client.query<R>(text, values);
  } catch (e) {
    if (sqlState(e) === '22P02' || sqlState(e) === '22003') {
      throw new JarvisError('USAGE', `--user ${JSON.stringify(String(values[0]))} is not a valid ${r.key.type} (the type of ${displayName(r.users)}.${r.key.name})`, { cause: e });
    }
    throw e;
  }
}
