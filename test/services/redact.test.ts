import t from 'tap';
import { redact, redactUrl, registerSecret } from '../../src/services/redact.js';
import { COLON_PASSWORD, HOSTILE_PASSWORDS, URL_FORMS, leaked } from '../helpers/hostile-passwords.js';

t.test('replaces the password of a URL by ***', async (t) => {
  t.equal(redactUrl('postgres://jarvis:s3cr%40t@db:5432/jarvis'), 'postgres://jarvis:***@db:5432/jarvis');
  t.equal(redactUrl('redis://:hunter22@127.0.0.1:6379/0'), 'redis://:***@127.0.0.1:6379/0');
});

t.test('leaves a URL without a password as it is', async (t) => {
  t.equal(redactUrl('http://127.0.0.1:8000'), 'http://127.0.0.1:8000');
  t.equal(redactUrl('postgres://jarvis@db/jarvis'), 'postgres://jarvis@db/jarvis');
});

t.test('removes passwords that come from the environment, even outside a URL', async (t) => {
  const env = { JARVIS_PG_URL: 'postgres://u:pa55word!@h/db', JARVIS_BACKUP_KEY: 'correct horse' };
  const out = redact('connecting with pa55word! and key correct horse', env);
  t.notMatch(out, /pa55word/);
  t.notMatch(out, /correct horse/);
});

t.test('removes registered secrets', async (t) => {
  registerSecret('salt-value-123');
  t.equal(redact('hash salted with salt-value-123', {}), 'hash salted with ***');
});

t.test('a password written without percent-encoding is hidden whole, in every URL form and every context', async (t) => {
  for (const password of [...HOSTILE_PASSWORDS, COLON_PASSWORD]) {
    for (const [service, form] of Object.entries(URL_FORMS)) {
      const url = form(password);
      const contexts = [
        url,
        `cannot connect to PostgreSQL at ${url}: connect ECONNREFUSED`,
        JSON.stringify({ url, note: 'mail me at ops@example.com' }),
        `${url}\n    at Client.connect (node_modules/pg/lib/client.js:1:1)`,
        `"${url}" and ${url.toUpperCase()}`,
      ];
      for (const text of contexts) {
        t.same(leaked(redact(text, {}), password), [], `${service}: ${JSON.stringify(password)} in ${JSON.stringify(text.slice(0, 40))}…`);
        t.same(leaked(redactUrl(text), password), [], `redactUrl: ${service}: ${JSON.stringify(password)}`);
      }
    }
  }
});

t.test('a malformed URL keeps only its scheme and what follows its last @', async (t) => {
  t.equal(redactUrl('postgres://spec:Sp@c/i%al:P#w?d@127.0.0.1:33703/jarvis'), 'postgres://***@127.0.0.1:33703/jarvis');
  t.equal(redactUrl('redis://:a/b@127.0.0.1:6379/0'), 'redis://***@127.0.0.1:6379/0');
  t.equal(redactUrl('see http://u:p%zz@h:8000 now'), 'see http://***@h:8000 now');
});

t.test('the same password percent-encoded still shows the user and *** in place of the password', async (t) => {
  for (const password of [...HOSTILE_PASSWORDS, COLON_PASSWORD]) {
    const encoded = encodeURIComponent(password);
    if (password.includes('%ce')) continue; // not UTF-8: it has no encoded form that decodes back to it
    t.equal(redactUrl(URL_FORMS.postgres(encoded)), 'postgres://spec:***@127.0.0.1:5999/jarvis', password);
    t.equal(redactUrl(URL_FORMS.redis(encoded)), 'redis://default:***@127.0.0.1:6999/0', password);
    t.equal(redactUrl(URL_FORMS.chroma(encoded)), 'http://spec:***@127.0.0.1:8999', password);
  }
  t.equal(redactUrl(URL_FORMS.postgres(COLON_PASSWORD)), 'postgres://spec:***@127.0.0.1:5999/jarvis', 'an unencoded : parses as written');
});

t.test('an @ after the host hides everything up to it (better too much than a password)', async (t) => {
  t.equal(redactUrl('postgres://h/d?application_name=a@b'), 'postgres://***@b');
  t.equal(redactUrl('{"url":"postgres://h/d","mail":"a@b"}'), '{"url":"postgres://h/d","mail":"a@b"}', 'a quote ends the URL');
});

t.test('a password given as a query parameter is hidden', async (t) => {
  t.equal(redactUrl('postgres://h/d?sslmode=require&password=Qx7-secret'), 'postgres://h/d?sslmode=require&password=***');
  t.equal(redact('at postgres://h/d?password=Qx7-secret', { PG: 'postgres://h/d?password=Qx7-secret' }).includes('Qx7'), false);
});

t.test('the environment: a URL whose password is not percent-encoded has its whole userinfo and its pieces registered', async (t) => {
  for (const password of HOSTILE_PASSWORDS) {
    const env = { JARVIS_PG_URL: URL_FORMS.postgres(password), JARVIS_REDIS_URL: URL_FORMS.redis(password) };
    // What a client that misread the URL might print: the pieces as host, database, fragment.
    const misread = URL.canParse(env.JARVIS_PG_URL) ? new URL(env.JARVIS_PG_URL) : undefined;
    const text = [
      ...(misread ? [`host "${misread.hostname}"`, `database "${misread.pathname.slice(1)}"`, `fragment ${misread.hash}`] : []),
      `password ${password}`, `auth spec:${password}`,
    ].join('\n');
    const pieces = password.split(/[@/?#]/).filter((p) => p.length >= 4);
    const out = redact(text, env);
    t.notOk(out.includes(password), `${password}: the password`);
    t.notOk(out.includes(`spec:${password}`), `${password}: the userinfo`);
    for (const piece of pieces) t.notOk(out.includes(piece), `${password}: the piece ${piece}`);
  }
});

t.test('a module path or registry URL in the environment makes no word of a path secret', async (t) => {
  const env = {
    NODE_OPTIONS: '--import=file:///work/main/node_modules/@tapjs/typescript/dist/esm/import.mjs',
    npm_config_registry: 'https://registry.npmjs.org/',
    SOME_PATH_URL: 'git+ssh://git@github.com/owner/repo.git',
  };
  const text = 'backup written to /work/main/backups/postgres/nightly (registry https://registry.npmjs.org/, module main)';
  t.equal(redact(text, env), text);
  t.equal(redact('file:///work/main/node_modules/@tapjs/x.mjs', {}), 'file:///work/main/node_modules/@tapjs/x.mjs', 'an empty authority has no userinfo');
  t.equal(redact('postgres://u:p@ss/w@db:5432/x', {}), 'postgres://***@db:5432/x', 'a service URL still hides everything up to its last @');
});
