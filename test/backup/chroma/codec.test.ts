import t from 'tap';
import { CollectionDigest, SetDigest, addRequestBody, decodeLine, encodeHeaderLine, encodeRecordLine, encodeTrailerLine, type StoredRecord } from '../../../src/backup/chroma/codec.js';
import { embeddingBytes, floatsOf, parseEmbeddingMatrix, parseLossless, stringifyLossless, type LosslessObject } from '../../../src/services/chroma-wire.js';

t.test('backup lines round-trip every field, and damaged lines are named', async (t) => {
  const matrix = parseEmbeddingMatrix(Buffer.from('[[0.1,-0.0,3.4028235e38]]'), 0).matrix!;
  const record: StoredRecord = {
    id: 'id\n"1"', embedding: embeddingBytes(matrix, 0).toString('base64'), document: 'ünïcødé 🙂\ttab', uri: null,
    metadata: parseLossless('{"f":3.0,"i":-7,"big":-9223372036854775808,"s":"x","b":true}') as LosslessObject,
  };
  const line = encodeRecordLine(record);
  t.ok(line.endsWith('}\n') && !line.slice(0, -1).includes('\n'), 'one line');
  t.notMatch(line, /"uri"/, 'null fields are left out');
  const back = decodeLine(line.trimEnd(), 2);
  t.equal(back.kind, 'record');
  if (back.kind === 'record') {
    t.equal(stringifyLossless(back.record.metadata), stringifyLossless(record.metadata));
    t.same({ ...back.record, metadata: null }, { ...record, metadata: null });
    t.same(Array.from(floatsOf(Buffer.from(back.record.embedding, 'base64'))), Array.from(matrix.values), 'float32 exact, -0 included');
    t.ok(Object.is(floatsOf(Buffer.from(back.record.embedding, 'base64'))[1], -0));
  }
  const header = { name: 'memories', id: 'c0ffee', metadata: parseLossless('{"hnsw:space":"ip","w":2.0}') as LosslessObject, configuration: parseLossless('{"hnsw":{"space":"ip","ef_search":55}}') as LosslessObject, dimension: 384 };
  const h = decodeLine(encodeHeaderLine(header).trimEnd(), 1);
  t.equal(h.kind === 'header' && stringifyLossless(h.header.metadata), '{"hnsw:space":"ip","w":2.0}');
  t.equal(h.kind === 'header' && h.header.dimension, 384);
  const trailer = { count: 5, embeddingsSha256: 'a'.repeat(64), contentSha256: 'b'.repeat(64) };
  t.same(decodeLine(encodeTrailerLine(trailer).trimEnd(), 9), { kind: 'end', trailer });
  t.throws(() => decodeLine('{"id":"x","embedding":"not base64!"}', 7), { code: 'BACKUP_INVALID', message: /line 7/ });
  t.throws(() => decodeLine('{"embedding":"AAAA"}', 8), { code: 'BACKUP_INVALID', message: /without an id/ });
  t.throws(() => decodeLine('{"id":"x","embedding":"AAAA"', 9), { code: 'BACKUP_INVALID', message: /line 9/ });
  t.throws(() => decodeLine('{"$":"end","count":1.5,"embeddingsSha256":"a","contentSha256":"b"}', 3), { code: 'BACKUP_INVALID', message: /count/ });
});

t.test('collection checksums ignore record order, and see one flipped bit or a duplicate', async (t) => {
  const emb = (seed: number) => Buffer.from(new Float32Array([seed, seed / 3, -seed]).buffer);
  const records = [1, 2, 3, 4].map((i) => ({ id: `r${i}`, e: emb(i), d: i % 2 ? `doc ${i}` : null, m: parseLossless(`{"n":${i}}`) as LosslessObject }));
  const digest = (list: typeof records) => {
    const d = new CollectionDigest();
    for (const r of list) d.add(r.id, r.e, r.d, null, r.m);
    return d.result();
  };
  const base = digest(records);
  t.same(digest([...records].reverse()), base, 'order does not matter');
  const flipped = records.map((r) => ({ ...r, e: Buffer.from(r.e) }));
  flipped[2]!.e[5]! ^= 1;
  t.not(digest(flipped).embeddingsSha256, base.embeddingsSha256, 'a flipped bit changes the embeddings checksum');
  t.equal(digest(flipped).contentSha256, base.contentSha256);
  const retyped = records.map((r, i) => (i === 0 ? { ...r, m: parseLossless('{"n":1.0}') as LosslessObject } : r));
  t.not(digest(retyped).contentSha256, base.contentSha256, 'an int that became a float changes the content checksum');
  const doubled = [...records, records[0]!, records[0]!];
  t.not(digest(doubled).embeddingsSha256, digest(records.slice(1)).embeddingsSha256, 'duplicates do not cancel out');
  const s = new SetDigest();
  s.add(Buffer.alloc(32, 0xff));
  s.add(Buffer.concat([Buffer.alloc(31), Buffer.from([1])]));
  t.equal(s.hex(), '0'.repeat(64), 'the sum wraps modulo 2^256');
});

t.test('an add request keeps metadata numbers as stored, in base64 or as exact numbers', async (t) => {
  const e = Buffer.from(new Float32Array([0.1, -0, 1e-40]).buffer).toString('base64');
  const records: StoredRecord[] = [
    { id: 'a', embedding: e, document: 'x', uri: null, metadata: parseLossless('{"f":3.0,"big":9007199254740993}') as LosslessObject },
    { id: 'b', embedding: e, document: null, uri: null, metadata: null },
  ];
  const b64 = addRequestBody(records, true);
  t.match(b64, /"f":3\.0,"big":9007199254740993/);
  t.notMatch(b64, /"uris"/, 'no uris key when every uri is null');
  t.same((JSON.parse(b64) as { embeddings: string[] }).embeddings, [e, e]);
  const numeric = JSON.parse(addRequestBody(records, false)) as { embeddings: number[][]; documents: (string | null)[] };
  t.same(numeric.documents, ['x', null]);
  const back = Float32Array.from(numeric.embeddings[0]!);
  t.same(Array.from(back), Array.from(new Float32Array([0.1, -0, 1e-40])));
  t.ok(Object.is(back[1], -0), 'negative zero survives the numeric form');
});

t.test('embeddings are written as the same base64 that Buffer writes, at every length', async (t) => {
  let seed = 9;
  for (let n = 0; n < 40; n++) {
    const bytes = Buffer.from(Array.from({ length: n }, () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed & 0xff; }));
    const line = encodeRecordLine({ id: 'x', embedding: bytes, document: null, uri: null, metadata: null });
    t.equal(line, `{"id":"x","embedding":"${bytes.toString('base64')}"}\n`, `${n} bytes`);
  }
});
