/**
 * The seed's Chroma and Redis writes, pure: embeddings passed from PostgreSQL's text into the add
 * request untouched, ids exact beyond 2^53, large documents left out; SET commands carry the TTL
 * left until expires_at and skip what has expired. (On the servers: test/links/sandbox.test.ts.)
 */
import t from 'tap';
import { MAX_DOCUMENT_CHARS, embeddingJson, memoryAddBody, setCommands } from '../../src/dataset/seed-stores.js';
import { RespParser, type Reply } from '../../src/services/redis-resp-codec.js';

t.test('real[] and vector text become JSON arrays without parsing a number', async (t) => {
  t.equal(embeddingJson('{0.1,-2e-05,3}'), '[0.1,-2e-05,3]');
  t.equal(embeddingJson('[0.1,-2e-05,3]'), '[0.1,-2e-05,3]');
  t.throws(() => embeddingJson('(1,2)'), { code: 'SERVICE_ERROR' });
});

t.test('the add request: ids as text, memory_id and user_id as exact ints, small documents only, rows without an embedding left out', async (t) => {
  const big = 'x'.repeat(MAX_DOCUMENT_CHARS + 1);
  const add = memoryAddBody([
    { id: '9007199254740993', user_id: '12', content: 'tea "not" coffee', embedding: '{1,2}' },
    { id: '2', user_id: '3', content: big, embedding: '[3,4]' },
    { id: '3', user_id: '3', content: 'no vector', embedding: null },
  ])!;
  t.equal(add.records, 2);
  t.equal(add.body, '{"ids":["9007199254740993","2"],"embeddings":[[1,2],[3,4]],"metadatas":[{"memory_id":9007199254740993,"user_id":12},{"memory_id":2,"user_id":3}],"documents":["tea \\"not\\" coffee",null]}');
  t.equal(memoryAddBody([{ id: '1', user_id: '1', content: null, embedding: null }]), null);
});

function decode(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  new RespParser((r) => out.push(r)).feed(buf);
  return out;
}

t.test('SET commands: PX with the milliseconds left, none without an expiry, nothing for what has expired', async (t) => {
  const now = 1_000_000;
  const commands = setCommands([
    { key: 'session:a', value: '7', expires_ms: String(now + 5000) },
    { key: 'cache:b', value: '{"x":1}', expires_ms: null },
    { key: 'session:gone', value: '8', expires_ms: String(now - 1) },
  ], now);
  t.equal(commands.count, 2);
  const sent = decode(commands.toBuffer()).map((r) => (r as Buffer[]).map((b) => b.toString()));
  t.same(sent, [['SET', 'session:a', '7', 'PX', '5000'], ['SET', 'cache:b', '{"x":1}']]);
});
