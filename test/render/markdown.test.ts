/**
 * The markdown renderer (a pull-request comment). The fixed plan's output is compared with
 * test/render/fixtures/plan.md; after a deliberate change of the format, regenerate it with
 * `UPDATE_FIXTURES=1 npx tap test/render/markdown.test.ts` and review the diff.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { MARKDOWN_LIMIT, cell, renderPlanMarkdown } from '../../src/render/markdown.js';
import type { Action, Plan } from '../../src/engine/types.js';
import { emptyPlan, fixedPlan } from './fixtures/plans.js';

const SNAPSHOT = new URL('./fixtures/plan.md', import.meta.url);
const base = {
  label: 'origin/main',
  impact: [{ subject: 'postgres-nightly', changes: ['keep daily 14 → 7'], effects: ['7 backups will be pruned'], destructive: true }],
  diff: '--- a/jarvis-db.yaml\n+++ b/jarvis-db.yaml\n@@ -1 +1 @@\n-    keep: { daily: 14 }\n+    keep: { daily: 7 }\n',
};

t.test('the markdown of a fixed plan is exactly the reviewed one', async (t) => {
  const md = renderPlanMarkdown(fixedPlan, { base });
  if (process.env.UPDATE_FIXTURES) await writeFile(SNAPSHOT, md);
  t.equal(md, await readFile(SNAPSHOT, 'utf8'));
});

t.test('destructive actions are called out before the full list, which is collapsible', async (t) => {
  const md = renderPlanMarkdown(fixedPlan);
  const destructive = md.indexOf('#### ⚠️ Destructive actions (2)');
  const details = md.indexOf('<details><summary>All 4 actions, in the order apply runs them</summary>');
  t.ok(destructive > 0 && details > destructive);
  t.match(md, /\*\*Plan: 1 to create, 1 to change, 2 to destroy\.\*\* ⚠️ 2 destructive actions\./);
  t.match(md, /\| backup \| 1 \| 0 \| 1 \| 1 \|/);
});

t.test('table cells cannot break the table or inject HTML', async (t) => {
  t.equal(cell('a | b\n<script>'), 'a \\| b &lt;script&gt;');
  t.match(renderPlanMarkdown(fixedPlan), /rows older than 30d \\\| capped/);
  t.match(renderPlanMarkdown(fixedPlan), /later than the clock &lt;check NTP&gt;/);
});

t.test('no changes is one summary line', async (t) => {
  t.match(renderPlanMarkdown(emptyPlan), /\*\*No changes\. Observed state matches jarvis-db\.yaml\.\*\*/);
  t.notMatch(renderPlanMarkdown(emptyPlan), /<details>/);
});

t.test('a huge plan stays under 60,000 characters and counts what was cut', async (t) => {
  const actions: Action[] = Array.from({ length: 5000 }, (_, i) => ({
    id: `backup.prune.20261120T0300${String(i).padStart(4, '0')}Z`, type: 'prune_backup', module: 'backup', target: `20261120T0300${String(i).padStart(4, '0')}Z`,
    reason: 'outside keep rules daily=7, weekly=4, monthly=12 of postgres-nightly', risk: 'destructive', estimate: { bytes: 1e6, backups: 1 }, params: { id: `20261120T0300${String(i).padStart(4, '0')}Z`, schedule: 'postgres-nightly', service: 'postgres' },
  }));
  const plan: Plan = { ...fixedPlan, actions };
  const md = renderPlanMarkdown(plan);
  t.ok(md.length < MARKDOWN_LIMIT, `${md.length} characters`);
  t.match(md, /\*\*Plan: 0 to create, 0 to change, 5000 to destroy\.\*\*/, 'the summary counts every action');
  const m = /Cut to stay under 60,000 characters: ([\d,]+) destructive actions, ([\d,]+) actions, 1 finding not shown/.exec(md);
  t.ok(m, 'the note says what was cut');
  const shownDestructive = md.split('\n').filter((l) => l.startsWith('| `prune_backup` |')).length;
  const shownAll = md.split('\n').filter((l) => /^\| \d+ \| - \|/.test(l)).length;
  t.equal(shownDestructive + Number(m![1]!.replace(/,/g, '')), 5000);
  t.equal(shownAll + Number(m![2]!.replace(/,/g, '')), 5000);
  t.ok(md.trimEnd().endsWith('</sub>'), 'the closing parts are still there');
  t.equal((md.match(/<details>/g) ?? []).length, (md.match(/<\/details>/g) ?? []).length);
});
