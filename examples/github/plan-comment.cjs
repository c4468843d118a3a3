// Posts the output of `jarvis-db plan --format markdown` on a pull request as ONE comment, and
// updates that same comment on every later push (found by the hidden marker below), so that a
// pull request never collects a comment per push.
//
// Called from examples/github/jarvis-db-plan.yml through actions/github-script:
//   const post = require(`${process.env.GITHUB_WORKSPACE}/examples/github/plan-comment.cjs`);
//   await post({ github, context, core });
// It reads the files and the exit code that the plan step left (PLAN_MARKDOWN, PLAN_STDERR,
// PLAN_EXIT_CODE). It only writes the comment: failing the check is the workflow's last step.
'use strict';

const fs = require('node:fs');

/** The first line of our comment: invisible on GitHub, and how the next run finds it. */
const MARKER = '<!-- jarvis-db-plan -->';
/** GitHub refuses comment bodies over 65,536 characters. */
const GITHUB_LIMIT = 65536;
const STDERR_LIMIT = 4000;

function readIfExists(path) {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return '';
    throw error;
  }
}

/** The comment: the marker, the plan, and its stderr when it failed. */
function commentBody({ markdown, stderr, exitCode, runUrl }) {
  const parts = [MARKER];
  if (exitCode !== 0) {
    parts.push(`#### ❌ \`jarvis-db plan\` failed (exit ${exitCode}): this pull request cannot be applied as it is`, '');
  }
  if (markdown.trim()) parts.push(markdown.trim(), '');
  const errors = stderr.trim();
  if (exitCode !== 0 && errors) {
    const shown = errors.length > STDERR_LIMIT ? `${errors.slice(0, STDERR_LIMIT)}\n… (cut; the job log has all of it)` : errors;
    // Four backticks: the error text may contain a fence of three.
    parts.push('<details open><summary>jarvis-db said</summary>', '', '````text', shown, '````', '', '</details>', '');
  }
  if (runUrl) parts.push(`<sub>[workflow run](${runUrl})</sub>`);
  const body = parts.join('\n');
  return body.length > GITHUB_LIMIT ? `${body.slice(0, GITHUB_LIMIT - 80)}\n\n_… cut to fit a GitHub comment; the job log has the whole plan._` : body;
}

/** Our earlier comment: written by a bot (never a person quoting the marker) and starting with the marker. */
function findOwnComment(comments) {
  return comments.find((c) => c.user && c.user.type === 'Bot' && typeof c.body === 'string' && c.body.startsWith(MARKER));
}

/** Creates the comment, or updates the one an earlier run made. Returns what it did. */
async function upsertComment({ github, context, body }) {
  const { owner, repo } = context.repo;
  const issue_number = context.issue.number;
  const comments = await github.paginate(github.rest.issues.listComments, { owner, repo, issue_number, per_page: 100 });
  const previous = findOwnComment(comments);
  if (previous) {
    await github.rest.issues.updateComment({ owner, repo, comment_id: previous.id, body });
    return { action: 'updated', id: previous.id };
  }
  const created = await github.rest.issues.createComment({ owner, repo, issue_number, body });
  return { action: 'created', id: created.data.id };
}

module.exports = async function postPlanComment({ github, context, core, env = process.env }) {
  const exitCode = Number(env.PLAN_EXIT_CODE ?? '1');
  const runUrl = env.GITHUB_SERVER_URL && env.GITHUB_RUN_ID
    ? `${env.GITHUB_SERVER_URL}/${context.repo.owner}/${context.repo.repo}/actions/runs/${env.GITHUB_RUN_ID}`
    : '';
  const body = commentBody({
    markdown: readIfExists(env.PLAN_MARKDOWN || 'plan.md'),
    stderr: readIfExists(env.PLAN_STDERR || 'plan.err'),
    exitCode,
    runUrl,
  });
  const result = await upsertComment({ github, context, body });
  if (core) core.info(`plan comment ${result.action} (id ${result.id})`);
  return result;
};

module.exports.MARKER = MARKER;
module.exports.commentBody = commentBody;
module.exports.findOwnComment = findOwnComment;
module.exports.upsertComment = upsertComment;
