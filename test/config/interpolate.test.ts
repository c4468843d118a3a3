import t from 'tap';
import { interpolateString } from '../../src/config/interpolate.js';

const env = { HOST: 'db.local', EMPTY: '', PORT: '5433' };

t.test('${VAR} is replaced by the variable', async (t) => {
  t.same(interpolateString('postgres://${HOST}:${PORT}/jarvis', env), { ok: true, value: 'postgres://db.local:5433/jarvis', references: ['HOST', 'PORT'] });
});

t.test('${VAR:-default} uses the default when VAR is unset or empty, and VAR otherwise', async (t) => {
  t.match(interpolateString('${NOPE:-redis://127.0.0.1:6379/0}', env), { ok: true, value: 'redis://127.0.0.1:6379/0' });
  t.match(interpolateString('${EMPTY:-fallback}', env), { ok: true, value: 'fallback' });
  t.match(interpolateString('${HOST:-fallback}', env), { ok: true, value: 'db.local' });
  t.match(interpolateString('${NOPE:-}', env), { ok: true, value: '' });
});

t.test('an unset variable without default is an error naming it', async (t) => {
  const r = interpolateString('x ${JARVIS_PG_URL} y', {});
  t.equal(r.ok, false);
  if (!r.ok) t.match(r.errors[0], /JARVIS_PG_URL is not set/);
});

t.test('an empty variable without default is its empty value, not an error', async (t) => {
  t.match(interpolateString('a${EMPTY}b', env), { ok: true, value: 'ab' });
});

t.test('$${ writes a literal ${ and is not interpolated', async (t) => {
  t.match(interpolateString('cost: $${HOST} and ${HOST}', env), { ok: true, value: 'cost: ${HOST} and db.local' });
});

t.test('text without references is unchanged, a lone $ included', async (t) => {
  t.match(interpolateString('pa$$word $HOST {x}', env), { ok: true, value: 'pa$$word $HOST {x}' });
});

t.test('malformed references are errors', async (t) => {
  for (const bad of ['${', '${HOST', '${}', '${1ABC}', '${A B}', '${A-B}']) {
    const r = interpolateString(bad, env);
    t.equal(r.ok, false, `${bad} is refused`);
  }
});

t.test('a value is inserted verbatim: no second round of interpolation', async (t) => {
  t.match(interpolateString('${TRICK}', { TRICK: '${HOST}' }), { ok: true, value: '${HOST}' });
});
