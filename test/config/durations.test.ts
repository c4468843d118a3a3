import t from 'tap';
import { checkDuration, formatDuration, parseDuration } from '../../src/config/durations.js';
import { JarvisError } from '../../src/errors.js';

t.test('every unit of the contract converts to seconds', async (t) => {
  t.equal(parseDuration('30s'), 30);
  t.equal(parseDuration('15m'), 15 * 60);
  t.equal(parseDuration('12h'), 12 * 3600);
  t.equal(parseDuration('7d'), 7 * 86400);
  t.equal(parseDuration('2w'), 14 * 86400);
  t.equal(parseDuration('6mo'), 6 * 30 * 86400, 'a month counts 30 days');
  t.equal(parseDuration('2y'), 2 * 365 * 86400, 'a year counts 365 days');
});

t.test('malformed, zero, negative and spaced durations are refused with a sentence', async (t) => {
  for (const bad of ['', '7', 'd', '7 d', ' 7d', '7D', '-1d', '1.5h', '0s', '00d', '3x', '7days', '1mon', '1e3s']) {
    const r = checkDuration(bad);
    t.type(r, 'string', `"${bad}" is refused`);
    t.throws(() => parseDuration(bad), JarvisError, `parseDuration("${bad}") throws`);
  }
  t.match(checkDuration('0s') as string, /longer than zero/);
});

t.test('checkDuration returns the amount and unit', async (t) => {
  t.same(checkDuration('6mo'), { amount: 6, unit: 'mo', seconds: 15_552_000 });
});

t.test('formatDuration picks the largest unit that divides exactly', async (t) => {
  t.equal(formatDuration(90), '90s');
  t.equal(formatDuration(7200), '2h');
  t.equal(formatDuration(604_800), '1w');
  t.equal(formatDuration(31_536_000), '1y');
});
