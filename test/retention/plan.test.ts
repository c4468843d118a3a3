/**
 * The retention planner, pure: fixtures of the catalog and counts in, actions, findings and
 * errors out; no server. Covers docs/architecture.md §2 (absolute cut-offs, reasons, destructive marks)
 * and §4 rule 3 (a delete that would cascade into unarchived rows is a plan error).
 */
import t from 'tap';
import type { RetentionPolicy } from '../../src/config/types.js';
import type { TableInfo } from '../../src/retention/catalog.js';
import type { PolicyCatalog } from '../../src/retention/check.js';
import type { PolicyCounts, RetentionObserved } from '../../src/retention/observe.js';
import { isRetentionRun, planRetention, retentionFingerprint } from '../../src/retention/plan.js';
import type { ArchiveSummary } from '../../src/retention/store.js';
import { col, CONVERSATIONS, desiredWith, MESSAGES, METRICS, METRICS_HOURLY, policy, table, USERS } from './fixture.js';

const NOW = new Date('2026-11-24T03:00:00.000Z');
const DAY = 86_400_000;

function counts(eligible: number, extra: Partial<PolicyCounts> = {}): PolicyCounts {
  return { eligible, exact: true, children: {}, capBoundary: null, capRows: 0, bytes: eligible * 100, ...extra };
}

interface Case { policy: RetentionPolicy; table: TableInfo | null; children?: (TableInfo | null)[]; rollup?: TableInfo | null; counts?: PolicyCounts | null; saltSet?: boolean }

function observe(cases: Case[], archives: ArchiveSummary[] = []): RetentionObserved {
  return {
    policies: cases.map((c) => {
      const catalog: PolicyCatalog = { table: c.table, children: (c.policy.children ?? []).map((ch, i) => ({ ...ch, info: c.children?.[i] ?? null })) };
      if (c.rollup !== undefined) catalog.rollup = c.rollup;
      return { policy: c.policy.name, cutoff: '', catalog, saltSet: c.saltSet ?? false, counts: c.counts === undefined ? counts(0) : c.counts, ms: 1 };
    }),
    archives, invalidArchives: [], debris: 0,
  };
}

function planOf(cases: Case[], archives: ArchiveSummary[] = []) {
  return planRetention(desiredWith(cases.map((c) => c.policy)), observe(cases, archives), NOW);
}

const messagesArchive = policy({ name: 'messages-archive', table: 'messages', action: 'archive', archive: { deleteAfter: '2y' } });

t.test('an action carries the absolute cut-off, a reason in rows, estimates and the policy', async (t) => {
  const p = planOf([{ policy: messagesArchive, table: MESSAGES, counts: counts(1204, { bytes: 250_000 }) }]);
  t.same(p.errors, []);
  t.equal(p.actions.length, 1);
  const a = p.actions[0]!;
  const cutoff = new Date(NOW.getTime() - 90 * DAY).toISOString();
  t.match(a, {
    id: 'retention.archive.messages-archive', type: 'retention_archive', module: 'retention', target: 'public.messages', risk: 'safe',
    estimate: { rows: 1204, bytes: 250_000 },
    params: { policy: 'messages-archive', table: 'public.messages', column: 'created_at', cutoff, batchSize: 1000 },
  });
  t.equal(a.reason, `1,204 rows older than 90d (created_at < ${cutoff})`);
});

t.test('delete, anonymize and compress are destructive; archive is not; order is archive, compress, anonymize, delete', async (t) => {
  const p = planOf([
    { policy: policy({ name: 'metrics-delete', table: 'metrics', action: 'delete', age: { column: 'recorded_at', olderThan: '30d' } }), table: METRICS, counts: counts(5) },
    { policy: policy({ name: 'users-anonymize', table: 'users', action: 'anonymize', age: { column: 'last_active_at', olderThan: '2y' }, anonymize: { columns: { email: 'email', display_name: 'redact' }, marker: 'anonymized_at' } }), table: USERS, counts: counts(3) },
    { policy: policy({ name: 'metrics-compress', table: 'metrics', action: 'compress', age: { column: 'recorded_at', olderThan: '7d' }, compress: { bucket: '1h', groupBy: ['name'], value: 'value', into: 'metrics_hourly' } }), table: METRICS, rollup: METRICS_HOURLY, counts: counts(7) },
    { policy: messagesArchive, table: MESSAGES, counts: counts(9) },
  ]);
  t.same(p.errors, []);
  t.same(p.actions.map((a) => [a.type, a.risk]), [
    ['retention_archive', 'safe'], ['retention_compress', 'destructive'], ['retention_anonymize', 'destructive'], ['retention_delete', 'destructive'],
  ]);
  t.match(p.actions[2]!.reason, /^3 rows older than 2y not yet anonymized \(last_active_at < 2024-11-24T03:00:00.000Z\)$/);
  t.match(p.actions[1]!.reason, /rolled up into 1h buckets of metrics_hourly/);
});

t.test('nothing is planned when no row is eligible, or for a disabled policy', async (t) => {
  const p = planOf([
    { policy: messagesArchive, table: MESSAGES, counts: counts(0) },
    { policy: policy({ name: 'off', table: 'nope', action: 'delete', enabled: false }), table: null, counts: null },
  ]);
  t.same(p, { actions: [], findings: [], errors: [] });
});

t.test('a policy whose table does not exist is a plan error naming the policy and its file', async (t) => {
  const p = planOf([{ policy: policy({ name: 'ghost', table: 'ghosts', action: 'delete' }), table: null, counts: null }]);
  t.equal(p.actions.length, 0);
  t.same(p.errors, [{ module: 'retention', message: 'policy "ghost": table "ghosts" does not exist', path: 'policies/test.yaml policies[0]' }]);
});

t.test('while migrations are pending, a missing table or column waits for them (a finding); a wrong type stays an error', async (t) => {
  const cases: Case[] = [
    { policy: policy({ name: 'ghost', table: 'ghosts', action: 'delete' }), table: null, counts: null },
    { policy: policy({ name: 'm', table: 'messages', action: 'delete', age: { column: 'sent_at', olderThan: '1d' } }), table: MESSAGES, counts: null },
    { policy: policy({ name: 'r', table: 'messages', action: 'delete', age: { column: 'role', olderThan: '1d' } }), table: MESSAGES, counts: null },
  ];
  const p = planRetention(desiredWith(cases.map((c) => c.policy)), observe(cases), NOW, { migrationsPending: true });
  t.same(p.findings.map((f) => [f.check, f.status]), [['retention.waiting.ghost', 'UNKNOWN'], ['retention.waiting.m', 'UNKNOWN']]);
  t.match(p.findings[0]!.message, /ghost: waits for the pending migrations \(table "ghosts" does not exist\)/);
  t.match(p.errors, [{ message: /^policy "r": column "role" of public\.messages is text, not a timestamp/ }]);
  t.equal(p.errors.length, 1);
});

t.test('a policy whose column does not exist, or is not a timestamp, is a plan error naming the policy', async (t) => {
  const missing = planOf([{ policy: policy({ name: 'm', table: 'messages', action: 'delete', age: { column: 'sent_at', olderThan: '1d' } }), table: MESSAGES, counts: null }]);
  t.match(missing.errors[0]!, { message: /^policy "m": column "sent_at" does not exist in table public\.messages$/, path: 'policies/test.yaml policies[0]' });
  const text = planOf([{ policy: policy({ name: 'r', table: 'messages', action: 'delete', age: { column: 'role', olderThan: '1d' } }), table: MESSAGES, counts: null }]);
  t.match(text.errors[0]!.message, /^policy "r": column "role" of public\.messages is text, not a timestamp/);
  const integer = planOf([{ policy: policy({ name: 'i', table: 'messages', action: 'archive', age: { column: 'tokens', olderThan: '1d' } }), table: MESSAGES, counts: null }]);
  t.match(integer.errors[0]!.message, /^policy "i": column "tokens" of public\.messages is integer, not a timestamp/);
  for (const type of ['timestamp without time zone', 'date']) {
    const ok = table('events', [col('id', 'bigint'), col('at', type)], { indexes: [['at']] });
    t.same(planOf([{ policy: policy({ name: 'e', table: 'events', action: 'delete', age: { column: 'at', olderThan: '1d' } }), table: ok, counts: counts(1) }]).errors, [], `${type} is a timestamp`);
  }
});

t.test('a table without a primary key is a plan error (batches go by primary key)', async (t) => {
  const noPk = table('log', [col('at', 'timestamp with time zone'), col('line', 'text')], { pk: [], indexes: [['at']] });
  const p = planOf([{ policy: policy({ name: 'log', table: 'log', action: 'delete', age: { column: 'at', olderThan: '1d' } }), table: noPk, counts: null }]);
  t.match(p.errors[0]!.message, /table public\.log has no primary key/);
});

t.test('a missing index on the age column is a WARNING finding; the action is still planned', async (t) => {
  const unindexed = table('messages', MESSAGES.columns, { indexes: [['conversation_id']] });
  const p = planOf([{ policy: messagesArchive, table: unindexed, counts: counts(10) }]);
  t.equal(p.actions.length, 1);
  t.match(p.findings, [{ check: 'retention.index.public.messages.created_at', service: 'postgres', status: 'WARNING', message: /no index on public\.messages\(created_at\)/ }]);
});

t.test('DESIGN §4 rule 3: deleting or archiving conversations without archiving their messages is a plan error', async (t) => {
  const del = planOf([{ policy: policy({ name: 'conv-delete', table: 'conversations', action: 'delete', age: { column: 'updated_at', olderThan: '90d' } }), table: CONVERSATIONS, counts: counts(10) }]);
  t.equal(del.actions.length, 0, 'no delete action');
  t.match(del.errors, [{ message: /^policy "conv-delete": deleting rows of public\.conversations would delete rows of public\.messages\(conversation_id\) through ON DELETE CASCADE \(messages_conversation_id_fkey\), and those are not archived/ }]);

  const bare = planOf([{ policy: policy({ name: 'conv-archive', table: 'conversations', action: 'archive', age: { column: 'updated_at', olderThan: '90d' } }), table: CONVERSATIONS, counts: counts(10) }]);
  t.equal(bare.actions.length, 0);
  t.match(bare.errors, [{ message: /archiving rows of public\.conversations would delete rows of public\.messages\(conversation_id\) .* add \{ table: messages, column: conversation_id \} to the children of conv-archive/ }]);

  const withChildren = planOf([{
    policy: policy({ name: 'conv-archive', table: 'conversations', action: 'archive', age: { column: 'updated_at', olderThan: '90d' }, children: [{ table: 'messages', column: 'conversation_id' }] }),
    table: CONVERSATIONS, children: [{ ...MESSAGES, references: [] }], counts: counts(10, { children: { 'public.messages': 250 } }),
  }]);
  t.same(withChildren.errors, []);
  t.equal(withChildren.actions[0]!.estimate!.rows, 260, 'the children count in the estimate');
  t.match(withChildren.actions[0]!.reason, /10 rows older than 90d .*, with 250 rows of public\.messages; also sets public\.memory\(conversation_id\) to NULL \(ON DELETE SET NULL\)$/,
    'what ON DELETE SET NULL does is said where the rows go');
  t.same(withChildren.findings.filter((f) => f.check.startsWith('retention.reference.')), [], 'the schema\'s own SET NULL is no warning');
});

t.test('children must exist, reference the table, and have no cascading children of their own', async (t) => {
  const p = (child: TableInfo | null, column = 'conversation_id') => planOf([{
    policy: policy({ name: 'c', table: 'conversations', action: 'archive', age: { column: 'updated_at', olderThan: '90d' }, children: [{ table: 'messages', column }] }),
    table: CONVERSATIONS, children: [child], counts: counts(1),
  }]).errors.map((e) => e.message);
  t.match(p(null), [/child table "messages" does not exist/]);
  t.match(p(MESSAGES, 'tokens'), [/would delete rows of public\.messages\(conversation_id\)/, /public\.messages\.tokens is not a foreign key to public\.conversations/]);
  const withGrandchildren = { ...MESSAGES, references: [{ constraint: 'reactions_fkey', schema: 'public', table: 'reactions', columns: ['message_id'], refColumns: ['id'], onDelete: 'cascade' as const }] };
  t.match(p(withGrandchildren), [/child table public\.messages is itself referenced by public\.reactions\(message_id\) \(ON DELETE CASCADE\)/]);
});

t.test('a table referencing itself with ON DELETE CASCADE cannot be deleted in batches', async (t) => {
  const tree = table('nodes', [col('id', 'bigint'), col('parent_id', 'bigint'), col('created_at', 'timestamp with time zone')], {
    indexes: [['created_at']], refs: [{ table: 'nodes', columns: ['parent_id'], onDelete: 'cascade', constraint: 'nodes_parent_fkey' }],
  });
  const p = planOf([{ policy: policy({ name: 'n', table: 'nodes', action: 'delete' }), table: tree, counts: counts(3) }]);
  t.match(p.errors, [{ message: /would delete rows of public\.nodes\(parent_id\) through ON DELETE CASCADE/ }]);
});

t.test('rows still referenced with NO ACTION are skipped, and the plan says so', async (t) => {
  const referenced = table('sessions', [col('id', 'uuid'), col('expires_at', 'timestamp with time zone')], {
    indexes: [['expires_at']], refs: [{ table: 'audit', columns: ['session_id'], onDelete: 'no action', constraint: 'audit_session_fkey' }],
  });
  const p = planOf([{ policy: policy({ name: 's', table: 'sessions', action: 'delete', age: { column: 'expires_at', olderThan: '30d' } }), table: referenced, counts: counts(3) }]);
  t.same(p.errors, []);
  t.match(p.findings, [{ value: 'no action', message: /still referenced by public\.audit\(session_id\) \(ON DELETE NO ACTION\) are skipped/ }]);
});

t.test('maxRows: the rows beyond the cap are in the reason, the estimate and the params (an absolute boundary)', async (t) => {
  const cache = table('cache_entries', [col('key', 'text'), col('value', 'bytea'), col('created_at', 'timestamp with time zone')], { pk: ['key'], indexes: [['created_at']] });
  const p = planOf([{
    policy: policy({ name: 'cache', table: 'cache_entries', action: 'delete', age: { column: 'created_at', olderThan: '7d' }, maxRows: 1_000_000 }),
    table: cache, counts: counts(10, { capBoundary: '2026-11-20 10:00:00.123456+00', capRows: 250 }),
  }]);
  t.match(p.actions[0], { estimate: { rows: 260 }, params: { capBoundary: '2026-11-20 10:00:00.123456+00' } });
  t.match(p.actions[0]!.reason, /^10 rows older than 7d \(created_at < .*\); 250 more beyond maxRows 1,000,000$/);
});

t.test('anonymize: strategies must fit their columns, the marker must exist, hash needs its salt', async (t) => {
  const anon = (columns: Record<string, 'null' | 'redact' | 'hash' | 'email'>, o: { marker?: string; saltSet?: boolean; saltEnv?: string } = {}) => planOf([{
    policy: policy({ name: 'u', table: 'users', action: 'anonymize', age: { column: 'last_active_at', olderThan: '2y' }, anonymize: { columns, marker: o.marker ?? 'anonymized_at', ...(o.saltEnv ? { saltEnv: o.saltEnv } : {}) } }),
    table: USERS, counts: counts(2), saltSet: o.saltSet ?? false,
  }]);
  t.same(anon({ email: 'email', display_name: 'null' }).errors, []);
  t.match(anon({ email: 'null' }).errors, [{ message: /column "email" of public\.users is NOT NULL: the null strategy cannot apply/ }]);
  t.match(anon({ age: 'redact' }).errors, [{ message: /column "age" of public\.users is integer: the redact strategy writes text/ }]);
  t.match(anon({ id: 'hash' }, { saltSet: true, saltEnv: 'S' }).errors, [{ message: /column "id" is part of the primary key/ }, { message: /the hash strategy writes text/ }]);
  t.match(anon({ display_name: 'hash' }, { saltEnv: 'JARVIS_ANON_SALT' }).errors, [{ message: /the hash strategy needs a salt, but \$JARVIS_ANON_SALT is not set/ }]);
  t.same(anon({ display_name: 'hash' }, { saltEnv: 'JARVIS_ANON_SALT', saltSet: true }).errors, []);
  t.match(anon({ email: 'email' }, { marker: 'forgotten_at' }).errors, [{ message: /marker column "forgotten_at" does not exist in table public\.users/ }]);
  t.match(anon({ email: 'email' }, { marker: 'display_name' }).errors, [{ message: /marker column "display_name" of public\.users is text, not a timestamp/ }]);
});

t.test('compress: the rollup table must exist with its columns and a unique key; the value must be a number', async (t) => {
  const comp = (rollup: TableInfo | null, value = 'value') => planOf([{
    policy: policy({ name: 'mc', table: 'metrics', action: 'compress', age: { column: 'recorded_at', olderThan: '7d' }, compress: { bucket: '1h', groupBy: ['name'], value, into: 'metrics_hourly' } }),
    table: METRICS, rollup, counts: counts(5),
  }]).errors.map((e) => e.message);
  t.same(comp(METRICS_HOURLY), []);
  t.match(comp(null), [/rollup table "metrics_hourly" does not exist/]);
  t.match(comp(table('metrics_hourly', METRICS_HOURLY.columns, { pk: [] })), [/has no unique key on \(name, bucket_start\)/]);
  t.match(comp(table('metrics_hourly', METRICS_HOURLY.columns.filter((c) => c.name !== 'max'), { pk: ['name', 'bucket_start'] })), [/lacks the column max/]);
  t.match(comp(METRICS_HOURLY, 'name'), [/value column "name" of public\.metrics is text, not a number/]);
});

const archive = (o: Partial<ArchiveSummary>): ArchiveSummary => ({
  id: '20240101T030000Z-abcd', policy: 'messages-archive', table: 'public.messages', cutoff: '2024-10-01T00:00:00.000Z', createdAt: '2024-12-30T03:00:00.000Z',
  chunks: 3, pending: 0, damaged: 0, rows: 15000, bytes: 1_000_000, encrypted: false, writerAlive: false, ...o,
});

t.test('archives whose rows are all older than deleteAfter are pruned (destructive); younger ones are kept', async (t) => {
  const p = planOf([{ policy: messagesArchive, table: MESSAGES, counts: counts(0) }], [
    archive({ id: '20240101T030000Z-0001', cutoff: '2024-10-01T00:00:00.000Z' }),
    archive({ id: '20250101T030000Z-0002', cutoff: '2025-01-01T00:00:00.000Z' }),
    archive({ id: '20240101T030000Z-0003', cutoff: '2024-01-01T00:00:00.000Z', policy: 'gone-policy' }),
    archive({ id: '20230101T030000Z-0004', cutoff: '2023-01-01T00:00:00.000Z', writerAlive: true }),
  ]);
  t.same(p.actions.map((a) => [a.id, a.type, a.risk]), [['retention.prune.20240101T030000Z-0001', 'prune_archive', 'destructive']]);
  t.match(p.actions[0], { params: { archiveId: '20240101T030000Z-0001', policy: 'messages-archive' }, estimate: { rows: 15000, bytes: 1_000_000 } });
  t.match(p.actions[0]!.reason, /holds rows older than 2024-10-01T00:00:00.000Z, past deleteAfter 2y since 2026-10-01/);
});

t.test('the plan is a pure function of its inputs', async (t) => {
  const cases: Case[] = [{ policy: messagesArchive, table: MESSAGES, counts: counts(1204) }];
  const observed = observe(cases);
  const before = JSON.stringify(observed);
  const a = planRetention(desiredWith(cases.map((c) => c.policy)), observed, NOW);
  const b = planRetention(desiredWith(cases.map((c) => c.policy)), observed, NOW);
  t.same(a, b);
  t.equal(JSON.stringify(observed), before, 'the observation is not modified');
  t.same(JSON.parse(JSON.stringify(a)), a, 'the plan is plain JSON');
});

t.test('the fingerprint follows the tables and the archives, not row counts or sizes', async (t) => {
  const base = observe([{ policy: messagesArchive, table: MESSAGES, counts: counts(10) }]);
  const aged = observe([{ policy: messagesArchive, table: { ...MESSAGES, estimatedRows: 5, tableBytes: 7 }, counts: counts(99) }]);
  t.same(retentionFingerprint(aged), retentionFingerprint(base), 'counts and sizes do not count');
  const altered = observe([{ policy: messagesArchive, table: { ...MESSAGES, columns: MESSAGES.columns.slice(0, -1) }, counts: counts(10) }]);
  t.not(JSON.stringify(retentionFingerprint(altered)), JSON.stringify(retentionFingerprint(base)), 'a changed table does');
  const withArchive = observe([{ policy: messagesArchive, table: MESSAGES, counts: counts(10) }], [archive({})]);
  t.not(JSON.stringify(retentionFingerprint(withArchive)), JSON.stringify(retentionFingerprint(base)), 'a new archive does');
});

t.test('a policy on a child table of a policy that runs first says its count may overlap, and by how much', async (t) => {
  const conversations = {
    policy: policy({ name: 'conversations-archive', table: 'conversations', action: 'archive', age: { column: 'updated_at', olderThan: '90d' }, children: [{ table: 'messages', column: 'conversation_id' }] }),
    table: CONVERSATIONS, children: [{ ...MESSAGES, references: [] }], counts: counts(5977, { children: { 'public.messages': 35_869 } }),
  };
  const messages = { policy: messagesArchive, table: MESSAGES, counts: counts(35_977) };
  const cutoff = new Date(NOW.getTime() - 90 * DAY).toISOString();
  for (const cases of [[conversations, messages], [messages, conversations]]) {
    const p = planOf(cases);
    t.same(p.errors, []);
    const runs = p.actions.filter(isRetentionRun);
    const m = runs.find((a) => a.params.policy === 'messages-archive')!;
    const before = runs.indexOf(m) > runs.findIndex((a) => a.params.policy === 'conversations-archive');
    if (before) {
      t.equal(m.reason, `≤ 35,977 rows older than 90d (created_at < ${cutoff}); up to 35,869 go with conversations-archive (their parents' policy, which runs first)`);
      t.same(m.params.overlapsWith, ['conversations-archive']);
    } else {
      t.equal(m.reason, `35,977 rows older than 90d (created_at < ${cutoff})`, 'run first, it takes its rows itself: no overlap to say');
    }
  }
  t.ok(planOf([conversations, messages]).actions.filter(isRetentionRun).findIndex((a) => a.params.policy === 'conversations-archive') === 0, 'in config order, the parents run first');
});
