/** The RESP2 encoder and incremental parser of the Redis bulk paths (pure). */
import t from 'tap';
import { CommandBuffer, RespError, RespParser, encodeCommand, type Reply } from '../../src/services/redis-resp-codec.js';
import { printable } from '../../src/services/redis-resp.js';

function parseAll(chunks: Buffer[]): Reply[] {
  const out: Reply[] = [];
  const p = new RespParser((r) => out.push(r));
  for (const c of chunks) p.feed(c);
  return out;
}

function splitEvery(data: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += n) out.push(data.subarray(i, i + n));
  return out;
}

const big = Buffer.alloc(200_000, 0xab);
const WIRE = Buffer.concat([
  Buffer.from('+OK\r\n-BUSYKEY Target key name already exists.\r\n:-2\r\n:1795590503000\r\n$-1\r\n$0\r\n\r\n'),
  Buffer.from('$5\r\na\r\nb\x00\r\n'),
  Buffer.from(`*2\r\n$4\r\n1234\r\n*3\r\n$1\r\na\r\n$3\r\nb\xffc\r\n*0\r\n`, 'latin1'),
  Buffer.from(`$${big.length}\r\n`), big, Buffer.from('\r\n'),
  Buffer.from('*-1\r\n:0\r\n'),
]);
const EXPECTED: Reply[] = [
  'OK', new RespError('BUSYKEY Target key name already exists.'), -2, 1795590503000, null, Buffer.alloc(0),
  Buffer.from('a\r\nb\x00'),
  [Buffer.from('1234'), [Buffer.from('a'), Buffer.from('b\xffc', 'latin1'), []]],
  big, null, 0,
];

t.test('every reply type is parsed, binary-safe, nested arrays included', async (t) => {
  t.same(parseAll([WIRE]), EXPECTED);
});

t.test('replies split at every possible byte boundary parse the same', async (t) => {
  const small = WIRE.subarray(0, WIRE.indexOf(`$${big.length}`));
  const expectedSmall = EXPECTED.slice(0, 8);
  for (let cut = 1; cut < small.length; cut++) {
    t.same(parseAll([small.subarray(0, cut), small.subarray(cut)]), expectedSmall, `cut at ${cut}`);
  }
  t.same(parseAll(splitEvery(small, 1)), expectedSmall, 'one byte at a time');
  t.same(parseAll(splitEvery(WIRE, 65536)), EXPECTED, 'a 200 kB bulk across 64 kB chunks');
  t.same(parseAll(splitEvery(WIRE, 7)), EXPECTED, 'in 7-byte chunks');
});

t.test('a protocol violation is an error, not a silent misparse', async (t) => {
  t.throws(() => parseAll([Buffer.from('?what\r\n')]), /protocol error/);
  t.throws(() => parseAll([Buffer.from(':12x\r\n')]), /bad integer/);
});

t.test('commands are encoded as RESP arrays of bulk strings, binary keys intact', async (t) => {
  const key = Buffer.from([0, 13, 10, 255]);
  t.same(encodeCommand('RESTORE', key, 0, Buffer.from('p'), 'ABSTTL'),
    Buffer.concat([Buffer.from('*5\r\n$7\r\nRESTORE\r\n$4\r\n'), key, Buffer.from('\r\n$1\r\n0\r\n$1\r\np\r\n$6\r\nABSTTL\r\n')]));
  t.same(encodeCommand('SET', 'clé', 'v'), Buffer.from('*3\r\n$3\r\nSET\r\n$4\r\nclé\r\n$1\r\nv\r\n'), 'lengths are in bytes');
  const many = new CommandBuffer(16);
  for (let i = 0; i < 1000; i++) many.add('DUMP', `key:${i}`);
  t.equal(many.count, 1000);
  const replies = parseAll([many.toBuffer()]);
  t.equal(replies.length, 1000, 'the buffer grows and keeps every command');
  t.same(replies[999], [Buffer.from('DUMP'), Buffer.from('key:999')]);
});

t.test('keys are printed escaped and shortened, never raw', async (t) => {
  t.equal(printable(Buffer.from([0x61, 0, 0x0a])), '"a\\u0000\\n"');
  t.equal(printable('x'.repeat(100), 10), '"xxxxxxxxxx…"');
});
