/** The framing of a SYNC answer (pure): keep-alives, `$<len>` payloads, `$EOF:<mark>` streams, refusals. */
import t from 'tap';
import { SyncPayloadReader, SyncRefused, parseSyncHeader } from '../../src/services/redis-replication.js';

const MARK = 'a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0';

function feedAll(chunks: Buffer[]): { reader: SyncPayloadReader; payload: Buffer } {
  const reader = new SyncPayloadReader();
  const out: Buffer[] = [];
  for (const c of chunks) out.push(...reader.feed(c));
  return { reader, payload: Buffer.concat(out) };
}

const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 31) & 255));

t.test('keep-alive newlines before the header are skipped; a $<len> payload is read exactly', async (t) => {
  const wire = Buffer.concat([Buffer.from('\n\n\n$3000\r\n'), payload, Buffer.from('*1\r\n$4\r\nPING\r\n')]);
  for (const size of [1, 2, 5, 64, 4096]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < wire.length; i += size) chunks.push(wire.subarray(i, i + size));
    const { reader, payload: got } = feedAll(chunks);
    t.same(reader.header, { transfer: 'length', size: 3000 });
    t.ok(reader.ended, `chunks of ${size}: ended`);
    t.same(got, payload, `chunks of ${size}: exactly the payload, nothing after it`);
  }
});

t.test('a diskless $EOF stream ends at its mark, wherever the chunks split the mark', async (t) => {
  const wire = Buffer.concat([Buffer.from(`\n$EOF:${MARK}\r\n`), payload, Buffer.from(MARK)]);
  for (let cut = 1; cut < wire.length; cut += 37) {
    const { reader, payload: got } = feedAll([wire.subarray(0, cut), wire.subarray(cut)]);
    t.equal(reader.header?.transfer, 'eof-mark');
    t.ok(reader.ended, `cut at ${cut}: ended`);
    t.same(got, payload, `cut at ${cut}: the mark is not part of the payload`);
  }
  const ones: Buffer[] = [];
  for (let i = 0; i < wire.length; i++) ones.push(wire.subarray(i, i + 1));
  const { reader, payload: got } = feedAll(ones);
  t.ok(reader.ended);
  t.same(got, payload, 'one byte at a time');
});

t.test('a stream cut before its mark has not ended (the caller reports a truncated transfer)', async (t) => {
  const wire = Buffer.concat([Buffer.from(`$EOF:${MARK}\r\n`), payload, Buffer.from(MARK.slice(0, 20))]);
  const { reader } = feedAll([wire]);
  t.notOk(reader.ended);
  const short = feedAll([Buffer.from('$3000\r\n'), payload.subarray(0, 2999)]);
  t.notOk(short.reader.ended);
});

t.test('an error line answering SYNC is a refusal carrying the server\'s message', async (t) => {
  t.throws(() => feedAll([Buffer.from("\n-NOPERM this user has no permissions to run the 'sync' command\r\n")]), SyncRefused);
  try {
    parseSyncHeader("-ERR unknown command 'SYNC', with args beginning with: ");
    t.fail('no refusal');
  } catch (e) {
    t.ok(e instanceof SyncRefused);
    t.equal((e as SyncRefused).reply.code, 'ERR');
  }
  t.throws(() => parseSyncHeader('+FULLRESYNC 123 0'), /not an RDB transfer/);
  t.throws(() => parseSyncHeader('$EOF:short'), /malformed EOF mark/);
});
