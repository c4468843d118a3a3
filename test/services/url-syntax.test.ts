import t from 'tap';
import { splitWrittenUrl, urlSyntaxMessage, urlSyntaxProblem } from '../../src/services/url-syntax.js';
import { COLON_PASSWORD, HOSTILE_PASSWORDS, URL_FORMS, leaked } from '../helpers/hostile-passwords.js';

t.test('the userinfo runs to the last @, the host from there to the next / ? or #', async (t) => {
  t.same(splitWrittenUrl('postgres://spec:Sp@c/i%al:P#w?d@127.0.0.1:33703/jarvis'),
    { scheme: 'postgres', userinfo: 'spec:Sp@c/i%al:P#w?d', host: '127.0.0.1', port: '33703' });
  t.same(splitWrittenUrl('redis://[::1]:6379/0'), { scheme: 'redis', host: '[::1]', port: '6379' });
  t.equal(splitWrittenUrl('127.0.0.1:5432'), undefined, 'no scheme://');
});

t.test('every password with an unencoded @ / # ? or a broken %-escape is refused, in every URL form, in words that quote none of it', async (t) => {
  for (const password of HOSTILE_PASSWORDS) {
    for (const [service, form] of Object.entries(URL_FORMS)) {
      const message = urlSyntaxMessage(form(password));
      t.ok(message, `${service}: ${password} is refused`);
      t.same(leaked(message ?? '', password), [], `${service}: ${password} is not quoted`);
    }
  }
});

t.test('the same passwords percent-encoded parse as written; so does an unencoded : after the first', async (t) => {
  for (const password of [...HOSTILE_PASSWORDS.filter((p) => !p.includes('%ce')).map(encodeURIComponent), COLON_PASSWORD]) {
    for (const [service, form] of Object.entries(URL_FORMS)) t.equal(urlSyntaxProblem(form(password)), undefined, `${service}: ${password}`);
  }
  for (const url of ['postgres://h/d', 'postgresql://jarvis@db.internal:5432/jarvis?sslmode=require', 'redis://127.0.0.1:6379/0',
    'rediss://:pw@[::1]:6380/2', 'http://127.0.0.1:8000', 'https://hooks.example.com/T0/B1?x=1', 'postgres://u:p@%2Fvar%2Frun%2Fpostgresql/d']) {
    t.equal(urlSyntaxProblem(url), undefined, url);
  }
});

t.test('each way a URL can be misread has its own reason', async (t) => {
  const cases: [string, RegExp][] = [
    ['postgres://u:a@b@h/d', /more than one @/],
    ['postgres://u:a/b@h/d', /a \/, \?, # or \\ before the last @/],
    ['postgres://u:a#b@h/d', /a \/, \?, # or \\ before the last @/],
    ['postgres://u:a?b@h/d', /a \/, \?, # or \\ before the last @/],
    ['postgres://u:a%zz@h/d', /a % before the last @ that does not start a %-escape/],
    ['postgres://u:a%ce@h/d', /does not decode to UTF-8/],
    ['postgres://u:a b@h/d', /must be percent-encoded/],
    ['postgres://u:p@h:54x2/d', /the port is not a number/],
    ['postgres://u:p@h:99999/d', /the port is above 65535/],
    ['redis://u:p@h"x:6379/0', /the host holds a character/],
    ['postgres://h/d?application_name=a@b', /a \/, \?, # or \\ before the last @/],
  ];
  for (const [url, reason] of cases) t.match(urlSyntaxProblem(url), reason, url);
});
