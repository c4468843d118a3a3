/**
 * The pure comparison of a link: orphans on either side with counts and a few examples, rows past
 * their `until` not expected, records without the key field, the keys as each store writes them,
 * and the COPY text of pg_restore read back exactly.
 */
import t from 'tap';
import {
  KeyMatcher, MAX_EXAMPLES, copyField, copyFields, copyTimestampMs, describeCompared, keyOfMetadataValue, keyOfRedisKey, parseCopyHeader, patternParts,
  sampleOrphans, scanGlob, sourceOf,
} from '../../src/links/compare.js';
import { JsonNumber } from '../../src/services/chroma-wire.js';

t.test('a row without its record and a record without its row are orphans of their own side', async (t) => {
  const m = new KeyMatcher();
  for (const k of ['1', '2', '4']) m.sideKey(k);
  for (const k of ['1', '2', '3']) m.row(k, true);
  t.same(m.finish(), { rows: 3, expected: 3, records: 3, missing: { count: 1, examples: ['3'] }, orphans: { count: 1, examples: ['4'] } });
});

t.test('a row past its until is not expected on the other side, but still owns its key there', async (t) => {
  const m = new KeyMatcher();
  m.sideKey('old-but-present');
  m.row('old-but-present', false);
  m.row('old-and-gone', false);
  const r = m.finish();
  t.same([r.missing.count, r.orphans.count, r.expected], [0, 0, 0]);
});

t.test('examples stop at five, the counts do not', async (t) => {
  const m = new KeyMatcher();
  for (let i = 0; i < 12; i++) m.row(String(i), true);
  for (let i = 100; i < 109; i++) m.sideKey(String(i));
  const r = m.finish();
  t.equal(MAX_EXAMPLES, 5);
  t.same(r.missing, { count: 12, examples: ['0', '1', '2', '3', '4'] });
  t.same(r.orphans, { count: 9, examples: ['100', '101', '102', '103', '104'] });
});

t.test('a record without the key field is an orphan shown by its record id, first', async (t) => {
  const m = new KeyMatcher();
  m.sideKey('7');
  m.sideWithoutKey('record abc (no memory_id)');
  const r = m.finish();
  t.same(r.orphans, { count: 2, examples: ['record abc (no memory_id)', '7'] });
  t.equal(r.records, 2);
});

t.test('a key seen twice on the other side (SCAN may repeat one) counts once against its row', async (t) => {
  const m = new KeyMatcher();
  m.sideKey('a');
  m.sideKey('a');
  m.row('a', true);
  t.same(m.finish().orphans, { count: 0, examples: [] });
});

t.test('a sample looked up on the other side: the keys not found that were expected', async (t) => {
  t.same(sampleOrphans([{ key: '1', expected: true }, { key: '2', expected: false }, { key: '3', expected: true }], new Set(['1'])), { count: 1, examples: ['3'] });
});

t.test('a Redis pattern: its row key, or null for a key of another shape; its SCAN glob', async (t) => {
  const parts = patternParts('session:{key}:v1');
  t.same(parts, { prefix: 'session:', suffix: ':v1' });
  t.equal(keyOfRedisKey('session:abc:v1', parts), 'abc');
  t.equal(keyOfRedisKey('session::v1', parts), '');
  t.equal(keyOfRedisKey('session:abc', parts), null);
  t.equal(keyOfRedisKey('cache:abc:v1', parts), null);
  t.equal(keyOfRedisKey('session:v1', parts), null, 'prefix and suffix may not overlap');
  t.equal(scanGlob(parts), 'session:*:v1');
});

t.test('Chroma metadata values as row keys: ints exactly (beyond 2^53 too), strings as they are, nothing else', async (t) => {
  t.equal(keyOfMetadataValue(new JsonNumber('9007199254740993')), '9007199254740993');
  t.equal(keyOfMetadataValue(new JsonNumber('42')), '42');
  t.equal(keyOfMetadataValue(42), '42');
  t.equal(keyOfMetadataValue('b1e0c6f2-uuid'), 'b1e0c6f2-uuid');
  t.equal(keyOfMetadataValue(new JsonNumber('4.0')), null, 'a float names no row');
  t.equal(keyOfMetadataValue(true), null);
  t.equal(keyOfMetadataValue(undefined), null);
});

t.test('the COPY text of pg_restore: header, escapes, NULL, timestamps with their zone', async (t) => {
  t.same(parseCopyHeader('COPY public.memory (id, user_id, "Odd ""Name""", content) FROM stdin;'), { table: 'public.memory', columns: ['id', 'user_id', 'Odd "Name"', 'content'] });
  t.equal(parseCopyHeader('SET client_encoding = \'UTF8\';'), null);
  t.equal(copyField('\\N'), null);
  t.equal(copyField('a\\tb\\\\c\\nd\\101'), 'a\tb\\c\nd' + 'A');
  t.same(copyFields('7\tx\t\\N', [0, 2]), ['7', null]);
  t.equal(copyTimestampMs('2026-12-07 14:23:24.123456+00'), Date.parse('2026-12-07T14:23:24.123Z'));
  t.equal(copyTimestampMs('2026-12-07 15:23:24+01'), Date.parse('2026-12-07T14:23:24Z'));
  t.equal(copyTimestampMs('2026-12-07 20:00:24+05:30'), Date.parse('2026-12-07T14:30:24Z'));
  t.equal(copyTimestampMs('2026-12-07 14:23:24'), Date.parse('2026-12-07T14:23:24Z'), 'without a zone: UTC');
  t.equal(copyTimestampMs('infinity'), Infinity);
  t.ok(Number.isNaN(copyTimestampMs('0044-03-15 00:00:00 BC')));
});

t.test('what was compared, for people, and where the link is written', async (t) => {
  t.equal(describeCompared('all', 650, 149, 'redis', undefined, 149), 'all 650 rows (149 not past their until) and 149 keys');
  t.equal(describeCompared('exact', 260, 260, 'chroma'), 'exactly: 260 rows and 260 records');
  t.equal(describeCompared('sample', 2000, 1900, 'chroma', { rows: 1_000_000, records: 990_000 }), 'a sample of 2,000 rows (of 1,000,000) and 1,900 records (of 990,000)');
  t.equal(sourceOf({ source: { file: 'jarvis-db.yaml', path: 'links[1]', line: 42 } }), 'jarvis-db.yaml:42 links[1]');
});
