/**
 * Alerts: a JSON POST to `health.alerts.webhook` when a check goes into CRITICAL and when it
 * comes back out (HEALTHY or WARNING). What was delivered is remembered in
 * `<storage>/health/alerts.json`, so a check run from cron alerts on changes just as the daemon
 * does, and an alert whose delivery failed is sent again at the next check. UNKNOWN changes
 * nothing: an unmeasurable check is neither a new emergency nor a recovery.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Finding } from '../engine/types.js';
import { writeFileAtomic } from '../storage/durable.js';
import { messageOf } from '../errors.js';
import { redact, redactUrl } from '../services/redact.js';

export interface AlertState {
  /** Checks whose CRITICAL was delivered, with when it started. */
  critical: Record<string, { since: string }>;
}

/** The finding itself, and what the receiver needs to route it. */
export interface Alert extends Finding {
  source: 'jarvis-db';
  project: string;
  host: string;
  event: 'critical' | 'resolved';
  at: string;
  /** For a resolved alert: when the CRITICAL began. */
  criticalSince?: string;
}

/** Pure: the alerts a set of findings raises against what was delivered before. */
export function alertTransitions(state: AlertState, findings: Finding[], at: Date, project: string, host = hostname()): Alert[] {
  const alerts: Alert[] = [];
  for (const f of findings) {
    const was = state.critical[f.check];
    const base = { source: 'jarvis-db' as const, project, host, check: f.check, service: f.service, status: f.status, value: f.value, threshold: f.threshold, message: f.message, at: at.toISOString() };
    if (f.status === 'CRITICAL' && !was) alerts.push({ ...base, event: 'critical' });
    else if ((f.status === 'HEALTHY' || f.status === 'WARNING') && was) alerts.push({ ...base, event: 'resolved', criticalSince: was.since });
  }
  return alerts;
}

/** Pure: the state after some alerts were delivered (the others are left to send again). */
export function afterDelivery(state: AlertState, delivered: Alert[]): AlertState {
  const critical = { ...state.critical };
  for (const a of delivered) {
    if (a.event === 'critical') critical[a.check] = { since: a.at };
    else delete critical[a.check];
  }
  return { critical };
}

function statePath(storagePath: string): string {
  return join(storagePath, 'health', 'alerts.json');
}

export async function readAlertState(storagePath: string): Promise<AlertState> {
  try {
    const parsed = JSON.parse(await readFile(statePath(storagePath), 'utf8')) as Partial<AlertState>;
    return { critical: parsed.critical && typeof parsed.critical === 'object' ? parsed.critical : {} };
  } catch {
    return { critical: {} };
  }
}

export async function writeAlertState(storagePath: string, state: AlertState): Promise<void> {
  await mkdir(join(storagePath, 'health'), { recursive: true });
  await writeFileAtomic(statePath(storagePath), JSON.stringify(state, null, 2) + '\n');
}

export interface DeliveryOptions {
  retries: number;
  /** First wait between attempts; doubled each time (1 s, 2 s, 4 s, ...). */
  backoffMs?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface DeliveryResult { alert: Alert; ok: boolean; attempts: number; error?: string }

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * POSTs one alert, retrying network errors, 5xx and 429 with exponential backoff. A 4xx other
 * than 429 is not retried: the receiver has said the request itself is wrong.
 */
export async function deliverAlert(webhook: string, alert: Alert, options: DeliveryOptions): Promise<DeliveryResult> {
  const backoff = options.backoffMs ?? 1000;
  // fetch refuses URLs with credentials: they travel as Basic authentication instead.
  const url = new URL(webhook);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'jarvis-db' };
  if (url.username || url.password) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  let error = '';
  for (let attempt = 1; attempt <= options.retries + 1; attempt++) {
    if (options.signal?.aborted) break;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify(alert),
        signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return { alert, ok: true, attempts: attempt };
      error = `HTTP ${response.status}`;
      if (response.status < 500 && response.status !== 429) return { alert, ok: false, attempts: attempt, error: `${redactUrl(webhook)}: ${error}` };
    } catch (e) {
      error = redact(messageOf(e));
    }
    if (attempt <= options.retries) await sleep(backoff * 2 ** (attempt - 1), options.signal);
  }
  return { alert, ok: false, attempts: options.retries + 1, error: `${redactUrl(webhook)}: ${error}` };
}

/** Raises and delivers the alerts of one check; records what was delivered. */
export async function processAlerts(
  storagePath: string, webhook: string, findings: Finding[], at: Date, project: string, options: DeliveryOptions,
): Promise<DeliveryResult[]> {
  const state = await readAlertState(storagePath);
  const alerts = alertTransitions(state, findings, at, project);
  if (!alerts.length) return [];
  const results: DeliveryResult[] = [];
  for (const alert of alerts) results.push(await deliverAlert(webhook, alert, options));
  await writeAlertState(storagePath, afterDelivery(state, results.filter((r) => r.ok).map((r) => r.alert)));
  return results;
}
