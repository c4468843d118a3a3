/**
 * Archives in every repository, the planning: a finished archive of the first repository is
 * copied to each other one that lacks it; nothing unfinished, expired or already there is
 * copied; an expired archive is pruned in every repository holding it, even one only a copy
 * holds; an unreadable repository is an error that names it.
 */
import t from 'tap';
import { planArchiveCopies } from '../../src/retention/archive-copies.js';
import type { ArchiveSummary } from '../../src/retention/store.js';
import { desiredWith, policy } from './fixture.js';

const NOW = new Date('2026-12-07T12:00:00Z');
const desired = desiredWith([policy({ name: 'messages-archive', table: 'messages', action: 'archive', archive: { deleteAfter: '2y' } })]);

const archive = (id: string, o: Partial<ArchiveSummary> = {}): ArchiveSummary => ({
  id, policy: 'messages-archive', table: 'public.messages', cutoff: '2026-09-01T00:00:00.000Z', createdAt: '2026-12-01T03:00:00.000Z',
  chunks: 3, pending: 0, damaged: 0, rows: 15000, bytes: 1_000_000, encrypted: false, writerAlive: false, ...o,
});

t.test('a finished archive missing from another repository is copied there, reaching both repositories', async (t) => {
  const r = planArchiveCopies(desired, 'local', [archive('20261201T030000Z-0001'), archive('20261202T030000Z-0002')], [
    { repository: 'offsite', archives: [{ id: '20261201T030000Z-0001', policy: 'messages-archive', cutoff: '2026-09-01T00:00:00.000Z' }] },
    { repository: 'vault', archives: [] },
  ], NOW);
  t.same(r.copies.map((a) => [a.id, a.params.to, a.risk, a.repositories]), [
    ['retention.copy.20261202T030000Z-0002.offsite', 'offsite', 'safe', ['local', 'offsite']],
    ['retention.copy.20261201T030000Z-0001.vault', 'vault', 'safe', ['local', 'vault']],
    ['retention.copy.20261202T030000Z-0002.vault', 'vault', 'safe', ['local', 'vault']],
  ]);
  t.match(r.copies[0], { type: 'copy_archive', params: { archiveId: '20261202T030000Z-0002', policy: 'messages-archive', from: 'local' }, estimate: { rows: 15000, bytes: 1_000_000 } });
  t.same(r.prunes, []);
  t.same(r.errors, []);
});

t.test('an archive still written, with pending or damaged chunks, or without a chunk is not copied', async (t) => {
  const r = planArchiveCopies(desired, 'local', [
    archive('20261201T030000Z-0001', { writerAlive: true }),
    archive('20261201T030000Z-0002', { pending: 1 }),
    archive('20261201T030000Z-0003', { damaged: 1 }),
    archive('20261201T030000Z-0004', { chunks: 0, rows: 0 }),
  ], [{ repository: 'offsite', archives: [] }], NOW);
  t.same(r.copies, []);
});

t.test('an expired archive is pruned in every repository holding it, not copied', async (t) => {
  const old = { cutoff: '2024-10-01T00:00:00.000Z' };
  const r = planArchiveCopies(desired, 'local', [archive('20241201T030000Z-0001', old), archive('20241201T030000Z-0002', old)], [
    { repository: 'offsite', archives: [{ id: '20241201T030000Z-0001', policy: 'messages-archive', ...old }, { id: '20231201T030000Z-0009', policy: 'messages-archive', cutoff: '2023-10-01T00:00:00.000Z' }] },
  ], NOW);
  t.same(r.copies, [], 'nothing expired is copied');
  t.same(r.prunes.map((a) => [a.params.archiveId, a.params.repositories, a.repositories, a.risk]), [
    ['20241201T030000Z-0001', ['local', 'offsite'], ['local', 'offsite'], 'destructive'],
    ['20241201T030000Z-0002', ['local'], ['local'], 'destructive'],
    ['20231201T030000Z-0009', ['offsite'], ['offsite'], 'destructive'],
  ]);
  t.match(r.prunes[2]!.reason, /past deleteAfter 2y since 2025-.*; in offsite$/);
  t.equal(r.prunes[2]!.estimate, null, 'a copy known from its header alone has no estimate');
});

t.test('with a single repository the prune names none (the plan reads as before repositories)', async (t) => {
  const r = planArchiveCopies(desired, 'local', [archive('20241201T030000Z-0001', { cutoff: '2024-10-01T00:00:00.000Z' })], [], NOW);
  t.same(r.prunes.map((a) => [a.params, a.repositories]), [[{ archiveId: '20241201T030000Z-0001', policy: 'messages-archive' }, undefined]]);
});

t.test('a repository whose archives cannot be listed is an error naming it, holding back only its copies', async (t) => {
  const r = planArchiveCopies(desired, 'local', [archive('20261201T030000Z-0001')], [
    { repository: 'offsite', archives: null, problem: 'connect ECONNREFUSED 127.0.0.1:9' },
    { repository: 'vault', archives: [] },
  ], NOW);
  t.same(r.errors.map((e) => [e.module, e.repository]), [['retention', 'offsite']]);
  t.match(r.errors[0]!.message, /repository offsite cannot be listed: connect ECONNREFUSED/);
  t.same(r.copies.map((a) => a.params.to), ['vault']);
});

t.test('the archive a run of the plan writes is copied after it to every other repository', async (t) => {
  const r = planArchiveCopies(desired, 'local', [], [{ repository: 'offsite', archives: [] }, { repository: 'vault', archives: null, problem: 'timeout' }], NOW, [
    { id: 'retention.archive.messages-archive', policy: 'messages-archive' },
    { id: 'retention.drop_partitions.metrics-archive', policy: 'metrics-archive' },
  ]);
  t.same(r.copies.map((a) => [a.id, a.params, a.requires, a.repositories]), [
    ['retention.copy.archive.messages-archive.offsite', { fromAction: 'retention.archive.messages-archive', policy: 'messages-archive', from: 'local', to: 'offsite' }, ['retention.archive.messages-archive'], ['local', 'offsite']],
    ['retention.copy.drop_partitions.metrics-archive.offsite', { fromAction: 'retention.drop_partitions.metrics-archive', policy: 'metrics-archive', from: 'local', to: 'offsite' }, ['retention.drop_partitions.metrics-archive'], ['local', 'offsite']],
  ], 'none to the repository that cannot be listed');
  t.match(r.copies[0]!.reason, /the archive that retention.archive.messages-archive writes in local/);
});
