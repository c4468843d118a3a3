/**
 * Point-in-time recovery in `plan` and `health` (docs/architecture.md §6, "PITR in plan and
 * health"), pure: from the server's facts and each repository's WAL listing, the findings of a
 * server not ready for PITR, the archive lag against the rpo, a broken chain after the oldest
 * base backup, no base backup; and the `wal.*` health samples from the same facts.
 */
import type { PitrConfig } from '../config/types.js';
import type { Finding, Status } from '../engine/types.js';
import { formatDuration } from '../render/format.js';
import type { Sample } from '../health/samples.js';
import { archiveLag, type ArchiveLag } from './lag.js';
import type { ObservedWal, ObservedWalServer, WalServerFacts } from './observe.js';
import type { BaseStart } from './prune.js';
import { gapsIn, parseLsn, parseWalFileName, segmentName, segmentNumber, segmentOfLsn } from './segments.js';

const SERVICE = 'postgres';

function finding(check: string, status: Status, message: string, value: Finding['value'] = null, threshold: string | null = null): Finding {
  return { check, service: SERVICE, status, value, threshold, message };
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Pure: what keeps the server from PITR, one finding each, with what to change. */
export function readinessFindings(pitr: PitrConfig, s: WalServerFacts): Finding[] {
  const out: Finding[] = [];
  if (s.walLevel === 'minimal') {
    out.push(finding('wal.ready.wal_level', 'CRITICAL', `postgres runs with wal_level = minimal: no WAL can be archived; set wal_level = replica in postgresql.conf (or ALTER SYSTEM SET wal_level = replica) and restart the server`, s.walLevel, 'replica or logical'));
  }
  if (!s.replication) {
    out.push(finding('wal.ready.replication', 'CRITICAL', `the user ${s.user} of services.postgres.url may not stream WAL: ALTER ROLE ${quoteIdent(s.user)} REPLICATION, and allow it in pg_hba.conf (host replication ${s.user} ...)`, s.user));
  }
  if (!s.slot.exists) {
    out.push(finding('wal.ready.slot', 'CRITICAL', `the replication slot ${pitr.slot} does not exist, so the server keeps no WAL for the archive: run jarvis-db wal stream (or the daemon), which creates it, or SELECT pg_create_physical_replication_slot('${pitr.slot}')`, pitr.slot));
  } else if (!s.slot.physical) {
    out.push(finding('wal.ready.slot', 'CRITICAL', `the replication slot ${pitr.slot} is a logical slot: pg_receivewal needs a physical one; set services.postgres.pitr.slot to another name`, pitr.slot));
  }
  if (!s.slot.active) {
    out.push(finding('wal.ready.receiver', 'CRITICAL', `no WAL receiver is running on slot ${pitr.slot}: nothing is archived; start jarvis-db wal stream, or jarvis-db daemon (which runs it)`, pitr.slot));
  }
  if (!s.canSwitch) {
    out.push(finding('wal.ready.switch', 'WARNING', `the user ${s.user} may not run pg_switch_wal(): on a quiet server WAL can wait unarchived past the rpo; GRANT EXECUTE ON FUNCTION pg_switch_wal() TO ${quoteIdent(s.user)}`, s.user));
  }
  return out;
}

/** Pure: the status of a lag against the rpo: WARNING past it, CRITICAL past twice it. */
export function lagStatus(seconds: number, rpoSeconds: number): Status {
  return seconds >= 2 * rpoSeconds ? 'CRITICAL' : seconds >= rpoSeconds ? 'WARNING' : 'HEALTHY';
}

/** Pure: the lag finding of the first repository (null: healthy, or not measurable). */
export function lagFinding(pitr: PitrConfig, first: ObservedWal, lag: ArchiveLag | null): Finding | null {
  const threshold = `warning >= ${formatDuration(pitr.rpoSeconds * 1000)}, critical >= ${formatDuration(2 * pitr.rpoSeconds * 1000)} (rpo)`;
  if ('error' in first) return null;
  if (!lag) return finding('wal.archive_lag', 'WARNING', `no WAL is archived in repository ${first.repository} yet: nothing can be recovered to a point in time`, null, threshold);
  const status = lagStatus(lag.seconds, pitr.rpoSeconds);
  if (status === 'HEALTHY') return null;
  return finding('wal.archive_lag', status, `WAL waits unarchived for up to ${formatDuration(lag.seconds * 1000)} (the last segment in ${first.repository}, ${lag.segment}, was complete then), past the rpo of ${formatDuration(pitr.rpoSeconds * 1000)}: is the receiver keeping up?`, Math.round(lag.seconds), threshold);
}

/** Pure: per repository, a gap in the chain from the oldest base backup there to its last segment. */
export function gapFindings(wal: readonly ObservedWal[], basesOf: (repository: string) => BaseStart[]): Finding[] {
  const out: Finding[] = [];
  for (const w of wal) {
    if ('error' in w) continue;
    const oldest = [...basesOf(w.repository)].sort((a, b) => (parseLsn(a.startLsn) < parseLsn(b.startLsn) ? -1 : 1))[0];
    if (!oldest) continue;
    const from = segmentOfLsn(oldest.timeline, parseLsn(oldest.startLsn), w.segmentBytes);
    const fromNumber = segmentNumber(from, w.segmentBytes);
    const names = (w.timelines.find((tl) => tl.timeline === oldest.timeline)?.names ?? [])
      .filter((n) => parseWalFileName(n)?.kind === 'segment' && segmentNumber(n, w.segmentBytes) >= fromNumber);
    if (names.length === 0) continue;
    // The base backup's own first segment belongs to the chain: a virtual one just before it makes its absence a gap.
    const chain = fromNumber > 0n ? [segmentName(oldest.timeline, fromNumber - 1n, w.segmentBytes), ...names] : names;
    for (const g of gapsIn(chain, w.segmentBytes)) {
      out.push(finding(`wal.gap.${w.repository}`, 'CRITICAL', `the recoverable window in ${w.repository} is broken from ${g.from} to ${g.to} (${g.missing} segment${g.missing === 1 ? '' : 's'} missing after base backup ${oldest.id}): no point after the gap can be reached from a base backup before it; take a new base backup`, g.missing));
    }
  }
  return out;
}

export interface WalPlanInput {
  pitr: PitrConfig;
  server: ObservedWalServer;
  /** Each repository's listing, in order (absent: the backup module could not observe it). */
  wal?: readonly ObservedWal[];
  /** The physical base backups of each repository. */
  basesOf: (repository: string) => BaseStart[];
  now: Date;
}

/** Pure: every PITR finding of a plan (see the header). A server that is down is one finding. */
export function walFindings(input: WalPlanInput): Finding[] {
  const { pitr, server, wal } = input;
  const out: Finding[] = [];
  if (!server.ok) {
    out.push(finding('wal.server', 'UNKNOWN', `PITR of postgres not checked: ${server.error}`));
  } else {
    out.push(...readinessFindings(pitr, server.facts));
  }
  if (!wal) return out;
  const first = wal[0];
  if (first && server.ok) {
    const lag = 'error' in first ? null : archiveLag(first.last ?? null, first.segmentBytes, server.facts, input.now);
    const f = lagFinding(pitr, first, lag);
    if (f) out.push(f);
  }
  out.push(...gapFindings(wal, input.basesOf));
  if (wal.every((w) => !('error' in w)) && wal.every((w) => input.basesOf(w.repository).length === 0)) {
    out.push(finding('wal.base_backup', 'WARNING', 'pitr is enabled but no physical base backup exists: the archived WAL has nothing to be replayed onto; run jarvis-db backup create for the physical schedule'));
  }
  return out;
}

/** What the `wal.*` health samples are taken from. */
export interface WalHealthInput {
  pitr: PitrConfig;
  server: ObservedWalServer;
  first: ObservedWal | undefined;
  /** The start of each repository's recoverable window (the oldest over its timelines), null when it has none. */
  windows: { repository: string; from: string | null; error?: string }[];
  now: Date;
}

/** Pure: the `wal.*` samples of a health check. */
export function walSamples(input: WalHealthInput): Sample[] {
  const { server, first, now } = input;
  const samples: Sample[] = [];
  samples.push(server.ok
    ? { check: 'wal.receiver_running', value: server.facts.slot.active ? 1 : 0, detail: `slot ${input.pitr.slot}${server.facts.slot.exists ? '' : ' does not exist'}` }
    : { check: 'wal.receiver_running', value: null, problem: server.error });
  for (const w of input.windows) {
    const labels = { repository: w.repository };
    samples.push(w.from ? { check: 'wal.window_start_timestamp_seconds', labels, value: Date.parse(w.from) / 1000 } : { check: 'wal.window_start_timestamp_seconds', labels, value: null, problem: w.error ?? `no recoverable window in ${w.repository}` });
  }
  if (!first || 'error' in first) {
    const problem = first && 'error' in first ? first.error : 'no repository';
    samples.push({ check: 'wal.archive_lag_seconds', value: null, problem }, { check: 'wal.archive_lag_rpo_ratio', value: null, problem });
    return samples;
  }
  const last = first.last ?? null;
  if (last) samples.push({ check: 'wal.last_archived_segment_age_seconds', value: Math.max(0, (now.getTime() - Date.parse(last.archivedAt)) / 1000), detail: last.name });
  const lag = server.ok ? archiveLag(last, first.segmentBytes, server.facts, now) : null;
  if (!lag) {
    const problem = server.ok ? `no WAL archived in ${first.repository} yet` : server.error;
    samples.push({ check: 'wal.archive_lag_seconds', value: null, problem }, { check: 'wal.archive_lag_rpo_ratio', value: null, problem });
    return samples;
  }
  const detail = lag.basis === 'upper-bound' ? `since ${lag.segment} was complete` : lag.basis === 'quiet' ? 'no transaction since the last switch' : `nothing written after ${lag.segment}`;
  samples.push({ check: 'wal.archive_lag_seconds', value: lag.seconds, detail }, { check: 'wal.archive_lag_rpo_ratio', value: lag.seconds / input.pitr.rpoSeconds, detail: `rpo ${formatDuration(input.pitr.rpoSeconds * 1000)}` });
  return samples;
}
