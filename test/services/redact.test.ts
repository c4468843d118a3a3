import t from 'tap';
import { redact, redactUrl, registerSecret } from '../../src/services/redact.js';

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
