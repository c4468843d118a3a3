import t from 'tap';
import { JsonNumber, canonicalLossless, parseEmbeddingMatrix, parseLossless, parseRecordPage, plainOf, stringifyLossless, type LosslessObject } from '../../src/services/chroma-wire.js';

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
