import t from 'tap';
import { describeFailure } from '../../src/cli/failure.js';
import { JarvisError } from '../../src/errors.js';
import { HOSTILE_PASSWORDS, URL_FORMS, leaked } from '../helpers/hostile-passwords.js';

/** The text without its stack frames (`    at file:line`: code locations such as .../esm/index.js, which may hold any 3 letters). */
const withoutFrames = (text: string) => text.split('\n').filter((l) => !/^\s+at /.test(l)).join('\n');

t.test('--debug prints the stack of the error and of every cause, redacted, even malformed URLs in them', async (t) => {
  for (const password of HOSTILE_PASSWORDS) {
    const url = URL_FORMS.postgres(password);
    const inner = new Error(`getaddrinfo ENOTFOUND for ${url}`);
    const aggregate = new AggregateError([inner, new Error(`refused: ${URL_FORMS.redis(password)}`)], `all attempts failed for ${url}`);
    const error = new JarvisError('SERVICE_UNREACHABLE', `cannot connect to PostgreSQL at ${url}`, { cause: aggregate });
    const plain = describeFailure(error, false);
    const debug = describeFailure(error, true);
    t.same(leaked(plain, password), [], `${password}: not in the one line`);
    t.same(leaked(withoutFrames(debug), password), [], `${password}: not in the stacks`);
    t.match(debug, /^\s+at /m, 'a stack');
    t.match(debug, /caused by:\nAggregateError: all attempts failed for postgres:\/\/\*\*\*@127\.0\.0\.1/);
    t.match(debug, /including:\nError: getaddrinfo ENOTFOUND/);
    t.match(debug, /including:\nError: refused: redis:\/\/\*\*\*@127\.0\.0\.1/);
  }
});

t.test('a cause that is not an Error is printed as text, redacted', async (t) => {
  const error = new JarvisError('SERVICE_ERROR', 'failed', { cause: { url: URL_FORMS.redis('Sp@c/i%al:P#w?d') } });
  const debug = describeFailure(error, true);
  t.match(debug, /caused by:\n\{"url":"redis:\/\/\*\*\*@127\.0\.0\.1:6999\/0"\}/);
  t.same(leaked(withoutFrames(debug), 'Sp@c/i%al:P#w?d'), []);
});

t.test('a cause that refers back to its error is printed once', async (t) => {
  const a = new Error('a');
  const b = new Error('b', { cause: a });
  (a as { cause?: unknown }).cause = b;
  t.equal(describeFailure(a, true).split('caused by:').length, 3);
});
