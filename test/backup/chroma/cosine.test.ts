import t from 'tap';
import { cosineLength, cosinePreimage, cosineStored, ulpDistance } from '../../../src/backup/chroma/cosine.js';
import { pageSizeFor, type CollectionSummary } from '../../../src/backup/chroma/logical.js';
import { checkCollectionName, restoreTargets } from '../../../src/backup/chroma/logical-restore.js';

function randomVectors(count: number, dim: number, seed: number, scale = 1): Float32Array[] {
  let s = seed;
  const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  return Array.from({ length: count }, () => Float32Array.from({ length: dim }, () => (rnd() * 2 - 1) * scale));
}

t.test('storing a cosine vector changes it in the last bit, and a pre-image stores as the exact target', async (t) => {
  for (const [dim, scale] of [[384, 1], [1536, 1], [7, 1e-3], [2, 50]] as const) {
    const targets = randomVectors(dim > 1000 ? 40 : 200, dim, dim, scale).map(cosineStored);
    let changedByStoring = 0;
    let solved = 0;
    for (const target of targets) {
      if (cosineStored(target).some((x, i) => x !== target[i])) changedByStoring++;
      const pre = cosinePreimage(target);
      if (pre && cosineStored(pre).every((x, i) => Object.is(x, target[i]))) solved++;
    }
    t.ok(changedByStoring > 0, `dim ${dim}: storing what get returned changes ${changedByStoring} of ${targets.length} vectors again`);
    t.equal(solved, targets.length, `dim ${dim}: every vector has a pre-image that stores as exactly it`);
  }
  const zero = new Float32Array(8);
  t.same(Array.from(cosinePreimage(zero)!), Array.from(zero), 'the zero vector stores as itself');
  t.equal(cosineLength(Float32Array.from([3, 4])), 5);
});

t.test('ulp distance counts float32 steps across zero', async (t) => {
  t.equal(ulpDistance(1, 1), 0);
  t.equal(ulpDistance(1, Math.fround(1 + 2 ** -23)), 1);
  t.equal(ulpDistance(-0, 0), 0);
  t.equal(ulpDistance(-1.4e-45, 1.4e-45), 2);
});

const summaries = ['a-one', 'b-two'].map((name, i) => ({ name, id: `id${i}`, file: `collections/000${i + 1}.jsonl.br`, count: 1, dimension: 3, space: 'l2', embeddingsSha256: '', contentSha256: '' })) as CollectionSummary[];

t.test('restore targets: all collections, one, or one under a new name', async (t) => {
  t.same(restoreTargets(summaries, {}, 'X').map((r) => r.target), ['a-one', 'b-two']);
  t.same(restoreTargets(summaries, { collection: 'b-two' }, 'X').map((r) => [r.summary.name, r.target]), [['b-two', 'b-two']]);
  t.same(restoreTargets(summaries, { collection: 'b-two', as: 'b-copy' }, 'X').map((r) => [r.summary.name, r.target]), [['b-two', 'b-copy']]);
  t.same(restoreTargets([summaries[0]!], { as: 'only-copy' }, 'X').map((r) => r.target), ['only-copy'], '--as alone when the backup has one collection');
  t.throws(() => restoreTargets(summaries, { as: 'x-copy' }, 'X'), { code: 'USAGE', message: /--as names one collection; backup X has 2/ });
  t.throws(() => restoreTargets(summaries, { collection: 'zzz' }, 'X'), { code: 'USAGE', message: /no collection "zzz"/ });
});

t.test('collection names follow Chroma\'s rules', async (t) => {
  for (const ok of ['abc', 'memories-l2', 'a.b_c-9', 'x'.repeat(512)]) t.doesNotThrow(() => checkCollectionName(ok), ok);
  for (const bad of ['ab', '-abc', 'abc-', 'a..b', '192.168.1.1', 'sp ace', 'x'.repeat(513), 'ünï']) t.throws(() => checkCollectionName(bad), { code: 'USAGE' }, bad);
});

t.test('pages hold about 12 MB of JSON, at most 5,000 records', async (t) => {
  t.equal(pageSizeFor(384), 2495);
  t.equal(pageSizeFor(2), 5000);
  t.equal(pageSizeFor(4096), 243);
  t.equal(pageSizeFor(null), 2495, 'a collection without records yet');
});
