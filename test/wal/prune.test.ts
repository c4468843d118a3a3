/**
 * The WAL prune, pure (src/wal/prune.ts and planWalPrunes in src/backup/module.ts): the cut-off
 * is the segment holding the start of the oldest base backup kept in a repository; below it go
 * segments and backup labels of every timeline, never history files; oldest first. Planned per
 * repository by its own keep rules, after the prune_backup actions it follows from; nothing when
 * no base backup is kept or a damaged backup might be one.
 */
import t from 'tap';
import type { BackupSchedule, Desired, KeepRules, RepositoryConfig } from '../../src/config/types.js';
import { planBackups, type BackupObserved, type ObservedScheduleBackup, type ObservedWal } from '../../src/backup/module.js';
import { paramsProblem } from '../../src/engine/action-params.js';
import { blockedActions, narrowPlan, orderActions } from '../../src/engine/planner.js';
import type { Action, PruneWal } from '../../src/engine/types.js';
import { renderPlanText } from '../../src/render/text.js';
import type { ArchivedTimeline } from '../../src/wal/archive.js';
import { baseStartOf, lowerCutoff, prunableWal, segmentCount, walCutoff } from '../../src/wal/prune.js';
import { segmentName } from '../../src/wal/segments.js';

const MB16 = 16 * 1024 * 1024;
const NOW = new Date('2026-11-24T10:00:00Z');
const seg = (timeline: number, n: number) => segmentName(timeline, BigInt(n), MB16);
const range = (timeline: number, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => seg(timeline, from + i));

/** Timeline 1: segments 0x01–0x20 and two backup labels; timeline 2 forked at 0x18: 0x18–0x22 and its history file. */
const ARCHIVE: ArchivedTimeline[] = [
  { timeline: 1, names: [...range(1, 0x01, 0x20), `${seg(1, 0x05)}.00000028.backup`, `${seg(1, 0x0c)}.00000060.backup`].sort() },
  { timeline: 2, names: [...range(2, 0x18, 0x22), '00000002.history'].sort() },
];

t.test('the cut-off is the segment holding the start LSN of the oldest kept base backup, whatever its timeline', async (t) => {
  const bases = [
    { id: 'b', timeline: 1, startLsn: '0/C000060' },
    { id: 'c', timeline: 2, startLsn: '0/1A000028' },
    { id: 'a', timeline: 1, startLsn: '0/5000028' },
  ];
  t.same(walCutoff(bases, MB16), { segment: seg(1, 0x05), baseBackup: 'a' });
  t.same(walCutoff(bases.slice(1, 2), MB16), { segment: seg(2, 0x1a), baseBackup: 'c' });
  t.equal(walCutoff([], MB16), null, 'no base backup kept: no cut-off (the WAL is kept)');
  t.same(walCutoff([{ id: 'x', timeline: 1, startLsn: '1/0' }], MB16), { segment: '000000010000000100000000', baseBackup: 'x' }, 'across a log boundary');
});

t.test('below the cut-off: segments and backup labels of every timeline, oldest first, never a history file', async (t) => {
  const names = prunableWal(ARCHIVE, seg(2, 0x1a), MB16);
  t.equal(names[0], seg(1, 0x01), 'the oldest first');
  t.same(names.slice(4, 6), [seg(1, 0x05), `${seg(1, 0x05)}.00000028.backup`], 'a label right after its segment');
  t.same(names.slice(-4), [seg(1, 0x18), seg(2, 0x18), seg(1, 0x19), seg(2, 0x19)], 'both timelines, by segment number');
  t.notOk(names.includes('00000002.history'), 'history files always stay');
  t.notOk(names.some((n) => n.startsWith(seg(1, 0x1a))), 'nothing at the cut-off');
  t.equal(names.length, 0x19 + 2 + 2, 'timeline 1: 0x01–0x19 and two labels; timeline 2: 0x18 and 0x19');
  t.equal(segmentCount(names), 0x19 + 2);
  t.same(prunableWal(ARCHIVE, seg(1, 0x01), MB16), [], 'a cut-off at the first segment prunes nothing');
});

t.test('of two cut-offs the lower one wins: what a base backup still there needs is never deleted', async (t) => {
  t.equal(lowerCutoff(seg(1, 0x10), seg(1, 0x05), MB16), seg(1, 0x05));
  t.equal(lowerCutoff(seg(1, 0x05), seg(2, 0x10), MB16), seg(1, 0x05));
  t.equal(lowerCutoff(seg(2, 0x05), seg(1, 0x05), MB16), seg(2, 0x05), 'the same segment number: the planned one');
});

t.test('a base backup is a postgres manifest with a timeline and a start LSN; a logical one is not', async (t) => {
  t.same(baseStartOf({ id: 'p', service: 'postgres', extra: { timeline: 1, startLsn: '0/2000028', stopLsn: '0/2000100' } }), { id: 'p', timeline: 1, startLsn: '0/2000028' });
  t.equal(baseStartOf({ id: 'l', service: 'postgres', extra: { rowCounts: {} } }), null);
  t.equal(baseStartOf({ id: 'r', service: 'redis', extra: { timeline: 1, startLsn: '0/1' } }), null);
});

// ------------------------------------------------------------------ planning

function desired(keep: KeepRules, repositories: { name: string; keep?: KeepRules }[]): Desired {
  return {
    version: 1, project: 'jarvis', configFile: '/x/jarvis-db.yaml', configHash: 'h', services: {}, storage: { path: '/x/state' },
    repositories: repositories.map((r, i): RepositoryConfig => ({ name: r.name, path: `repositories[${i}]`, kind: 'local', dir: `/x/${r.name}`, ...(r.keep ? { keep: r.keep } : {}) })),
    backups: [{ name: 'base', service: 'postgres', method: 'physical', cron: '0 3 * * *', timezone: 'UTC', keep, verify: 'checksum', path: 'backups[0]' }] as BackupSchedule[],
    retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 }, journal: { keepSeconds: 90 * 86_400 },
  };
}

/** The base backup of day `day` (startedAt 03:00:01, so not due at NOW when day is 24), starting in segment `start` of `timeline`. */
const base = (day: number, repository: string, start: number, timeline = 1): ObservedScheduleBackup => {
  const d = String(day).padStart(2, '0');
  return {
    id: `202611${d}T030001Z-aaaa`, repository, service: 'postgres', schedule: 'base', startedAt: `2026-11-${d}T03:00:01Z`, finishedAt: `2026-11-${d}T03:00:01Z`,
    totalBytes: 100, verified: true, verifiedBy: 'checksum', walStart: { timeline, startLsn: `0/${start.toString(16).toUpperCase()}000028` },
  };
};

function observed(backups: ObservedScheduleBackup[], wal: ObservedWal[], invalid: BackupObserved['invalid'] = []): BackupObserved {
  const names = [...new Set(wal.map((w) => w.repository))];
  return { backups, debris: [], invalid, repositories: names.map((name) => ({ name, reachable: true, location: `/x/${name}` })), wal };
}
const walPrunes = (actions: Action[]) => actions.filter((a): a is PruneWal => a.type === 'prune_wal');

t.test('each repository by its own keep rules: local keeps 1 base backup and prunes the WAL before it, after the prunes; offsite keeps 3', async (t) => {
  const d = desired({ last: 1 }, [{ name: 'local' }, { name: 'offsite', keep: { last: 3 } }]);
  const bases = (repository: string) => [base(22, repository, 0x05), base(23, repository, 0x0c), base(24, repository, 0x14)];
  const obs = observed([...bases('local'), ...bases('offsite')], [
    { repository: 'local', timelines: ARCHIVE, segmentBytes: MB16 },
    { repository: 'offsite', timelines: ARCHIVE, segmentBytes: MB16 },
  ]);
  const plan = planBackups(d, obs, NOW);
  const ordered = orderActions(plan.actions);
  t.same(ordered.map((a) => a.id), ['backup.prune.20261123T030001Z-aaaa', 'backup.prune.20261122T030001Z-aaaa', 'backup.prune.wal.local', 'backup.prune.wal.offsite']);
  const [local, offsite] = walPrunes(plan.actions);
  t.same(local!.params, { repository: 'local', before: seg(1, 0x14), files: 0x13 + 2, bytes: 0x13 * MB16 }, 'timeline 1 0x01–0x13 and both labels');
  t.same(local!.requires, ['backup.prune.20261123T030001Z-aaaa', 'backup.prune.20261122T030001Z-aaaa'], 'after the prunes it follows from');
  t.same(local!.repositories, ['local']);
  t.equal(local!.risk, 'destructive');
  t.equal(local!.target, `local: 21 WAL files before ${seg(1, 0x14)}`);
  t.equal(local!.reason, `needed by no kept base backup (the oldest kept there, 20261124T030001Z-aaaa, starts in ${seg(1, 0x14)})`);
  t.same(offsite!.params, { repository: 'offsite', before: seg(1, 0x05), files: 4, bytes: 4 * MB16 }, 'offsite keeps all three: only the WAL before the oldest');
  t.equal(offsite!.requires, undefined);
  for (const a of [local!, offsite!]) t.equal(paramsProblem('prune_wal', a.params as unknown as Record<string, unknown>), null, 'the params pass saved-plan validation');
  t.match(renderPlanText({ ...emptyPlan(), actions: ordered }), new RegExp(`- prune_wal local: 21 WAL files before ${seg(1, 0x14)} DESTRUCTIVE  backup\\.prune\\.wal\\.local\\n {6}needed by no kept base backup .*\\(~319 MB\\)`));
});

t.test('the oldest kept base backup on a later timeline: both timelines are pruned below its start, the history file stays', async (t) => {
  const d = desired({ last: 1 }, [{ name: 'local' }]);
  const plan = planBackups(d, observed([base(23, 'local', 0x05), base(24, 'local', 0x1a, 2)], [{ repository: 'local', timelines: ARCHIVE, segmentBytes: MB16 }]), NOW);
  const [wal] = walPrunes(plan.actions);
  t.same(wal!.params, { repository: 'local', before: seg(2, 0x1a), files: 0x19 + 2 + 2, bytes: (0x19 + 2) * MB16 });
});

t.test('nothing to prune: WAL only from the oldest kept base backup on, no base backup kept, or logical backups only', async (t) => {
  const d = desired({ last: 3 }, [{ name: 'local' }]);
  const fromFirst: ArchivedTimeline[] = [{ timeline: 1, names: range(1, 0x05, 0x20) }];
  t.same(walPrunes(planBackups(d, observed([base(23, 'local', 0x05), base(24, 'local', 0x0c)], [{ repository: 'local', timelines: fromFirst, segmentBytes: MB16 }]), NOW).actions), []);
  const { walStart: _w, ...logical } = base(24, 'local', 0x05);
  t.same(walPrunes(planBackups(d, observed([logical], [{ repository: 'local', timelines: ARCHIVE, segmentBytes: MB16 }]), NOW).actions), [], 'no physical base backup: the WAL is kept');
  const last = desired({ last: 1 }, [{ name: 'local' }]);
  last.backups[0]!.allowPruneLast = true;
  t.same(walPrunes(planBackups(last, observed([], [{ repository: 'local', timelines: ARCHIVE, segmentBytes: MB16 }]), NOW).actions), [], 'no backup at all');
  t.same(walPrunes(planBackups(d, { ...observed([base(24, 'local', 0x14)], []), wal: undefined }, NOW).actions), [], 'the WAL not observed (no pitr, no physical schedule)');
});

t.test('a damaged postgres backup in the repository may be a base backup: no prune_wal there, a finding says why', async (t) => {
  const d = desired({ last: 1 }, [{ name: 'local' }]);
  const plan = planBackups(d, observed([base(23, 'local', 0x05), base(24, 'local', 0x14)], [{ repository: 'local', timelines: ARCHIVE, segmentBytes: MB16 }],
    [{ id: '20261121T030001Z-bbbb', service: 'postgres', schedule: 'base', problem: 'manifest.json fails its own checksum', repository: 'local' }]), NOW);
  t.same(walPrunes(plan.actions), []);
  const f = plan.findings.find((x) => x.check === 'backup.wal_prune.local')!;
  t.equal(f.status, 'WARNING');
  t.match(f.message, /^21 WAL files before 000000010000000000000014 in local are not pruned: backup 20261121T030001Z-bbbb there is damaged/);
});

t.test('a WAL archive that cannot be listed is a finding, not a prune', async (t) => {
  const d = desired({ last: 1 }, [{ name: 'local' }]);
  const plan = planBackups(d, observed([base(24, 'local', 0x14)], [{ repository: 'local', error: 'EACCES: permission denied' }]), NOW);
  t.same(walPrunes(plan.actions), []);
  t.match(plan.findings.find((x) => x.check === 'backup.wal_prune.local')!.message, /cannot be listed \(EACCES: permission denied\): its WAL is not pruned/);
});

t.test('a prune_backup held back by an error holds back the prune_wal that follows from it', async (t) => {
  const d = desired({ last: 1 }, [{ name: 'local' }]);
  const plan = planBackups(d, observed([base(23, 'local', 0x05), base(24, 'local', 0x14)], [{ repository: 'local', timelines: ARCHIVE, segmentBytes: MB16 }]), NOW);
  const prune = plan.actions.find((a) => a.type === 'prune_backup')!;
  // An error that holds back the prune_backup alone (as a service down holds back its actions).
  const held = blockedActions(plan.actions.map((a) => (a.id === prune.id ? { ...a, services: ['postgres' as const] } : a)), [{ module: 'backup', service: 'postgres', message: 'down' }]);
  t.ok(held.has(prune.id));
  t.ok(held.has('backup.prune.wal.local'), 'the WAL stays when its base backup does');
});

t.test('--target backup.prune keeps the WAL prunes with the backup prunes; --target of one WAL prune brings the prunes it requires', async (t) => {
  const d = desired({ last: 1 }, [{ name: 'local' }]);
  const plan = { ...emptyPlan(), actions: orderActions(planBackups(d, observed([base(23, 'local', 0x05), base(24, 'local', 0x14)], [{ repository: 'local', timelines: ARCHIVE, segmentBytes: MB16 }]), NOW).actions) };
  t.same(narrowPlan(plan, 'backup.prune', ['backup']).actions.map((a) => a.id), ['backup.prune.20261123T030001Z-aaaa', 'backup.prune.wal.local']);
  t.same(narrowPlan(plan, 'backup.prune.wal.local', ['backup']).actions.map((a) => a.id), ['backup.prune.20261123T030001Z-aaaa', 'backup.prune.wal.local']);
  t.same(narrowPlan(plan, 'backup.prune.20261123T030001Z-aaaa', ['backup']).actions.map((a) => a.id), ['backup.prune.20261123T030001Z-aaaa'], 'a backup prune alone leaves the WAL to the next plan');
});

function emptyPlan() {
  return { formatVersion: 1 as const, createdAt: NOW.toISOString(), configFile: '/x/jarvis-db.yaml', configHash: 'h', fingerprint: 'f', basis: { configHash: 'h', modules: {} }, actions: [], findings: [], errors: [] };
}
