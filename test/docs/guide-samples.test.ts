/**
 * The plans that docs/operators-guide.md shows in "Reading a plan" are what the text renderer
 * prints for the fixture plans (test/docs/fixtures/review-plan.ts), so the guide cannot drift
 * from the real output: the symbols, the DESTRUCTIVE marks, the ids, the estimates, the summary
 * lines and the error block.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderPlanText } from '../../src/render/text.js';
import { postgresDownPlan, reviewPlan } from './fixtures/review-plan.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const guide = readFileSync(join(ROOT, 'docs/operators-guide.md'), 'utf8');
const section = guide.slice(guide.indexOf('## 4. Reading a plan'), guide.indexOf('## 5. Exit codes'));
const textBlocks = [...section.matchAll(/```text\n([\s\S]*?)```/g)].map((m) => m[1]!);

t.test('the plan the guide explains is the text rendering of the review plan', async (t) => {
  t.equal(textBlocks[0], renderPlanText(reviewPlan));
});

t.test('the plan with an outage the guide shows is the text rendering of a plan with PostgreSQL down', async (t) => {
  t.equal(textBlocks[1], renderPlanText(postgresDownPlan));
});
