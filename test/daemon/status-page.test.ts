/**
 * The daemon's status page in a real browser (Debian's chromium driven by playwright-core) on a
 * sandbox: every service is listed; stopping the sandbox Redis makes its row CRITICAL within one
 * health interval, without a reload; off loopback a request without the token gets 401, and the
 * token opens it (once by ?token=, then a cookie); no password is on the page.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { freePort } from '../../src/sandbox/index.js';
import { startDaemon } from '../helpers/daemon-process.js';
import { withSandbox } from '../helpers/sandbox.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'page-token-0123456789abcdef';

t.test('the status page lists every service, follows a Redis outage without a reload, needs its token off loopback and shows no password', { skip: existsSync(CHROMIUM) ? false : 'Debian chromium is not installed (.ci/run installs it)' }, async (t) => {
  const state = await withSandbox(t, ['postgres', 'redis']);
  const dir = t.testdir();
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', '  redis: { url: "${JARVIS_REDIS_URL}" }', 'storage:', `  path: ${join(dir, 'backups')}`,
    'backups:', '  - { name: pg-nightly, service: postgres, cron: "0 3 1 1 *", keep: { last: 3 } }', 'health:', '  interval: 2s', '',
  ].join('\n'));
  const port = await freePort();
  const d = startDaemon(t, { config, port, state, host: '0.0.0.0', args: ['--listen-token-env', 'JARVIS_STATUS_TOKEN'], env: { JARVIS_STATUS_TOKEN: TOKEN } });
  await d.until('the first health check', () => d.lines.some((l) => l.event === 'health_checked'), 60_000);
  t.ok(d.lines.some((l) => l.event === 'status_page' && l.token === 'required'), 'the start-up log says the page needs its token');

  const base = `http://127.0.0.1:${port}`;
  t.equal((await fetch(`${base}/`)).status, 401, 'no token: 401');
  t.equal((await fetch(`${base}/status.json`, { headers: { authorization: 'Bearer wrong' } })).status, 401, 'a wrong token: 401');
  t.equal((await fetch(`${base}/status.json`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200, 'the bearer token opens it');
  t.equal((await fetch(`${base}/metrics`)).status, 200, '/metrics stays open for Prometheus');

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${base}/?token=${TOKEN}`);
  t.equal(new URL(page.url()).search, '', 'the token left the address bar (a cookie carries it)');
  let navigations = 0;
  page.on('framenavigated', () => { navigations++; });
  const services = page.locator('#services table').first();
  for (const name of ['PostgreSQL', 'Redis', 'machine', 'backups']) t.ok(await services.locator('tr', { hasText: name }).count(), `${name} is listed`);
  const redisRow = services.locator('tr', { hasText: 'Redis' });
  t.match(await redisRow.innerText(), /HEALTHY/, 'Redis is healthy first');

  process.kill(state.redis!.pid, 'SIGKILL');
  const stoppedAt = Date.now();
  // Runs in the page (a string: the test's TypeScript has no DOM types).
  await page.waitForFunction(`[...document.querySelectorAll('#services table tr')].some((tr) => /Redis/.test(tr.textContent) && /CRITICAL/.test(tr.textContent))`, undefined, { timeout: 30_000 });
  const took = Date.now() - stoppedAt;
  t.match(await redisRow.innerText(), /CRITICAL/, 'the Redis row turned CRITICAL');
  t.ok(took < 2000 + 5000 + 5000, `within a health interval and a refresh (${took} ms)`);
  t.equal(navigations, 0, 'without a reload');
  t.match(await services.locator('tr', { hasText: 'PostgreSQL' }).innerText(), /HEALTHY/, 'PostgreSQL is still healthy');

  const text = await page.content();
  const secrets = [state.postgres!.url, state.redis!.url].map((u) => decodeURIComponent(new URL(u).password)).filter(Boolean);
  t.ok(secrets.length >= 1);
  for (const secret of secrets) t.notOk(text.includes(secret), 'no password on the page');
  t.notOk(text.includes(TOKEN), 'nor the token');
});
