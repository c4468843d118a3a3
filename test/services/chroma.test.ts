/** Chroma errors read as what they are on a server: the redacted URL and what to check, no browser advice. */
import t from 'tap';
import { createServer } from 'node:net';
import { observeHealth } from '../../src/health/check.js';
import { chromaHeartbeat, connectChroma } from '../../src/services/chroma.js';
import { redactUrl } from '../../src/services/redact.js';
import { desiredFor } from '../health/fixture.js';

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test('a Chroma that does not answer is named by its redacted URL with what to check, not the client\'s CORS advice', async (t) => {
  const url = `http://jarvis:s3cret-pass@127.0.0.1:${await closedPort()}`;
  const error = await connectChroma({ url }).then(() => null, (e: Error & { code?: string }) => e);
  t.equal(error?.code, 'SERVICE_UNREACHABLE');
  t.equal(error?.message.startsWith(`cannot reach Chroma at ${redactUrl(url)}: `), true, error?.message ?? 'no error');
  t.match(error?.message, /check that the Chroma server runs and that services\.chroma\.url points at it from this machine/);
  t.notMatch(error?.message, /browser|CORS|CHROMA_SERVER_CORS/);
  t.notMatch(error?.message, /s3cret-pass/);
});

t.test('health check says the same for chroma.up', async (t) => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const observed = await observeHealth(desiredFor({ services: { chroma: { url } }, storage: { path: t.testdir() } }), { services: ['chroma'] });
  const up = observed.samples.find((s) => s.check === 'chroma.up');
  t.equal(up?.value, 0);
  t.match(up?.problem, new RegExp(`^cannot reach Chroma at ${redactUrl(url).replace(/[.]/g, '\\.')}: no HTTP answer`));
  t.notMatch(up?.problem, /browser|CORS/);
});

t.test('the plan\'s heartbeat over node:http fails exactly as the chromadb client\'s connect does', async (t) => {
  const url = `http://jarvis:s3cret-pass@127.0.0.1:${await closedPort()}`;
  const ours = await chromaHeartbeat({ url }).then(() => null, (e: Error & { code?: string; hint?: string }) => e);
  const theirs = await connectChroma({ url }).then(() => null, (e: Error & { code?: string; hint?: string }) => e);
  t.equal(ours?.code, 'SERVICE_UNREACHABLE');
  t.equal(ours?.message, theirs?.message);
  t.equal(ours?.hint, theirs?.hint);
});
