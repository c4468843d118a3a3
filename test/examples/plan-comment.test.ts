/**
 * The pull-request comment of examples/github/jarvis-db-plan.yml:
 * - snapshots of what a reviewer sees: a fixed plan rendered by src/render/markdown.ts (with the
 *   `plan --base` impact and diff) inside the comment plan-comment.cjs writes, and the comment
 *   of a failing plan. Rewrite them after an intended change with
 *   JARVIS_UPDATE_SNAPSHOTS=1 npx tap test/examples/plan-comment.test.ts
 *   and review the diff of test/examples/snapshots/.
 * - the script keeps ONE comment per pull request: it creates it, then updates it in place, and
 *   never touches a comment that a person wrote, even one quoting the marker.
 * The GitHub API is an in-memory list of comments (the API is GitHub's, not ours to test); the
 * script's own decisions are what is checked.
 */
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MARKDOWN_LIMIT, renderPlanMarkdown } from '../../src/render/markdown.js';
import { brokenPlan, reviewDiff, reviewImpact, reviewPlan } from '../docs/fixtures/review-plan.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const SNAPSHOTS = join(ROOT, 'test/examples/snapshots');

interface Comment { id: number; body: string; user: { login: string; type: 'User' | 'Bot' } }
interface CommentScript {
  (args: { github: unknown; context: unknown; core?: unknown; env?: Record<string, string | undefined> }): Promise<{ action: string; id: number }>;
  MARKER: string;
  commentBody(args: { markdown: string; stderr: string; exitCode: number; runUrl: string }): string;
}
const post = createRequire(import.meta.url)(join(ROOT, 'examples/github/plan-comment.cjs')) as CommentScript;

/** Compares with the snapshot file, or writes it when JARVIS_UPDATE_SNAPSHOTS=1. */
function matchSnapshot(t: Test, name: string, actual: string): void {
  const file = join(SNAPSHOTS, name);
  if (process.env.JARVIS_UPDATE_SNAPSHOTS === '1' || !existsSync(file)) {
    mkdirSync(SNAPSHOTS, { recursive: true });
    writeFileSync(file, actual);
    if (process.env.JARVIS_UPDATE_SNAPSHOTS !== '1') t.fail(`${name} did not exist: written now, review it and run again`);
    return;
  }
  t.equal(actual, readFileSync(file, 'utf8'), `${name} is unchanged (JARVIS_UPDATE_SNAPSHOTS=1 rewrites it)`);
}

/** A pull request's comments, and the subset of Octokit that the script uses. */
function fakeGitHub(comments: Comment[]) {
  let nextId = 1000;
  const calls: string[] = [];
  const github = {
    rest: {
      issues: {
        listComments: async () => ({ data: comments }),
        createComment: async ({ body }: { body: string }) => {
          calls.push('create');
          const c: Comment = { id: nextId++, body, user: { login: 'github-actions[bot]', type: 'Bot' } };
          comments.push(c);
          return { data: c };
        },
        updateComment: async ({ comment_id, body }: { comment_id: number; body: string }) => {
          calls.push(`update ${comment_id}`);
          comments.find((c) => c.id === comment_id)!.body = body;
          return { data: {} };
        },
      },
    },
    // Octokit's paginate calls the list method and returns every item.
    paginate: async (method: () => Promise<{ data: Comment[] }>) => [...(await method()).data],
  };
  return { github, calls };
}

const context = { repo: { owner: 'jarvis', repo: 'jarvis-db' }, issue: { number: 42 } };

t.test('snapshot: the comment of a pull request whose plan has changes (plan exits 0)', async (t) => {
  const markdown = renderPlanMarkdown(reviewPlan, { base: { label: 'origin/main', impact: reviewImpact, diff: reviewDiff } });
  const body = post.commentBody({ markdown, stderr: '', exitCode: 0, runUrl: 'https://github.com/jarvis/jarvis-db/actions/runs/1' });
  matchSnapshot(t, 'plan-comment.md', body);
  t.ok(body.startsWith(post.MARKER), 'the hidden marker comes first');
  t.match(body, '**Plan: 2 to create, 3 to change, 2 to destroy.** ⚠️ 2 destructive actions.');
  t.ok(body.indexOf('Destructive actions') < body.indexOf('All 7 actions'), 'destructive actions are called out before the full list');
  t.notMatch(body, 'failed', 'no failure banner when the plan succeeded');
});

t.test('snapshot: the comment of a plan with errors (plan exits 1) names the errors and what jarvis-db said', async (t) => {
  const markdown = renderPlanMarkdown(brokenPlan, { base: { label: 'origin/main', impact: reviewImpact, diff: reviewDiff } });
  const stderr = 'error: the plan has 2 errors\n';
  const body = post.commentBody({ markdown, stderr, exitCode: 1, runUrl: '' });
  matchSnapshot(t, 'plan-comment-errors.md', body);
  t.match(body, '❌ `jarvis-db plan` failed (exit 1)');
  t.match(body, 'changed since it was applied');
  t.match(body, 'error: the plan has 2 errors');
});

t.test('a config that does not load leaves no plan: the comment still says why', async (t) => {
  const stderr = 'error: jarvis-db.yaml is invalid (1 problem)\njarvis-db.yaml:14:7: backups[1].cron: "0 25 * * *" is not a valid cron expression (hour 25 is out of range)\n';
  const body = post.commentBody({ markdown: '', stderr, exitCode: 1, runUrl: '' });
  t.match(body, 'hour 25 is out of range');
  t.match(body, '````text', 'quoted in a fence that the error text cannot close');
});

t.test('the comment fits in a GitHub comment, whatever jarvis-db printed', async (t) => {
  const markdown = 'x'.repeat(MARKDOWN_LIMIT);
  const body = post.commentBody({ markdown, stderr: 'y'.repeat(100_000), exitCode: 1, runUrl: '' });
  t.ok(body.length <= 65536, `${body.length} characters`);
  t.match(body, 'cut; the job log has all of it');
});

t.test('one comment per pull request: created once, then updated in place', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-comment-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const planFile = join(dir, 'plan.md');
  const errFile = join(dir, 'plan.err');
  const env = { PLAN_MARKDOWN: planFile, PLAN_STDERR: errFile, PLAN_EXIT_CODE: '0' };
  const someoneElse: Comment = { id: 7, body: `Looks good. Why does the bot write ${post.MARKER}?`, user: { login: 'alice', type: 'User' } };
  const quoting: Comment = { id: 8, body: `${post.MARKER}\nI pasted the old plan here`, user: { login: 'bob', type: 'User' } };
  const comments: Comment[] = [someoneElse, quoting];
  const { github, calls } = fakeGitHub(comments);

  await writeFile(planFile, renderPlanMarkdown(reviewPlan));
  await writeFile(errFile, '');
  const first = await post({ github, context, env });
  t.equal(first.action, 'created');

  await writeFile(planFile, renderPlanMarkdown({ ...reviewPlan, actions: reviewPlan.actions.slice(0, 2) }));
  const second = await post({ github, context, env });
  t.same(second, { action: 'updated', id: first.id }, 'the second push updates the first comment');
  await writeFile(planFile, '');
  await writeFile(errFile, 'error: config file jarvis-db.yaml not found\n');
  await post({ github, context, env: { ...env, PLAN_EXIT_CODE: '1' } });

  t.same(calls, ['create', `update ${first.id}`, `update ${first.id}`]);
  const bots = comments.filter((c) => c.user.type === 'Bot');
  t.equal(bots.length, 1, 'one comment of the workflow on the pull request');
  t.match(bots[0]!.body, 'config file jarvis-db.yaml not found', 'it shows the latest run');
  t.equal(someoneElse.body, `Looks good. Why does the bot write ${post.MARKER}?`, 'a person\'s comment is never edited');
  t.equal(quoting.body, `${post.MARKER}\nI pasted the old plan here`, 'not even one that starts with the marker');
});

t.test('the workflow calls the script with the files and exit code of its plan step, and fails only on plan errors', async (t) => {
  const workflow = readFileSync(join(ROOT, 'examples/github/jarvis-db-plan.yml'), 'utf8');
  t.match(workflow, 'npx jarvis-db plan --base origin/main --format markdown > plan.md 2> plan.err');
  t.notMatch(workflow, '--detailed-exitcode', 'pending changes (exit 2 with that flag) must not fail the check');
  t.match(workflow, "PLAN_EXIT_CODE: ${{ steps.plan.outputs.exit_code }}");
  t.match(workflow, "require(`${process.env.GITHUB_WORKSPACE}/examples/github/plan-comment.cjs`)");
  t.match(workflow, "if: steps.plan.outputs.exit_code != '0'");
  t.match(workflow, /fetch-depth: 0/, 'origin/main is fetched for --base');
});
