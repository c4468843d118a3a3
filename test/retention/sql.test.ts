/**
 * Policy → SQL, pure (docs/architecture.md §4 rule 5): identifiers reach SQL only quoted, values never
 * reach it at all (they are bind parameters). The same statements run against a real server
 * with hostile names in runner.test.ts.
 */
import t from 'tap';
import type { ResolvedPolicy } from '../../src/retention/check.js';
import { regclassText } from '../../src/retention/catalog.js';
import {
  anonymizeByKey, archiveBatchByCtid, capBoundary, childrenLeft, compressByKey, countByKey, countCapped, countChildren, countEligible, ageBoundOf, deleteByKey, deleteChildrenReturningRows, deleteReturningRows, restoreInsert, selectBatch,
} from '../../src/retention/sql.js';
import { col, table } from './fixture.js';

const HOSTILE_TABLE = 'msgs"; DROP TABLE users; --';
const HOSTILE_AGE = 'created at"';
const HOSTILE_KEY = "id'); DELETE FROM users; --";

const parent = table(HOSTILE_TABLE, [col(HOSTILE_KEY, 'bigint'), col(HOSTILE_AGE, 'timestamp with time zone'), col('body text', 'text'), col('marked;at', 'timestamp with time zone'), col('grp"', 'text'), col('v$', 'double precision')], {
  schema: 'sch"ema', pk: [HOSTILE_KEY], indexes: [[HOSTILE_AGE]],
  refs: [{ constraint: 'x', schema: 'o"ther', table: 'ref tab', columns: ['p id'], refColumns: [HOSTILE_KEY], onDelete: 'no action' }],
});
const child = table('kids;', [col('kid"id', 'bigint'), col('parent"ref', 'bigint')], { pk: ['kid"id'] });
const rollup = table('roll"up', [col('grp"', 'text'), col('bucket_start', 'timestamp with time zone'), col('count', 'bigint'), col('sum', 'double precision'), col('min', 'double precision'), col('max', 'double precision')], { pk: ['grp"', 'bucket_start'] });
const c = (t_: typeof parent, name: string) => t_.columns.find((x) => x.name === name)!;

const resolved: ResolvedPolicy = {
  table: parent, age: c(parent, HOSTILE_AGE), primaryKey: [c(parent, HOSTILE_KEY)],
  children: [{ info: child, column: c(child, 'parent"ref'), parentColumn: c(parent, HOSTILE_KEY) }],
  blockers: parent.references,
  rollup: { info: rollup, groupBy: [c(parent, 'grp"')], value: c(parent, 'v$'), bucketSeconds: 3600 },
  anonymize: { columns: [{ column: c(parent, 'body text'), strategy: 'hash' }, { column: c(parent, 'grp"'), strategy: 'email' }, { column: c(parent, 'v$'), strategy: 'null' }], marker: c(parent, 'marked;at') },
};

const ALL = {
  selectFirst: selectBatch(resolved, { op: '<', bound: 'x' }, { keyset: false, extra: [c(parent, 'body text')] }).text,
  selectNext: selectBatch(resolved, { op: '<=', bound: 'x' }, { keyset: true, extraWhere: 't."marked;at" IS NULL' }).text,
  deleteByKey: deleteByKey(parent, resolved.primaryKey).text,
  deleteReturning: deleteReturningRows(parent, resolved.primaryKey).text,
  deleteCompositeKey: deleteByKey(rollup, [c(rollup, 'grp"'), c(rollup, 'bucket_start')]).text,
  deleteChildren: deleteChildrenReturningRows(resolved.children[0]!).text,
  countByKey: countByKey(parent, resolved.primaryKey).text,
  childrenLeft: childrenLeft(resolved.children[0]!).text,
  anonymize: anonymizeByKey(resolved).text,
  compress: compressByKey(resolved).text,
  countEligible: countEligible(resolved, { op: '<', bound: 'x' }).text,
  countChildren: countChildren(resolved, resolved.children[0]!).text,
  capBoundary: capBoundary(resolved).text,
  countCapped: countCapped(resolved).text,
  restore: restoreInsert(parent, parent.columns).text,
};

/** The SQL with every correctly quoted identifier, then the code's own literals, and every parameter taken out. */
function skeleton(sql: string): string {
  return sql.replace(/"(?:[^"]|"")*"/g, 'ID').replace(/'[^']*'/g, 'LIT').replace(/\$\d+/g, 'P');
}

t.test('hostile table, schema and column names appear in SQL only as quoted identifiers', async (t) => {
  for (const [name, sql] of Object.entries(ALL)) {
    const bare = skeleton(sql);
    t.notMatch(bare, /;|--|DROP|DELETE FROM users|'\)/, `${name}: nothing of the names is left outside quotes`);
    t.notMatch(bare, /"/, `${name}: no stray double quote`);
  }
  t.match(ALL.deleteByKey, 'DELETE FROM "sch""ema"."msgs""; DROP TABLE users; --" AS t');
  t.match(ALL.selectFirst, 't."created at""" < $1::timestamp with time zone');
  t.match(ALL.selectFirst, 'NOT EXISTS (SELECT 1 FROM "o""ther"."ref tab" AS r WHERE r."p id" = t."id\'); DELETE FROM users; --")');
});

t.test('values are parameters: the bound, the keyset, the limit, the keys, the salt, the redaction text, the bucket width', async (t) => {
  t.match(ALL.selectFirst, /< \$1::timestamp with time zone .* LIMIT \$2 FOR UPDATE OF t SKIP LOCKED$/);
  t.match(ALL.selectNext, /<= \$1::timestamp with time zone AND t\."created at""" >= \$2::timestamp with time zone AND \(t\."created at""", t\."id'\); DELETE FROM users; --"\) > \(\$2::timestamp with time zone, \$3::bigint\)/);
  t.match(ALL.selectNext, /LIMIT \$4 FOR UPDATE OF t SKIP LOCKED$/);
  t.match(ALL.deleteByKey, /WHERE t\."id'\); DELETE FROM users; --" = ANY\(\$1::bigint\[\]\)$/);
  t.match(ALL.deleteCompositeKey, /USING unnest\(\$1::text\[\], \$2::timestamp with time zone\[\]\) AS k\(k1, k2\) WHERE t\."grp""" = k\.k1 AND t\."bucket_start" = k\.k2$/);
  const anon = anonymizeByKey(resolved);
  t.equal(anon.saltParam, 2);
  t.equal(anon.redactionParam, 3);
  t.match(anon.text, `"body text" = encode(sha256(convert_to($2::text || t."body text"::text, 'UTF8')), 'hex')`);
  t.match(anon.text, `"grp""" = 'user-' || left(encode(sha256(convert_to($2::text || t."id'); DELETE FROM users; --"::text, 'UTF8')), 'hex'), 32) || '@anon.invalid'`);
  t.match(anon.text, '"v$" = NULL, "marked;at" = now()');
  t.match(ALL.compress, '$2::numeric');
  t.match(ALL.restore, /OVERRIDING SYSTEM VALUE SELECT .* FROM unnest\(\$1::text\[\], \$2::text\[\], \$3::text\[\], \$4::text\[\], \$5::text\[\], \$6::text\[\]\) .* ON CONFLICT DO NOTHING$/);
  for (const [name, sql] of Object.entries(ALL)) t.notMatch(sql, /\d{4}-\d\d-\d\d/, `${name}: no timestamp literal`);
});

t.test('a plain table\'s archive batch is one statement: its rows locked as a batch, deleted by ctid, returned as chunk lines with their age and key, in order', async (t) => {
  const q = archiveBatchByCtid(resolved, { op: '<', bound: 'x' }, { keyset: true }).text;
  const bare = skeleton(q);
  t.notMatch(bare, /;|--|DROP|DELETE FROM users|'\)|"/, 'nothing of the names is left outside quotes');
  t.match(q, /^WITH b AS \(SELECT t\.ctid AS tid FROM "sch""ema"\."msgs""; DROP TABLE users; --" AS t WHERE t\."created at""" < \$1::timestamp with time zone AND .* LIMIT \$4 FOR UPDATE OF t SKIP LOCKED\)/);
  t.match(q, /, d AS \(DELETE FROM "sch""ema"\."msgs""; DROP TABLE users; --" AS t USING b WHERE t\.ctid = b\.tid RETURNING array_to_json\(ARRAY\[.*\]\)::text AS j, t\."created at""" AS k0, t\."id'\); DELETE FROM users; --" AS k1\)/);
  t.match(q, / SELECT d\.j, d\.k0, d\.k1 FROM d ORDER BY d\.k0, d\.k1$/, 'the last row is the next keyset');
  t.match(q, 'NOT EXISTS (SELECT 1 FROM "o""ther"."ref tab" AS r', 'rows still referenced are skipped, as in selectBatch');
});

t.test('batches go in (age, key) order and lock only the table being walked; archived rows come back as JSON built by the server', async (t) => {
  t.match(ALL.selectFirst, /^SELECT t\."created at""", t\."id'\); DELETE FROM users; --", t\."body text" FROM /);
  t.match(ALL.selectFirst, /ORDER BY t\."created at""", t\."id'\); DELETE FROM users; --" LIMIT/);
  t.match(ALL.deleteReturning, / RETURNING array_to_json\(ARRAY\[t\."id'\); DELETE FROM users; --"::text, t\."created at"""::text, .*\]\)::text AS j$/);
  t.match(ALL.deleteChildren, /^DELETE FROM "public"\."kids;" AS c WHERE c\."parent""ref" = ANY\(\$1::bigint\[\]\) RETURNING array_to_json\(ARRAY\[c\."kid""id"::text, c\."parent""ref"::text\]\)::text, c\."kid""id"::text$/);
});

t.test('compress merges into existing buckets: counts and sums add up, min and max widen', async (t) => {
  t.match(ALL.compress, 'ON CONFLICT ("grp""", bucket_start) DO UPDATE SET count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum, min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max)');
  t.match(ALL.compress, /^WITH gone AS \(DELETE FROM .* RETURNING .*\) INSERT INTO "public"."roll""up" AS r/);
});

t.test('a configured table name becomes quoted text for to_regclass, split at the schema dot only', async (t) => {
  t.equal(regclassText('messages'), '"messages"');
  t.equal(regclassText('public.memory'), '"public"."memory"');
  t.equal(regclassText('users; DROP TABLE users'), '"users; DROP TABLE users"');
  t.equal(regclassText('a"b.c"d'), '"a""b"."c""d"');
});

t.test('on a partitioned table a by-key delete also bounds the age by the batch\'s last, so the server prunes the partitions; a plain table\'s does not', async (t) => {
  const parted = { ...rollup, plain: false };
  const key = [c(rollup, 'grp"'), c(rollup, 'bucket_start')];
  const bound = ageBoundOf(parted, c(rollup, 'bucket_start'), key);
  t.equal(deleteByKey(parted, key, bound).text, 'DELETE FROM "public"."roll""up" AS t USING unnest($1::text[], $2::timestamp with time zone[]) AS k(k1, k2) WHERE t."grp""" = k.k1 AND t."bucket_start" = k.k2 AND t."bucket_start" <= $3::timestamp with time zone');
  t.match(deleteReturningRows(parted, key, bound).text, / AND t\."bucket_start" <= \$3::timestamp with time zone RETURNING /);
  t.equal(ageBoundOf({ plain: true }, c(rollup, 'bucket_start'), key), null);
});
