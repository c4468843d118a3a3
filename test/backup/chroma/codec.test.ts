import t from 'tap';
import {
  CollectionDigest, JsonNumber, SetDigest, addRequestBody, canonicalLossless, decodeLine, embeddingBytes, encodeHeaderLine,
  encodeRecordLine, encodeTrailerLine, floatsOf, parseEmbeddingMatrix, parseLossless, parseRecordPage, plainOf, stringifyLossless,
  type LosslessObject, type StoredRecord,
} from '../../../src/backup/chroma/codec.js';

t.test('the lossless parser keeps float-ness and 64-bit ints that JSON.parse loses', async (t) => {
  const text = '{"f":3.0,"i":3,"big":9007199254740993,"neg0":-0.0,"e":1e300,"s":"ü \\"q\\" \\\\ \\u00e9 😀","b":false,"n":null,"a":[1,2.5e-3]}';
  const v = parseLossless(text) as LosslessObject;
  t.ok(v.f instanceof JsonNumber && v.f.isFloat, '3.0 stays a float');
  t.ok(v.i instanceof JsonNumber && !v.i.isFloat, '3 stays an int');
  t.equal((v.big as JsonNumber).text, '9007199254740993', 'a 64-bit int is exact');
  t.equal(v.s, 'ü "q" \\ é 😀', 'escapes are decoded as JSON does');
  t.equal(stringifyLossless(v), text.replace('\\u00e9', 'é'), 'written back as read (escapes normalised)');
  t.same(plainOf(v), JSON.parse(text), 'same values as JSON.parse where JSON.parse is exact');
  t.notOk(Object.prototype.hasOwnProperty.call(Object.prototype, 'x'));
  const proto = parseLossless('{"__proto__":{"x":1}}') as LosslessObject;
  t.ok(Object.prototype.hasOwnProperty.call(proto, '__proto__'), 'a "__proto__" key is an ordinary key');
  t.equal(({} as Record<string, unknown>).x, undefined, 'and pollutes nothing');
});

t.test('malformed JSON is a clear BACKUP_INVALID error, not a crash', async (t) => {
  for (const text of ['{"a":1', '{"a" 1}', '[1,]', '"unterminated', '{"a":01}', '{"a":1} x', '{"a":tru}']) {
    t.throws(() => parseLossless(text), { code: 'BACKUP_INVALID' }, text);
  }
});

t.test('canonical form ignores key order and float spelling but not int versus float', async (t) => {
  const a = parseLossless('{"x":1e300,"y":3.0,"z":"s"}');
  const b = parseLossless('{"z":"s","y":3.00,"x":1E+300}');
  t.equal(canonicalLossless(a), canonicalLossless(b));
  t.not(canonicalLossless(parseLossless('{"y":3}')), canonicalLossless(parseLossless('{"y":3.0}')));
  t.not(canonicalLossless(parseLossless('{"y":0.0}')), canonicalLossless(parseLossless('{"y":-0.0}')));
  t.not(canonicalLossless(parseLossless('{"y":9007199254740993}')), canonicalLossless(parseLossless('{"y":9007199254740992}')));
});

function numberTexts(): string[] {
  const out = ['0', '-0', '0.0', '-0.0', '1', '-1', '3.4028235e38', '-3.4028235e38', '1e-40', '1.4e-45', '1e-46', '1E5', '1e+5', '123456789012345678', '0.1', '0.2',
    '1.00000000000000000001', '9.999999e-23', '1e22', '1e23', '0.000000000000000000000123456', '5e-324', '1.17549435e-38'];
  let seed = 42;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
  for (let i = 0; i < 60000; i++) {
    const x = (rnd() * 2 - 1) * 10 ** Math.floor(rnd() * 20 - 10);
    switch (i % 4) {
      case 0: out.push(String(Math.fround(x))); break;
      case 1: out.push(x.toPrecision(1 + (i % 17))); break;
      case 2: out.push(x.toExponential(i % 12)); break;
      default: out.push(String(x));
    }
  }
  return out;
}

t.test('embeddings parsed from bytes equal Math.fround(JSON.parse) bit for bit', async (t) => {
  const texts = numberTexts();
  const dim = 7;
  const rows: string[] = [];
  for (let i = 0; i + dim <= texts.length; i += dim) rows.push(`[${texts.slice(i, i + dim).join(i % 2 ? ', ' : ',')}]`);
  const body = Buffer.from(`[${rows.join(',\n')}]tail`);
  const { matrix, end } = parseEmbeddingMatrix(body, 0);
  t.equal(body.toString('utf8', end), 'tail', 'stops after the closing bracket');
  const expected = JSON.parse(`[${rows.join(',')}]`) as number[][];
  t.equal(matrix!.rows, expected.length);
  t.equal(matrix!.dim, dim);
  let mismatches = 0;
  for (let r = 0; r < expected.length; r++) {
    for (let d = 0; d < dim; d++) if (!Object.is(matrix!.values[r * dim + d], Math.fround(expected[r]![d]!))) mismatches++;
  }
  t.equal(mismatches, 0, `${expected.length * dim} values identical`);
  t.same(parseEmbeddingMatrix(Buffer.from(' null'), 0).matrix, null);
  t.equal(parseEmbeddingMatrix(Buffer.from('[]'), 0).matrix!.rows, 0);
  t.throws(() => parseEmbeddingMatrix(Buffer.from('[[1,2],[3]]'), 0), { code: 'SERVICE_ERROR' }, 'rows of different length');
  t.throws(() => parseEmbeddingMatrix(Buffer.from('[[1,null]]'), 0), { code: 'SERVICE_ERROR' }, 'a null value');
});

t.test('a get page is parsed losslessly, whatever the ids and metadata keys contain', async (t) => {
  const body = Buffer.from(JSON.stringify({
    ids: ['a"embeddings":[[9]]', 'b'],
    embeddings: [[0.5, -0.25], [1e-40, 3]],
    documents: ['doc "embeddings":', null],
    uris: [null, 'file:///x'],
    metadatas: [{ embeddings: 1, f: 1.5 }, null],
    include: ['embeddings', 'documents', 'uris', 'metadatas'],
  }).replace('"f":1.5', '"f":2.0'));
  const page = parseRecordPage(body);
  t.same(page.ids, ['a"embeddings":[[9]]', 'b']);
  t.same(Array.from(page.embeddings!.values), [0.5, -0.25, Math.fround(1e-40), 3]);
  t.same(page.documents, ['doc "embeddings":', null]);
  t.same(page.uris, [null, 'file:///x']);
  t.equal((page.metadatas![0]!.f as JsonNumber).text, '2.0', 'metadata floats keep their text');
  t.equal(page.metadatas![1], null);
  const noEmbeddings = parseRecordPage(Buffer.from('{"ids":["x"],"embeddings":null,"documents":["d"],"metadatas":null,"uris":null,"include":["documents"]}'));
  t.equal(noEmbeddings.embeddings, null);
  t.throws(() => parseRecordPage(Buffer.from('{"ids":["x","y"],"embeddings":[[1]]}')), { code: 'SERVICE_ERROR' }, 'fewer embeddings than ids');
  t.throws(() => parseRecordPage(Buffer.from('{"ids":["x"],"documents":["a","b"]}')), { code: 'SERVICE_ERROR' }, 'more documents than ids');
});

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
