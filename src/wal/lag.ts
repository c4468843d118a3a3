/**
 * The archive lag and the stream's segment switch (docs/architecture.md §6, "WAL in a
 * repository"), pure.
 *
 * The lag is the age of the oldest WAL not yet in the first repository. Its first byte comes
 * after the end of the last archived segment, and was written no earlier than when that segment
 * was complete: so when the server's WAL position is beyond that end, `now - completedAt` of the
 * last archived segment bounds the lag from above; when it is not, nothing was written since and
 * the lag is 0. WAL written after a switch that `wal stream` made at a quiet moment, while the
 * server's next transaction id has not moved, holds no transaction (a standby snapshot, a
 * checkpoint): the lag is 0 too, or every quiet server would look late.
 *
 * pg_receivewal completes only full segments, so on a quiet server a few writes could wait
 * unarchived for hours: `wal stream` switches the segment (pg_switch_wal) once WAL has waited
 * unarchived for half the rpo, and never for WAL that holds no transaction (see above), which
 * would make it switch forever.
 */
import { parseLsn, segmentNumber } from './segments.js';
import type { LastSegment } from './observe.js';

/** The server's side of the lag: where its WAL is and its next transaction id. */
export interface ServerPosition { currentLsn: string; nextXid: string }

export type LagBasis = 'caught-up' | 'quiet' | 'upper-bound';

export interface ArchiveLag {
  seconds: number;
  basis: LagBasis;
  /** The last archived segment it is measured from. */
  segment: string;
}

/** Pure: whether the server has WAL beyond the end of `last` (segment size `segmentBytes`). */
export function writtenSince(last: Pick<LastSegment, 'name'>, segmentBytes: number, currentLsn: string): boolean {
  const end = (segmentNumber(last.name, segmentBytes) + 1n) * BigInt(segmentBytes);
  return parseLsn(currentLsn) > end;
}

/** Pure: the archive lag of the first repository (null: nothing archived there yet). */
export function archiveLag(last: LastSegment | null, segmentBytes: number, server: ServerPosition, now: Date): ArchiveLag | null {
  if (!last) return null;
  if (!writtenSince(last, segmentBytes, server.currentLsn)) return { seconds: 0, basis: 'caught-up', segment: last.name };
  if (last.quietNextXid !== undefined && last.quietNextXid === server.nextXid) return { seconds: 0, basis: 'quiet', segment: last.name };
  return { seconds: Math.max(0, (now.getTime() - Date.parse(last.completedAt)) / 1000), basis: 'upper-bound', segment: last.name };
}

/** What the stream knows when it decides whether to switch the segment. */
export interface SwitchInput {
  /** Offset of the server's WAL position into its current segment (0: nothing written in it). */
  offsetInSegment: number;
  /** The segment the position is in. */
  segment: string;
  nextXid: string;
  /** pg_receivewal is streaming on the slot (a switch before that helps nothing). */
  streaming: boolean;
  /** The next xid at the stream's last switch, when no transaction was in progress then. */
  quietNextXid: string | null;
  /** When the stream first saw WAL waiting in `segment` (null: not yet). */
  waitingSince: { segment: string; at: number } | null;
  now: number;
  rpoSeconds: number;
}

export interface SwitchDecision {
  switchNow: boolean;
  /** What to remember as `waitingSince` for the next decision. */
  waitingSince: { segment: string; at: number } | null;
}

/** Pure: switch once WAL that holds a transaction has waited half the rpo in the current segment. */
export function switchDecision(i: SwitchInput): SwitchDecision {
  const waiting = i.offsetInSegment > 0 && !(i.quietNextXid !== null && i.quietNextXid === i.nextXid);
  if (!waiting) return { switchNow: false, waitingSince: null };
  const since = i.waitingSince?.segment === i.segment ? i.waitingSince : { segment: i.segment, at: i.now };
  return { switchNow: i.streaming && i.now - since.at >= (i.rpoSeconds * 1000) / 2, waitingSince: since };
}
