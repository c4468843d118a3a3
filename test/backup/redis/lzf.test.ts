/** LZF decompression of RDB strings (keys over 20 bytes are stored so): literals, overlapping back references, damage refused. */
import t from 'tap';
import { lzfDecompress } from '../../../src/backup/redis/lzf.js';

t.test('a literal run then a back reference that overlaps what it writes', async (t) => {
  // literal "abc" (ctrl 2), then copy 6 bytes from 3 back: ctrl (6-2)<<5 | 0, offset byte 2
  const out = lzfDecompress(Buffer.from([2, 0x61, 0x62, 0x63, 4 << 5, 2]), 9);
  t.equal(out.toString(), 'abcabcabc');
});

t.test('a long back reference (length byte after ctrl 7<<5)', async (t) => {
  // "ab", then 20 bytes from 2 back: len 20 = 7 + 11 + 2
  const out = lzfDecompress(Buffer.from([1, 0x61, 0x62, 7 << 5, 11, 1]), 22);
  t.equal(out.toString(), 'ab'.repeat(11));
});

t.test('damaged input is refused, not decoded into garbage', async (t) => {
  t.throws(() => lzfDecompress(Buffer.from([2, 0x61]), 3), /literal runs past its end/);
  t.throws(() => lzfDecompress(Buffer.from([0, 0x61, 4 << 5, 5]), 7), /outside the output/);
  t.throws(() => lzfDecompress(Buffer.from([2, 0x61, 0x62, 0x63]), 4), /3 bytes where 4 were announced/);
});
