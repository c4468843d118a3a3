/**
 * What erasing a user means for a config and a catalog, pure (src/erasure/resolve.ts), on the
 * JARVIS catalog fixtures: the tables with a foreign key to users and their cascade children,
 * the anonymize strategies (erasure's own or the retention policy's), the user column of each
 * link, and the config errors naming where the bad name is written. Also the tombstone's pure
 * parts: Redis keys from a pattern, the sides merged with earlier tombstones, what a restore
 * re-applies, and a tombstone file that does not hold.
 */
import t from 'tap';
import type { Desired, LinkDeclaration } from '../../src/config/types.js';
import { resolveErasure, type ErasureCatalog } from '../../src/erasure/resolve.js';
import { redisKey, sidesOf } from '../../src/erasure/run.js';
import { parseTombstone, tombstoneId, tombstonesSince, type Tombstone } from '../../src/erasure/tombstones.js';
import type { TableInfo } from '../../src/retention/catalog.js';
import { col, CONVERSATIONS, desiredWith, MESSAGES, policy, table, USERS } from '../retention/fixture.js';

const MEMORY = table('memory', [col('id', 'bigint', { notNull: true }), col('user_id', 'bigint', { notNull: true }), col('content', 'text', { notNull: true })]);
const SESSIONS = table('sessions', [col('id', 'uuid', { notNull: true }), col('user_id', 'bigint', { notNull: true }), col('owner', 'bigint')]);
const JARVIS_USERS: TableInfo = { ...USERS, references: [...USERS.references, { constraint: 'memory_user_id_fkey', schema: 'public', table: 'memory', columns: ['user_id'], refColumns: ['id'], onDelete: 'cascade' }] };

function catalogOf(...tables: TableInfo[]): ErasureCatalog {
  const m: ErasureCatalog = new Map();
  for (const x of tables) { m.set(x.name, x); m.set(`${x.schema}.${x.name}`, x); }
  return m;
}
const CATALOG = catalogOf(JARVIS_USERS, CONVERSATIONS, MESSAGES, MEMORY, SESSIONS);
const ANONYMIZE = policy({ name: 'users-anonymize', table: 'users', action: 'anonymize', age: { column: 'last_active_at', olderThan: '2y' }, anonymize: { columns: { email: 'email', display_name: 'redact' }, marker: 'anonymized_at' } });

const link = (name: string, table: string, key: string, side: LinkDeclaration['side'], user?: string): LinkDeclaration => ({
  name, postgres: { table, key, ...(user ? { user } : {}) }, side, source: { file: 'jarvis-db.yaml', path: 'links[0]', line: 12 },
});
const desired = (extra: Partial<Desired> = {}): Desired => ({ ...desiredWith([ANONYMIZE]), ...extra });

t.test('by default every table with a foreign key to users is erased, with its cascade children, and the users row is anonymized as the retention policy says', async (t) => {
  const r = resolveErasure(desired(), CATALOG);
  t.same(r.tables.map((x) => [`${x.info.name}`, x.ref.columns[0], x.cascade, x.parent]), [
    ['conversations', 'user_id', false, 'public.users'], ['messages', 'conversation_id', true, 'public.conversations'],
    ['sessions', 'user_id', false, 'public.users'], ['memory', 'user_id', false, 'public.users'],
  ], 'memory keeps its conversation (ON DELETE SET NULL is not a cascade) and goes by its own key');
  t.same(r.anonymize!.resolved.anonymize!.columns.map((c) => [c.column.name, c.strategy]), [['email', 'email'], ['display_name', 'redact']]);
  t.equal(r.anonymize!.redaction, '[redacted]', 'retention\'s default redaction');
});

t.test('erasure.tables narrows the tables; one without a foreign key to users is an error naming the field', async (t) => {
  const settings = { users: { table: 'users', key: 'id' }, user: 'delete' as const, userMetadata: 'user_id', tables: ['sessions'] };
  const r = resolveErasure(desired({ erasure: settings }), CATALOG);
  t.same(r.tables.map((x) => x.info.name), ['sessions']);
  t.equal(r.anonymize, undefined, 'user: delete anonymizes nothing');
  t.throws(() => resolveErasure(desired({ erasure: { ...settings, tables: ['sessions', 'messages'] } }), CATALOG),
    { code: 'CONFIG_INVALID', message: /^jarvis-db\.yaml erasure\.tables\[1\]: table public\.messages has no foreign key to public\.users\(id\)/ });
  t.throws(() => resolveErasure(desired({ erasure: { ...settings, tables: ['nope'] } }), CATALOG), { message: /erasure\.tables\[0\]: table "nope" does not exist/ });
});

t.test('anonymize strategies are checked by retention\'s own rules', async (t) => {
  const bad = { users: { table: 'users', key: 'id' }, user: 'anonymize' as const, userMetadata: 'user_id', anonymize: { columns: { email: 'null' as const }, marker: 'anonymized_at' } };
  t.throws(() => resolveErasure(desired({ erasure: bad }), CATALOG), { code: 'CONFIG_INVALID', message: /erasure\.anonymize: column "email" of public\.users is NOT NULL: the null strategy cannot apply/ });
  t.throws(() => resolveErasure(desiredWith([]), CATALOG), { message: /erasure\.anonymize: nothing says how to anonymize public\.users/ }, 'without a policy nor erasure.anonymize');
});

t.test('a link knows whose a row is by postgres.user or the foreign key to users; one with neither is skipped', async (t) => {
  const links = [
    link('memory-vectors', 'memory', 'id', { store: 'chroma', collection: 'memories', metadata: 'memory_id' }),
    link('user-sessions', 'sessions', 'id', { store: 'redis', pattern: 'session:{key}' }, 'owner'),
    link('message-vectors', 'messages', 'id', { store: 'chroma', collection: 'messages', metadata: 'message_id' }),
  ];
  const r = resolveErasure(desired({ links }), CATALOG);
  t.same(r.links.map((l) => [l.link.name, l.key.name, l.user.name]), [['memory-vectors', 'id', 'user_id'], ['user-sessions', 'id', 'owner']]);
  t.match(r.skipped, [/^link message-vectors: public\.messages has no user column \(postgres\.user\) nor a foreign key to public\.users$/]);
  t.throws(() => resolveErasure(desired({ links: [link('x', 'ghost', 'id', { store: 'redis', pattern: 'k:{key}' })] }), CATALOG),
    { code: 'CONFIG_INVALID', message: /^jarvis-db\.yaml:12 links\[0\]: link x: table "ghost" does not exist$/ });
  t.throws(() => resolveErasure(desired({ links: [link('x', 'memory', 'id', { store: 'redis', pattern: 'k:{key}' }, 'nobody')] }), CATALOG),
    { message: /link x: user column "nobody" does not exist in table public\.memory/ });
});

t.test('a Redis key is the pattern with {key} replaced literally; the sides merge the keys of earlier tombstones', async (t) => {
  t.equal(redisKey('session:{key}', 'a$&b'), 'session:a$&b', 'no replacement patterns');
  t.equal(redisKey('u:{key}:s', '7'), 'u:7:s');
  const links = [link('user-sessions', 'sessions', 'id', { store: 'redis', pattern: 'session:{key}', database: 2 }), link('memory-vectors', 'memory', 'id', { store: 'chroma', collection: 'memories', metadata: 'memory_id' })];
  const d = desired({ links });
  const r = resolveErasure(d, CATALOG);
  const earlier = { sides: [{ link: 'user-sessions', store: 'redis', database: 2, keys: ['session:old'] }, { link: 'memory-vectors', store: 'chroma', collection: 'memories', metadata: 'memory_id', keys: ['9'] }] } as unknown as Tombstone;
  t.same(sidesOf(d, r, new Map([['user-sessions', ['s1']], ['memory-vectors', ['10', '11']]]), [earlier]), [
    { link: 'user-sessions', store: 'redis', database: 2, keys: ['session:old', 'session:s1'] },
    { link: 'memory-vectors', store: 'chroma', collection: 'memories', metadata: 'memory_id', keys: ['10', '11', '9'] },
  ]);
});

t.test('tombstones: ids sort by time and keep the user id out of paths; a restore re-applies those since its backup; a damaged one is named', async (t) => {
  const id = tombstoneId('../../etc/passwd', new Date('2026-12-07T14:23:25.123Z'));
  t.match(id, /^20261207T142325123Z-[0-9a-f]{8}$/);
  const at = (s: string) => ({ at: s }) as Tombstone;
  t.same(tombstonesSince([at('2026-12-01T00:00:00.000Z'), at('2026-12-07T03:00:00.000Z'), at('2026-12-08T00:00:00.000Z')], '2026-12-07T03:00:00.000Z').map((x) => x.at),
    ['2026-12-07T03:00:00.000Z', '2026-12-08T00:00:00.000Z']);
  const good: Tombstone = { formatVersion: 1, id, user: '42', at: '2026-12-07T14:23:25.123Z', links: [], postgres: { table: 'users', key: 'id', tables: [], user: 'anonymize' }, userMetadata: 'user_id', sides: [] };
  t.same(parseTombstone(JSON.stringify(good), id), good);
  t.equal(parseTombstone(JSON.stringify(good), 'other'), `tombstone.json names "${id}", not its item other`);
  t.match(parseTombstone('{', id), /^tombstone\.json is not JSON/);
  t.match(parseTombstone(JSON.stringify({ ...good, sides: [{ link: 'x', store: 'redis', keys: ['k'] }] }), id), /has a side that is not/);
});
