/**
 * Connection errors of every service name it and its host:port and say what to check; no server
 * needed (nothing listens on port 1). The lost-connection case with a real server is in
 * test/retention/server-stopped.test.ts.
 */
import t from 'tap';
import { connectChroma, ChromaRest } from '../../src/services/chroma.js';
import { endpointOf, runningHint } from '../../src/services/endpoint.js';
import { connectPostgres } from '../../src/services/postgres.js';
import { connectRedis, openRedisSocket } from '../../src/services/redis.js';

t.test('an endpoint is host:port without credentials, with the service default port', async (t) => {
  t.equal(endpointOf('postgres', 'postgres://jarvis:secret@db.internal/jarvis'), 'db.internal:5432');
  t.equal(endpointOf('redis', 'redis://:pw@127.0.0.1:6380/0'), '127.0.0.1:6380');
  t.equal(endpointOf('chroma', 'https://chroma.example'), 'chroma.example:443');
  t.equal(runningHint('postgres', 'postgres://jarvis:pw@127.0.0.1:5432/jarvis'), 'is PostgreSQL running at 127.0.0.1:5432? check services.postgres.url');
});

t.test('a refused connection to PostgreSQL, Redis or Chroma says which server to check', async (t) => {
  await t.rejects(connectPostgres('postgres://jarvis:pw@127.0.0.1:1/jarvis', { connectTimeoutMs: 2000 }), {
    code: 'SERVICE_UNREACHABLE', message: /cannot connect to PostgreSQL at postgres:\/\/jarvis:\*\*\*@127\.0\.0\.1:1\/jarvis/, hint: 'is PostgreSQL running at 127.0.0.1:1? check services.postgres.url',
  });
  await t.rejects(connectRedis('redis://:pw@127.0.0.1:1/0', { connectTimeoutMs: 2000 }), { code: 'SERVICE_UNREACHABLE', hint: 'is Redis running at 127.0.0.1:1? check services.redis.url' });
  await t.rejects(openRedisSocket('redis://:pw@127.0.0.1:1/0', { connectTimeoutMs: 2000 }), { code: 'SERVICE_UNREACHABLE', hint: 'is Redis running at 127.0.0.1:1? check services.redis.url' });
  await t.rejects(connectChroma({ url: 'http://127.0.0.1:1' }), { code: 'SERVICE_UNREACHABLE', hint: 'is Chroma running at 127.0.0.1:1? check services.chroma.url' });
  const rest = new ChromaRest({ url: 'http://127.0.0.1:1' });
  await t.rejects(rest.call('GET', '/api/v2/heartbeat'), { code: 'SERVICE_UNREACHABLE', hint: 'is Chroma running at 127.0.0.1:1? check services.chroma.url' });
  rest.close();
});
