/** The one formatter of counts, sizes, durations, moments and tables that every text output uses. */
import t from 'tap';
import { formatBytes, formatCount, formatDuration, formatTimestamp, formatWhen, plural, renderTable } from '../../src/render/format.js';
import { formatValue } from '../../src/health/format.js';

t.test('a count of one takes the singular, every other count the plural, with thousands separators', async (t) => {
  t.equal(plural(1, 'chunk'), '1 chunk');
  t.equal(plural(1, 'row'), '1 row');
  t.equal(plural(0, 'row'), '0 rows');
  t.equal(plural(1240112, 'row'), '1,240,112 rows');
  t.equal(plural(1, 'batch'), '1 batch');
  t.equal(plural(3, 'batch'), '3 batches', 'nouns ending in ch take -es');
  t.equal(plural(2, 'cache entry', 'cache entries'), '2 cache entries');
  t.equal(formatCount(-1234), '-1,234');
});

t.test('sizes are in decimal units spelled one way (kB, MB, GB) by the renderers and by health alike', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(8200), '8.2 kB');
  t.equal(formatBytes(46_000), '46 kB');
  t.equal(formatBytes(999_700), '1.0 MB', 'no "1000 kB"');
  t.equal(formatBytes(193_000_000), '193 MB');
  t.equal(formatBytes(1_234_567_890), '1.2 GB');
  for (const n of [46_000, 8200, 5e9]) t.equal(formatValue(n, 'bytes'), formatBytes(n), 'health shows bytes with the same formatter');
  t.notMatch(formatValue(46_000, 'bytes'), /KB/);
});

t.test('durations are spelled one way, seconds of health checks too', async (t) => {
  t.equal(formatDuration(850), '850ms');
  t.equal(formatDuration(12_400), '12.4s');
  t.equal(formatDuration(185_000), '3m 05s');
  t.equal(formatDuration(59_990), '1m 00s', 'no "60.0s"');
  t.equal(formatDuration(7 * 3600_000 + 5 * 60_000), '7h 05m');
  t.equal(formatDuration(26 * 3600_000), '1d 2h');
  t.equal(formatValue(0.25, 'seconds'), '250ms');
  t.equal(formatValue(3 * 3600, 'seconds'), formatDuration(3 * 3600_000));
});

t.test('a Unix time in a health check shows as a UTC timestamp, not as seconds since 1970', async (t) => {
  const at = Date.parse('2026-11-24T03:00:12.345Z');
  t.equal(formatValue(at / 1000, 'timestamp'), '2026-11-24 03:00:12Z');
  t.equal(formatTimestamp('2026-11-24T03:00:12.345Z'), '2026-11-24 03:00:12Z');
  t.equal(formatWhen(at, at + 3 * 3600_000), '2026-11-24 03:00:12Z (3h ago)');
  t.equal(formatWhen(at, at - 60_000), '2026-11-24 03:00:12Z (in 60s)');
});

t.test('a table is as wide as its widest cell, so a long name does not push its row out of line', async (t) => {
  const table = renderTable([
    ['ID', 'SCHEDULE', 'SIZE'],
    ['a', 'postgres-nightly-with-a-very-long-name', '46 kB'],
    ['b', 'hourly', '1.2 GB'],
  ], { align: [undefined, undefined, 'right'] });
  const lines = table.split('\n');
  t.same(lines.map((l) => l.length), [lines[1]!.length, lines[1]!.length, lines[1]!.length], 'every row ends in the same column');
  t.equal(lines[1]!.indexOf('46 kB') + '46 kB'.length, lines[2]!.indexOf('1.2 GB') + '1.2 GB'.length, 'numbers are right-aligned');
  t.equal(lines[0]!.indexOf('SCHEDULE'), lines[2]!.indexOf('hourly'));
  const wide = renderTable([['CHECK', 'TREND'], ['a', '▁▂▃▄'], ['bb', '▅']]).split('\n');
  t.equal(wide[1]!.indexOf('▁'), wide[2]!.indexOf('▅'), 'block characters count as one column each');
  t.equal(renderTable([['A', 'B', 'C'], ['x']]), 'A  B  C\nx', 'a short row is allowed');
});
