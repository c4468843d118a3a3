/** `verify --point` for people: a line per link, the orphans of each side with examples, skipped links apart from failures. */
import t from 'tap';
import type { LinkOutcome } from '../../src/links/compare.js';
import { linksAgree, renderLinkOutcomes } from '../../src/render/links.js';

const ok: LinkOutcome = { link: 'user-sessions', source: 's', other: 'redis', mode: 'exact', rows: 650, records: 149, missing: { count: 0, examples: [] }, orphans: { count: 0, examples: [] }, note: 'exactly: 650 rows and 149 keys' };
const bad: LinkOutcome = {
  link: 'memory-vectors', source: 's', other: 'chroma', mode: 'exact', rows: 260, records: 266,
  missing: { count: 1, examples: ['42'] }, orphans: { count: 7, examples: ['1', '2', '3', '4', '5'] }, note: 'exactly: 260 rows and 266 records',
};
const skipped: LinkOutcome = { link: 'x', source: 's', other: 'chroma', problem: 'not comparable without a restore: its Chroma backup B is a copy of the data directory', kind: 'skipped' };

t.test('orphans of both sides with their examples; the verdict counts the links that disagree', async (t) => {
  const text = renderLinkOutcomes('Recovery point P:', [bad, ok]);
  t.match(text, /^✗ memory-vectors  exactly: 260 rows and 266 records: 8 orphans$/m);
  t.match(text, /^ {4}1 row without its record in chroma \(side postgres\): e\.g\. 42$/m);
  t.match(text, /^ {4}7 records in chroma without their row \(side chroma\): e\.g\. 1, 2, 3, 4, 5, …$/m);
  t.match(text, /^✓ user-sessions   exactly: 650 rows and 149 keys: no orphans$/m);
  t.match(text, /^1 link of 2 disagrees or could not be compared\.$/m);
  t.notOk(linksAgree([bad, ok]));
});

t.test('a skipped link does not make the stores disagree', async (t) => {
  t.ok(linksAgree([ok, skipped]));
  t.match(renderLinkOutcomes('P', [ok, skipped]), /^- x              skipped: not comparable without a restore/m);
});
