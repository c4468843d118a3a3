import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Finding } from '../../src/engine/types.js';
import { afterDelivery, alertTransitions, deliverAlert, processAlerts, readAlertState, type Alert } from '../../src/health/alerts.js';

const finding = (check: string, status: Finding['status']): Finding => ({ check, service: check.split('.')[0]!, status, value: status === 'CRITICAL' ? 0 : 1, threshold: 'critical when no', message: `${check} ${status}` });
const at = new Date('2026-11-24T10:00:00Z');

interface Received { body: Alert; at: number }

/** A webhook receiver on a free port; `answers` are the status codes of successive requests (then 200). */
async function receiver(t: Test, answers: number[] = []): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      received.push({ body: JSON.parse(body) as Alert, at: Date.now() });
      res.statusCode = answers.shift() ?? 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

t.test('an alert is raised on the change into CRITICAL and on the change out of it, not while it stays', async (t) => {
  const none = { critical: {} };
  const into = alertTransitions(none, [finding('redis.up', 'CRITICAL'), finding('postgres.up', 'HEALTHY')], at, 'jarvis', 'host1');
  t.same(into.map((a) => [a.event, a.check]), [['critical', 'redis.up']]);
  t.match(into[0], { source: 'jarvis-db', project: 'jarvis', host: 'host1', status: 'CRITICAL', at: '2026-11-24T10:00:00.000Z' });
  const delivered = afterDelivery(none, into);
  t.same(alertTransitions(delivered, [finding('redis.up', 'CRITICAL')], at, 'jarvis'), [], 'still CRITICAL: nothing new');
  t.same(alertTransitions(delivered, [finding('redis.up', 'UNKNOWN')], at, 'jarvis'), [], 'UNKNOWN is not a recovery');
  const back = alertTransitions(delivered, [finding('redis.up', 'WARNING')], new Date('2026-11-24T10:05:00Z'), 'jarvis');
  t.match(back, [{ event: 'resolved', check: 'redis.up', status: 'WARNING', criticalSince: '2026-11-24T10:00:00.000Z' }]);
  t.same(afterDelivery(delivered, back), none);
});

t.test('a webhook that fails twice is retried with growing waits and the alert arrives', async (t) => {
  const hook = await receiver(t, [500, 503]);
  const [alert] = alertTransitions({ critical: {} }, [finding('redis.up', 'CRITICAL')], at, 'jarvis');
  const result = await deliverAlert(hook.url, alert!, { retries: 3, backoffMs: 50 });
  t.match(result, { ok: true, attempts: 3 });
  t.equal(hook.received.length, 3);
  t.same(hook.received.map((r) => r.body), [alert, alert, alert], 'the same JSON body each time');
  const gaps = [hook.received[1]!.at - hook.received[0]!.at, hook.received[2]!.at - hook.received[1]!.at];
  t.ok(gaps[0]! >= 45 && gaps[1]! >= 95, `backoff doubles (${gaps.join(', ')} ms)`);
});

t.test('retries stop at health.alerts.retries, and a 4xx is not retried', async (t) => {
  const down = await receiver(t, [500, 500, 500, 500]);
  const [alert] = alertTransitions({ critical: {} }, [finding('redis.up', 'CRITICAL')], at, 'jarvis');
  const failed = await deliverAlert(down.url, alert!, { retries: 2, backoffMs: 10 });
  t.match(failed, { ok: false, attempts: 3, error: /HTTP 500/ });
  t.equal(down.received.length, 3);
  const refusing = await receiver(t, [404]);
  t.match(await deliverAlert(refusing.url, alert!, { retries: 3, backoffMs: 10 }), { ok: false, attempts: 1, error: /HTTP 404/ });
  t.equal(refusing.received.length, 1);
});

t.test('credentials in the webhook URL are sent as Basic authentication', async (t) => {
  const auth: string[] = [];
  const [alert] = alertTransitions({ critical: {} }, [finding('redis.up', 'CRITICAL')], at, 'jarvis');
  const server = createServer((req, res) => { auth.push(String(req.headers.authorization)); res.end(); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://alert%40ops:p%3Ass@127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  t.match(await deliverAlert(url, alert!, { retries: 0 }), { ok: true });
  t.same(auth, [`Basic ${Buffer.from('alert@ops:p:ss').toString('base64')}`]);
});

t.test('an unreachable webhook fails clearly without a password in the message', async (t) => {
  const [alert] = alertTransitions({ critical: {} }, [finding('redis.up', 'CRITICAL')], at, 'jarvis');
  const r = await deliverAlert('http://user:hunter22@127.0.0.1:1/hook', alert!, { retries: 1, backoffMs: 10 });
  t.equal(r.ok, false);
  t.match(r.error, /^http:\/\/user:\*\*\*@127\.0\.0\.1:1\/hook: /);
  t.notMatch(r.error, /hunter22/);
});

t.test('processAlerts remembers what was delivered in storage; an undelivered alert is sent again at the next check', async (t) => {
  const storage = t.testdir();
  const hook = await receiver(t, [500, 500]);
  const first = await processAlerts(storage, hook.url, [finding('redis.up', 'CRITICAL')], at, 'jarvis', { retries: 1, backoffMs: 10 });
  t.match(first, [{ ok: false, attempts: 2 }]);
  t.same(await readAlertState(storage), { critical: {} }, 'nothing recorded as delivered');
  const second = await processAlerts(storage, hook.url, [finding('redis.up', 'CRITICAL')], new Date('2026-11-24T10:01:00Z'), 'jarvis', { retries: 1, backoffMs: 10 });
  t.match(second, [{ ok: true }]);
  t.same(await readAlertState(storage), { critical: { 'redis.up': { since: '2026-11-24T10:01:00.000Z' } } });
  t.same(await processAlerts(storage, hook.url, [finding('redis.up', 'CRITICAL')], new Date('2026-11-24T10:02:00Z'), 'jarvis', { retries: 1 }), [], 'no second alert while it stays CRITICAL');
  const resolved = await processAlerts(storage, hook.url, [finding('redis.up', 'HEALTHY')], new Date('2026-11-24T10:03:00Z'), 'jarvis', { retries: 1 });
  t.match(resolved, [{ ok: true, alert: { event: 'resolved' } }]);
  t.same(hook.received.map((r) => r.body.event), ['critical', 'critical', 'critical', 'resolved']);
  t.same(await readAlertState(storage), { critical: {} });
});
