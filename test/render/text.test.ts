/** The text renderer: symbols, the summary line, colour only when asked for. */
import t from 'tap';
import { palette } from '../../src/render/color.js';
import { renderPlanText, renderRunText, summaryLine } from '../../src/render/text.js';
import type { RunResult } from '../../src/engine/types.js';
import { emptyPlan, fixedPlan } from './fixtures/plans.js';

const ANSI = /\u001b\[/;

t.test('each action shows its symbol, type, target, id and reason; destructive ones say so', async (t) => {
  const text = renderPlanText(fixedPlan);
  t.match(text, /^  \+ create_backup postgres-nightly  backup\.create\.postgres-nightly\n      due since 03:00 UTC per `0 3 \* \* \*` \(~193 MB\)$/m);
  t.match(text, /^  ~ retention_archive messages  retention\.archive\.messages\n      1,204 rows older than 90d \(1,204 rows\)$/m);
  t.match(text, /^  - retention_delete metrics DESTRUCTIVE  retention\.delete\.metrics$/m);
  t.match(text, /^  - prune_backup 20261120T030000Z-0001 DESTRUCTIVE/m);
  t.match(text, /^  ! WARNING backup\.clock\.redis-hourly: the newest backup/m);
  t.match(text, /Plan: 1 to create, 1 to change, 2 to destroy\.\n$/);
  t.notMatch(text, ANSI, 'no colour by default');
});

t.test('nothing to do says so in one line naming the config file', async (t) => {
  t.equal(summaryLine(emptyPlan), 'No changes. Observed state matches jarvis-db.yaml.');
  t.equal(renderPlanText(emptyPlan), 'No changes. Observed state matches jarvis-db.yaml.\n');
});

t.test('plan errors come first and say what they hold back', async (t) => {
  const text = renderPlanText({ ...emptyPlan, errors: [{ module: 'migrate', message: '001_init.sql changed after it was applied', path: 'schema' }] });
  t.match(text, /^1 error: fix it first\n  ✗ migrate: 001_init.sql changed after it was applied \(schema\)/);
  t.match(text, /No plan: 1 error to fix first\.\n$/, 'a plan with only errors never says the state matches');
  t.notMatch(text, /No changes/);
});

t.test('a palette colours symbols and the summary; the text is otherwise the same', async (t) => {
  const coloured = renderPlanText(fixedPlan, palette(true));
  t.match(coloured, ANSI);
  t.equal(coloured.replace(/\u001b\[\d+m/g, ''), renderPlanText(fixedPlan));
});

t.test('the summary of a failed apply names the failure and what did not run', async (t) => {
  const run: RunResult = {
    runId: 'r1', status: 'failed', startedAt: '', finishedAt: '', durationMs: 4100, prepared: [], plan: fixedPlan, journalFile: '/srv/jarvis/backups/journal/r1.jsonl',
    errors: [],
    results: [
      { id: 'backup.create.postgres-nightly', type: 'create_backup', target: 'postgres-nightly', status: 'done', durationMs: 4000, summary: 'ok' },
      { id: 'retention.archive.messages', type: 'retention_archive', target: 'messages', status: 'failed', durationMs: 100, error: { code: 'NOT_IMPLEMENTED', message: 'not built', hint: 'wait' } },
      { id: 'retention.delete.metrics', type: 'retention_delete', target: 'metrics', status: 'not_executed', reason: 'an earlier action failed (retention.archive.messages)' },
      { id: 'backup.prune.20261120T030000Z-0001', type: 'prune_backup', target: '20261120T030000Z-0001', status: 'not_executed', reason: 'an earlier action failed (retention.archive.messages)' },
    ],
  };
  t.equal(renderRunText(run), [
    'Apply failed: 1 done, 1 failed, 2 not executed (4.1s).',
    '  ✗ retention.archive.messages: not built',
    '    hint: wait',
    '  not executed: retention.delete.metrics, backup.prune.20261120T030000Z-0001: an earlier action failed (retention.archive.messages)',
    'Journal: /srv/jarvis/backups/journal/r1.jsonl',
    '',
  ].join('\n'));
  t.equal(renderRunText({ ...run, status: 'nothing_to_do', plan: emptyPlan, results: [] }).split('\n')[0], 'No changes. Observed state matches jarvis-db.yaml. Nothing to apply.');
});

t.test('a plan with a service down marks the actions it holds back, and the others still run', async (t) => {
  const plan = {
    ...fixedPlan,
    actions: [
      { ...fixedPlan.actions[0]!, id: 'backup.create.pg', services: ['postgres' as const] },
      { ...fixedPlan.actions[0]!, id: 'backup.create.redis', services: ['redis' as const] },
    ],
    errors: [{ module: 'services', service: 'postgres' as const, message: 'cannot connect to PostgreSQL at postgres://127.0.0.1:1/x: ECONNREFUSED' }],
  };
  const text = renderPlanText(plan);
  t.match(text, /^1 error: 1 action held back until fixed; the other still runs/);
  t.match(text, /backup\.create\.pg\n.*\n      not run: services: cannot connect to PostgreSQL/);
  t.notMatch(text.split('backup.create.redis')[1]!, /not run:/);
  const run: RunResult = {
    runId: 'r2', status: 'failed', startedAt: '', finishedAt: '', durationMs: 1000, prepared: [], plan, journalFile: '/j', errors: plan.errors,
    results: [
      { id: 'backup.create.pg', type: 'create_backup', target: 'x', status: 'not_executed', reason: 'services: cannot connect to PostgreSQL at postgres://127.0.0.1:1/x: ECONNREFUSED' },
      { id: 'backup.create.redis', type: 'create_backup', target: 'y', status: 'done', summary: 'ok' },
    ],
  };
  t.match(renderRunText(run), /^Apply failed: 1 done, 0 failed, 1 not executed \(1\.0s\)\.\n  ✗ services: cannot connect to PostgreSQL at postgres:\/\/127\.0\.0\.1:1\/x: ECONNREFUSED\n  not executed: backup\.create\.pg: services: cannot connect/);
});
