/**
 * `wal stream` keeps the rpo on a quiet server (docs/architecture.md §6, "WAL in a repository"):
 * pg_receivewal completes only full segments, so WAL that has waited unarchived for half the rpo
 * is pushed out with pg_switch_wal() (the decision is `switchDecision` in src/wal/lag.ts). Only
 * while pg_receivewal streams on the slot; never for WAL that holds no transaction. A user who may
 * not run pg_switch_wal() gets one warning naming the GRANT, and the stream goes on without it.
 */
import type pg from 'pg';
import { messageOf } from '../errors.js';
import { switchDecision, type SwitchDecision } from './lag.js';
import { parseLsn, segmentOfLsn } from './segments.js';

interface PositionRow { lsn: string; next_xid: string; in_progress: boolean; streaming: boolean | null; can_switch: boolean }

const POSITION = `
  SELECT pg_current_wal_lsn()::text AS lsn, pg_snapshot_xmax(s)::text AS next_xid, pg_snapshot_xmin(s) <> pg_snapshot_xmax(s) AS in_progress,
         (SELECT active FROM pg_replication_slots WHERE slot_name = $1) AS streaming,
         has_function_privilege('pg_switch_wal()', 'execute') AS can_switch
    FROM pg_current_snapshot() s`;

/** The snapshot is the statement's, taken before the switch: an xid assigned after it is newer. */
const SWITCH = `
  SELECT pg_snapshot_xmax(s)::text AS next_xid, pg_snapshot_xmin(s) <> pg_snapshot_xmax(s) AS in_progress, pg_switch_wal()::text AS switched
    FROM pg_current_snapshot() s`;

export interface SwitcherOptions {
  url: string;
  slot: string;
  rpoSeconds: number;
  timeline: number;
  segmentBytes: number;
  log: (line: string) => void;
  now?: () => number;
}

export class SegmentSwitcher {
  private client: pg.Client | null = null;
  private waiting: SwitchDecision['waitingSince'] = null;
  private quietNextXid: string | null = null;
  private warned = false;
  private lastCheck = 0;
  /** The segments this stream switched away from at a quiet moment, with the next xid then (for their manifests). */
  readonly quiet = new Map<string, string>();
  /** Checks every quarter of the rpo, between 200 ms and 5 s. */
  readonly intervalMs: number;

  constructor(private readonly o: SwitcherOptions) {
    this.intervalMs = Math.min(5000, Math.max(200, (o.rpoSeconds * 1000) / 4));
  }

  /** One check (called from the stream's poll loop; does nothing until the interval has passed). Never throws. */
  async tick(): Promise<void> {
    const now = (this.o.now ?? Date.now)();
    if (now - this.lastCheck < this.intervalMs) return;
    this.lastCheck = now;
    try {
      this.client ??= await this.connect();
      const row = (await this.client.query<PositionRow>(POSITION, [this.o.slot])).rows[0]!;
      const lsn = parseLsn(row.lsn);
      const decision = switchDecision({
        offsetInSegment: Number(lsn % BigInt(this.o.segmentBytes)), segment: segmentOfLsn(this.o.timeline, lsn, this.o.segmentBytes),
        nextXid: row.next_xid, streaming: row.streaming === true, quietNextXid: this.quietNextXid, waitingSince: this.waiting, now, rpoSeconds: this.o.rpoSeconds,
      });
      this.waiting = decision.waitingSince;
      if (!decision.switchNow) return;
      if (!row.can_switch) {
        if (!this.warned) this.o.log(`warning: WAL waits unarchived and the user may not run pg_switch_wal(), so on a quiet server it may wait past the rpo: GRANT EXECUTE ON FUNCTION pg_switch_wal() TO the user of services.postgres.url`);
        this.warned = true;
        return;
      }
      const sw = (await this.client.query<{ next_xid: string; in_progress: boolean; switched: string }>(SWITCH)).rows[0]!;
      const completed = segmentOfLsn(this.o.timeline, parseLsn(sw.switched) - 1n, this.o.segmentBytes);
      this.quietNextXid = sw.in_progress ? null : sw.next_xid;
      if (this.quietNextXid) this.quiet.set(completed, this.quietNextXid);
      this.waiting = null;
      this.o.log(`switched the WAL segment (pg_switch_wal) so that ${completed} is archived within the rpo`);
    } catch (e) {
      this.o.log(`warning: could not check the WAL position for the rpo: ${messageOf(e)}`);
      await this.close();
    }
  }

  private async connect(): Promise<pg.Client> {
    const { connectPostgres } = await import('../services/postgres.js');
    return connectPostgres(this.o.url, { applicationName: 'jarvis-db wal stream', connectTimeoutMs: 5000 });
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}
