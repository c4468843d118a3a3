/** Pure: which journal files journal.keep removes (journalsToPrune in src/engine/journal.ts). */
import t from 'tap';
import { journalsToPrune } from '../../src/engine/journal.js';

t.test('journals whose run id is older than keep are chosen, by the time in the name; other names never', async (t) => {
  const now = new Date('2026-12-04T12:00:00Z');
  const names = ['20260905T115959Z-0a0b.jsonl', '20260905T120001Z-0a0c.jsonl', '20261204T115900Z-ffff.jsonl', 'lock.json', 'x.jsonl', '20260101T000000Z-0a0b.json'];
  t.same(journalsToPrune(names, now, 90 * 86_400), ['20260905T115959Z-0a0b.jsonl']);
  t.same(journalsToPrune(names, now, 30), ['20260905T115959Z-0a0b.jsonl', '20260905T120001Z-0a0c.jsonl', '20261204T115900Z-ffff.jsonl']);
});
