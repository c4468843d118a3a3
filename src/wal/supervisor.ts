/**
 * The daemon's WAL stream (services.postgres.pitr.enabled): runs `streamWal` and restarts it with
 * back-off when pg_receivewal exits or fails (1 s, doubling to 60 s; back to 1 s after a run that
 * lasted a minute), follows a config reload (started or stopped with pitr.enabled), and gives
 * /metrics whether it runs and its restarts (pure `walFamilies`).
 */
import type { Logger } from 'pino';
import type { Desired } from '../config/types.js';
import { messageOf } from '../errors.js';
import type { MetricFamily } from '../render/prometheus.js';
import { streamWal, type StreamOptions, type StreamState } from './stream.js';

export type RunStream = (desired: Desired, options: StreamOptions) => Promise<StreamState>;

export interface WalStreamMetrics {
  running: boolean;
  restarts: number;
  lastArchivedAt: Date | null;
  lastArchived: string | null;
  /** When the stream last found nothing left to push (the archive caught up with the receiver). */
  caughtUpAt: Date | null;
}

/** Backoff for the `n`th consecutive failure (0-based): 1 s, 2 s, 4 s … 60 s. */
export function backoffMs(n: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.min(n, 6));
}

/**
 * Pure: the /metrics families of the WAL stream itself. The archive lag, the last
 * archived segment's age and the window are the health check's `wal.*` (src/health/probes/wal.ts),
 * measured against the server and the first repository, in the same /metrics.
 */
export function walFamilies(m: WalStreamMetrics): MetricFamily[] {
  return [
    { name: 'jarvis_db_wal_stream_up', help: 'Whether the daemon\'s WAL stream (pg_receivewal) is running.', type: 'gauge', samples: [{ value: m.running ? 1 : 0 }] },
    { name: 'jarvis_db_wal_stream_restarts_total', help: 'Restarts of the WAL stream after pg_receivewal exited or failed.', type: 'counter', samples: [{ value: m.restarts }] },
  ];
}

export class WalStreamSupervisor {
  readonly metrics: WalStreamMetrics = { running: false, restarts: 0, lastArchivedAt: null, lastArchived: null, caughtUpAt: null };
  /** Bumped by every start and stop: a loop of an older generation ends. */
  private generation = 0;
  private loop: Promise<void> | null = null;
  private stopRequested: (() => void) | null = null;
  private sleepTimer?: NodeJS.Timeout;
  private wake?: () => void;

  constructor(private readonly options: { desired: () => Desired; log: Logger; env?: NodeJS.ProcessEnv; run?: RunStream; pollMs?: number }) {}

  /** Starts or stops the stream to match the config in force. */
  sync(): void {
    const enabled = this.options.desired().services.postgres?.pitr?.enabled === true;
    if (enabled && !this.loop) {
      const generation = ++this.generation;
      this.loop = this.supervise(generation);
    } else if (!enabled && this.loop) {
      void this.stop();
    }
  }

  async stop(): Promise<void> {
    const loop = this.loop;
    if (!loop) return;
    this.generation++;
    this.loop = null;
    this.stopRequested?.();
    clearTimeout(this.sleepTimer);
    this.wake?.();
    await loop;
  }

  private async supervise(generation: number): Promise<void> {
    const run = this.options.run ?? streamWal;
    const live = () => this.generation === generation;
    let failures = 0;
    while (live()) {
      const stop = new Promise<void>((resolve) => { this.stopRequested = resolve; });
      const started = Date.now();
      this.metrics.running = true;
      try {
        await run(this.options.desired(), {
          stop, env: this.options.env, pollMs: this.options.pollMs,
          log: (line) => this.options.log.info({ event: 'wal_stream' }, line),
          onState: (s) => {
            if (s.lastArchivedAt) { this.metrics.lastArchivedAt = new Date(s.lastArchivedAt); this.metrics.lastArchived = s.lastArchived; }
            if (s.caughtUpAt) this.metrics.caughtUpAt = new Date(s.caughtUpAt);
          },
        });
        if (!live()) break;
        this.options.log.warn({ event: 'wal_stream_exited' }, 'the WAL stream ended');
      } catch (e) {
        if (!live()) break;
        this.options.log.error({ event: 'wal_stream_failed', error: messageOf(e) }, `the WAL stream failed: ${messageOf(e)}`);
      } finally {
        this.metrics.running = false;
      }
      failures = Date.now() - started > 60_000 ? 0 : failures + 1;
      const delay = backoffMs(Math.max(0, failures - 1));
      this.metrics.restarts++;
      this.options.log.info({ event: 'wal_stream_restart', inMs: delay, restarts: this.metrics.restarts }, `restarting the WAL stream in ${delay / 1000}s`);
      await new Promise<void>((resolve) => { this.wake = resolve; this.sleepTimer = setTimeout(resolve, delay); });
    }
  }
}
