/**
 * The daemon: applies what is due when a backup schedule's cron fires (and once at start, to
 * catch up), runs the health check every `health.interval`, serves `/metrics` and `/healthz`,
 * and logs JSON lines. One apply at a time in this process (a wake during a run makes one more
 * run afterwards); the engine's lock keeps it apart from any other apply. Stopping aborts: the
 * engine finishes or abandons the current action and reports the rest as not executed.
 * `reload` reads the config again: a valid one takes effect at the next tick (a running apply or
 * check finishes with the config it started with; the timers are recomputed), an invalid one is
 * logged and the current config kept.
 *
 * The apply, the health check and the config loader are passed in, so that tests (and the
 * engine) plug in; each apply and check is given the config in force when it starts.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Desired } from '../config/types.js';
import type { Plan, Status } from '../engine/types.js';
import { messageOf } from '../errors.js';
import type { HealthReport, RecordOutcome } from '../health/check.js';
import { healthFamilies, PROMETHEUS_CONTENT_TYPE, renderExposition } from '../render/prometheus.js';
import { daemonFamilies, newCounters, type DaemonCounters } from './metrics.js';
import { StatusBoard } from './status.js';
import { walFamilies, WalStreamSupervisor } from '../wal/supervisor.js';
import { describeChange, describeLoadFailure } from './reload.js';
import { MAX_TIMER_MS, nextWake } from './wake.js';

export interface ActionRef { id: string; type: string; target: string }
export interface ActionResultSummary extends ActionRef { status: string; durationMs?: number; summary?: string; error?: { code: string; message: string }; reason?: string }
/** `errors`: what the run's observation could not do (a service down); each held back only what needed it. */
export interface ApplySummary { runId: string; status: string; durationMs: number; results: ActionResultSummary[]; errors?: { module: string; message: string; service?: string }[] }

export interface ApplyHooks {
  runStarted(runId: string): void;
  actionStarted(action: ActionRef): void;
  actionFinished(result: ActionResultSummary): void;
  waitingForLock(holder: string): void;
}

export type RunApply = (options: { signal: AbortSignal; hooks: ApplyHooks; desired: Desired }) => Promise<ApplySummary>;
export type RunHealth = (signal: AbortSignal, desired: Desired) => Promise<HealthReport & RecordOutcome>;

export interface DaemonOptions {
  desired: Desired;
  host: string;
  port: number;
  logger: Logger;
  runApply: RunApply;
  runHealth: RunHealth;
  /** Reads the config file again (the loader used at start). Without it, `reload` keeps the config. */
  loadConfig?: () => Promise<Desired>;
  clock?: () => Date;
  /** The status page needs it (Authorization: Bearer, or the cookie `/?token=` sets); required off loopback. */
  token?: string;
  /** What `plan` says now, for the status page's pending plan (without it the page has none). */
  runPlan?: (desired: Desired) => Promise<Plan>;
}

export interface Liveness {
  ok: boolean;
  startedAt: string;
  /** When the health loop last completed a check. */
  lastCheckAt: string | null;
  health: { status: Status; checkedAt: string | null; notHealthy: string[] };
  configHash: string;
  applying: boolean;
  nextApplyAt: string | null;
  problem?: string;
}

const shortId = () => randomBytes(4).toString('hex');

export class Daemon {
  readonly counters: DaemonCounters;
  private readonly abort = new AbortController();
  private readonly clock: () => Date;
  private readonly log: Logger;
  private server?: Server;
  private applying: Promise<void> | null = null;
  private applyAgain: { trigger: string; schedules: string[] } | null = null;
  private checking: Promise<void> | null = null;
  private checkAgain = false;
  /** Set while the health loop waits for its next tick (not while it checks). */
  private healthTimer?: NodeJS.Timeout;
  private healthLoopStartedAt = 0;
  private reloading: Promise<boolean> | null = null;
  private desired: Desired;
  private wakeTimer?: NodeJS.Timeout;
  private latest?: HealthReport;
  private lastCheckAt?: Date;
  private stopping = false;
  /** The WAL stream when services.postgres.pitr.enabled (src/wal/supervisor.ts). */
  readonly walStream: WalStreamSupervisor;
  private readonly board: StatusBoard;

  constructor(private readonly options: DaemonOptions) {
    this.board = new StatusBoard(options.runPlan);
    this.clock = options.clock ?? (() => new Date());
    this.counters = newCounters(this.clock());
    this.log = options.logger;
    this.desired = options.desired;
    this.walStream = new WalStreamSupervisor({ desired: () => this.desired, log: this.log });
  }

  /** The config in force: the next apply and check use it. */
  get config(): Desired {
    return this.desired;
  }

  /** Where the HTTP server listens (after start). */
  get address(): { host: string; port: number } {
    const a = this.server?.address() as AddressInfo | null;
    return { host: a?.address ?? this.options.host, port: a?.port ?? this.options.port };
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.serve(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => { server.off('error', reject); resolve(); });
    });
    const desired = this.desired;
    this.log.info({
      event: 'daemon_started', listen: `${this.address.host}:${this.address.port}`, config: desired.configFile,
      healthIntervalSeconds: desired.health.intervalSeconds, schedules: desired.backups.map((b) => `${b.name} ${b.cron} ${b.timezone}`),
    }, 'jarvis-db daemon started');
    this.healthLoop();
    this.walStream.sync();
    void this.applyNow('start', desired.backups.map((b) => b.name));
    this.scheduleWake();
  }

  /** Aborts the current apply (between actions, or inside one that honours the signal), waits for it, closes the server. */
  async stop(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ event: 'daemon_stopping', reason, applying: this.applying !== null }, `stopping (${reason})`);
    this.abort.abort();
    clearTimeout(this.healthTimer);
    clearTimeout(this.wakeTimer);
    await Promise.all([this.applying, this.checking, this.walStream.stop()]);
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.log.info({ event: 'daemon_stopped' }, 'stopped');
  }

  private healthLoop(): void {
    this.healthTimer = undefined;
    this.healthLoopStartedAt = Date.now();
    void this.check('interval').finally(() => this.armHealthTimer());
  }

  /** The next tick of the health loop: one interval (of the config in force) after the last one started. */
  private armHealthTimer(): void {
    clearTimeout(this.healthTimer);
    if (this.stopping) return;
    const delay = Math.max(0, this.desired.health.intervalSeconds * 1000 - (Date.now() - this.healthLoopStartedAt));
    this.healthTimer = setTimeout(() => this.healthLoop(), delay);
  }

  /**
   * Reads the config again (SIGHUP). A valid one is in force from the next tick: the wake and the
   * health timer are recomputed from it; an apply or check that runs goes on with the config it
   * started with. An invalid one is logged (file:line and the problem) and the current one kept.
   * Resolves to whether the new config was taken. Reloads asked during one run one after another.
   */
  reload(trigger = 'SIGHUP'): Promise<boolean> {
    if (this.stopping || !this.options.loadConfig) {
      if (!this.options.loadConfig) this.log.warn({ event: 'config_reload_skipped', trigger }, 'no config loader: the config is kept');
      return Promise.resolve(false);
    }
    const previous = this.reloading ?? Promise.resolve(true);
    const next = previous.then(() => this.reloadOnce(trigger));
    this.reloading = next;
    void next.finally(() => { if (this.reloading === next) this.reloading = null; });
    return next;
  }

  private async reloadOnce(trigger: string): Promise<boolean> {
    const file = this.desired.configFile;
    let loaded: Desired;
    try {
      loaded = await this.options.loadConfig!();
    } catch (e) {
      const failure = describeLoadFailure(e);
      this.log.error({ event: 'config_reload_failed', trigger, config: file, ...failure, kept: this.desired.configHash },
        `the config was not reloaded, the current one is kept: ${failure.problems.join('; ')}`);
      return false;
    }
    if (this.stopping) return false;
    const change = describeChange(this.desired, loaded);
    this.desired = loaded;
    this.walStream.sync();
    clearTimeout(this.wakeTimer);
    this.scheduleWake();
    // While a loop check runs, its end arms the timer from the new interval; otherwise re-arm now.
    if (this.healthTimer) this.armHealthTimer();
    this.log.info({
      event: 'config_reloaded', trigger, config: loaded.configFile, ...change, applying: this.applying !== null,
      healthIntervalSeconds: loaded.health.intervalSeconds, schedules: loaded.backups.map((b) => `${b.name} ${b.cron} ${b.timezone}`),
      nextApplyAt: this.counters.nextApplyAt?.toISOString() ?? null,
    }, change.previousHash === change.configHash ? 'config reloaded: unchanged' : `config reloaded${change.changed.length ? `: ${change.changed.join(', ')}` : ''}`);
    return true;
  }

  /** One health check; a request while one runs makes one more afterwards. */
  check(trigger: string): Promise<void> {
    if (this.checking) {
      this.checkAgain = true;
      return this.checking;
    }
    const checkId = shortId();
    this.checking = (async () => {
      try {
        const r = await this.options.runHealth(this.abort.signal, this.desired);
        this.latest = r;
        this.lastCheckAt = this.clock();
        // In the background: a slow listing (or plan) never holds the health loop.
        this.board.refresh(this.desired, this.clock());
        this.counters.healthChecks++;
        const notHealthy = r.findings.filter((f) => f.status !== 'HEALTHY').map((f) => ({ check: f.check, status: f.status, message: f.message }));
        const line = { event: 'health_checked', checkId, trigger, status: r.status, durationMs: r.observation.durationMs, notHealthy, alertsSent: r.alertsSent };
        if (r.status === 'HEALTHY') this.log.info(line, `health ${r.status}`);
        else this.log.warn(line, `health ${r.status}: ${notHealthy.map((f) => f.check).join(', ')}`);
        for (const failure of r.alertFailures) this.log.warn({ event: 'alert_failed', checkId }, failure);
      } catch (e) {
        this.counters.healthCheckFailures++;
        this.log.error({ event: 'health_check_failed', checkId, trigger, error: messageOf(e) }, 'the health check could not run');
      }
    })().finally(() => {
      this.checking = null;
      if (this.checkAgain && !this.stopping) {
        this.checkAgain = false;
        void this.check('after apply');
      }
    });
    return this.checking;
  }

  private scheduleWake(): void {
    if (this.stopping) return;
    const wake = nextWake(this.desired.backups, this.clock());
    this.counters.nextApplyAt = wake?.at;
    if (!wake) return;
    const delay = wake.at.getTime() - this.clock().getTime();
    this.wakeTimer = setTimeout(() => {
      if (this.clock().getTime() >= wake.at.getTime()) void this.applyNow('cron', wake.schedules);
      this.scheduleWake();
    }, Math.min(Math.max(delay, 0), MAX_TIMER_MS));
  }

  /** Applies what is due; a wake during a run makes one more run after it. */
  applyNow(trigger: string, schedules: string[]): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (this.applying) {
      this.applyAgain = { trigger, schedules };
      this.log.info({ event: 'apply_deferred', trigger, schedules }, 'an apply is running; one more follows it');
      return this.applying;
    }
    const cycle = shortId();
    this.applying = (async () => {
      let runId: string | undefined;
      this.log.info({ event: 'apply_started', cycle, trigger, schedules }, `applying what is due (${trigger})`);
      try {
        const result = await this.options.runApply({
          signal: this.abort.signal,
          desired: this.desired,
          hooks: {
            runStarted: (id) => { runId = id; },
            actionStarted: (a) => this.log.info({ event: 'action_started', runId, cycle, action: a.id, type: a.type, target: a.target }, `${a.type} ${a.target}`),
            actionFinished: (r) => {
              const line = { event: 'action_finished', runId, cycle, action: r.id, type: r.type, status: r.status, durationMs: r.durationMs, summary: r.summary, error: r.error, reason: r.reason };
              if (r.status === 'failed') this.log.error(line, `${r.type} ${r.target} failed: ${r.error?.message ?? ''}`);
              else if (r.status === 'not_executed') this.log.warn(line, `${r.type} ${r.target}: not executed: ${r.reason ?? ''}`);
              else this.log.info(line, `${r.type} ${r.target}: ${r.status}`);
            },
            waitingForLock: (holder) => this.log.warn({ event: 'lock_wait', cycle, holder }, `waiting for another apply (${holder})`),
          },
        });
        runId = result.runId;
        this.counters.runs.set(result.status, (this.counters.runs.get(result.status) ?? 0) + 1);
        for (const r of result.results) this.counters.actions.set(`${r.type}/${r.status}`, (this.counters.actions.get(`${r.type}/${r.status}`) ?? 0) + 1);
        this.counters.lastRun = { finishedAt: this.clock(), durationMs: result.durationMs, status: result.status };
        for (const e of result.errors ?? []) this.log.error({ event: 'plan_error', runId, cycle, module: e.module, service: e.service, error: e.message }, `${e.module}: ${e.message}`);
        const causes = (result.errors ?? []).map((e) => `${e.module}: ${e.message}`);
        const line = { event: 'apply_finished', runId, cycle, status: result.status, durationMs: result.durationMs, actions: result.results.map((r) => ({ action: r.id, status: r.status })), errors: causes };
        if (result.status === 'failed') this.log.error(line, `apply ${result.status}${causes.length ? `: ${causes.join('; ')}` : ''}`);
        else this.log.info(line, `apply ${result.status}`);
        // The metrics should show what the run changed (a new backup) without waiting an interval.
        if (result.results.some((r) => r.status === 'done') && !this.stopping) void this.check('after apply');
      } catch (e) {
        this.counters.runs.set('refused', (this.counters.runs.get('refused') ?? 0) + 1);
        const code = (e as { code?: unknown }).code;
        this.log.error({ event: 'apply_refused', runId, cycle, code: typeof code === 'string' ? code : undefined, error: messageOf(e) }, `nothing applied: ${messageOf(e)}`);
      }
    })().finally(() => {
      this.applying = null;
      const again = this.applyAgain;
      this.applyAgain = null;
      if (again && !this.stopping) void this.applyNow(again.trigger, again.schedules);
    });
    return this.applying;
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      const families = [...(this.latest ? healthFamilies(this.latest.observation, this.latest.findings) : []), ...daemonFamilies(this.counters),
        ...(this.desired.services.postgres?.pitr?.enabled ? walFamilies(this.walStream.metrics) : [])];
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(req.method === 'HEAD' ? undefined : renderExposition(families));
      return;
    }
    if (path === '/healthz') {
      const body = this.liveness();
      res.writeHead(body.ok ? 200 : 503, { 'content-type': 'application/json' }).end(req.method === 'HEAD' ? undefined : JSON.stringify(body) + '\n');
      return;
    }
    if (path === '/' || path === '/status.json') {
      void this.serveStatus(req, res, path);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /, /metrics or /healthz\n');
  }

  /** The read-only status page and its data (render/status-page.ts), behind the token when there is one. */
  private async serveStatus(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const token = this.options.token;
    const query = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
    if (token && query !== null && path === '/' && sameSecret(query, token)) {
      // The token leaves the address bar: a cookie carries it from now on.
      res.writeHead(303, { location: '/', 'set-cookie': `jarvis_db_token=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/` }).end();
      return;
    }
    if (token && !this.authorized(req, token)) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' }).end('401: this status page needs its token (Authorization: Bearer TOKEN, or open /?token=TOKEN once)\n');
      return;
    }
    try {
      const { renderStatusPage, statusJson } = await import('../render/status-page.js');
      const sections = await this.board.sections(this.desired, this.latest, { applying: this.applying !== null, ...(this.counters.nextApplyAt ? { nextApplyAt: this.counters.nextApplyAt } : {}) });
      const now = this.clock();
      const body = path === '/' ? renderStatusPage(this.desired.project, sections, now, Math.min(5, this.desired.health.intervalSeconds)) : JSON.stringify(statusJson(sections, now));
      res.writeHead(200, { 'content-type': path === '/' ? 'text/html; charset=utf-8' : 'application/json', 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`the status page failed: ${messageOf(e)}\n`);
    }
  }

  private authorized(req: IncomingMessage, token: string): boolean {
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const cookie = /(?:^|;\s*)jarvis_db_token=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    return (bearer !== undefined && sameSecret(bearer, token)) || (cookie !== undefined && sameSecret(decodeURIComponent(cookie), token));
  }

  /**
   * The daemon's own liveness: `ok` (and the 200) says the daemon is alive, its health loop has
   * run within three intervals and it is not stopping; it does not say the databases are healthy.
   * That is `health`: the overall status of the latest check and when it was taken (UNKNOWN and
   * null before the first one), with the checks that were not HEALTHY; /metrics has the detail.
   */
  liveness(): Liveness {
    const now = this.clock().getTime();
    const limit = 3 * this.desired.health.intervalSeconds * 1000 + 30_000;
    const since = (this.lastCheckAt ?? this.counters.startedAt).getTime();
    const problem = this.stopping ? 'stopping' : now - since > limit ? `no health check for ${Math.round((now - since) / 1000)} s` : undefined;
    return {
      ok: !problem,
      startedAt: this.counters.startedAt.toISOString(),
      lastCheckAt: this.lastCheckAt?.toISOString() ?? null,
      health: this.latest
        ? { status: this.latest.status, checkedAt: this.latest.observation.takenAt, notHealthy: this.latest.findings.filter((f) => f.status !== 'HEALTHY').map((f) => `${f.check} ${f.status}`) }
        : { status: 'UNKNOWN', checkedAt: null, notHealthy: [] },
      configHash: this.desired.configHash,
      applying: this.applying !== null,
      nextApplyAt: this.counters.nextApplyAt?.toISOString() ?? null,
      ...(problem ? { problem } : {}),
    };
  }
}

/** Compares secrets in constant time (no early exit that a timing could reveal). */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
