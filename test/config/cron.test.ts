import t from 'tap';
import { cronProblem, isValidTimezone, nextRun, parseCron, plainlyValid } from '../../src/config/cron.js';
import { JarvisError } from '../../src/errors.js';

t.test('valid five-field expressions and @ shorthands parse', async (t) => {
  for (const ok of ['0 3 * * *', '*/15 * * * *', '30 3 * * 1-5', '0 0 1 1 *', '0 3 * * MON-FRI', '0 3 * * 7', '5,35 */2 * * *', '@daily', '@hourly', '@weekly']) {
    t.equal(cronProblem(ok, 'UTC'), null, ok);
  }
});

t.test('an out-of-range field is named with its value', async (t) => {
  t.equal(cronProblem('0 25 * * *'), 'hour 25 is out of range');
  t.equal(cronProblem('60 * * * *'), 'minute 60 is out of range');
  t.equal(cronProblem('0 3 32 * *'), 'day of month 32 is out of range');
  t.equal(cronProblem('0 3 * 13 *'), 'month 13 is out of range');
  t.equal(cronProblem('0 3 * * 8'), 'day of week 8 is out of range');
  t.equal(cronProblem('0 3 0 * *'), 'day of month 0 is out of range');
});

t.test('the wrong number of fields is refused (cron-parser alone would accept 4 or 6)', async (t) => {
  t.match(cronProblem('0 3 * *'), /4 fields; expected 5/);
  t.match(cronProblem('0 0 3 * * *'), /6 fields; expected 5/);
  t.match(cronProblem(''), /0 fields/);
});

t.test('garbage, unknown shorthands and impossible dates are refused', async (t) => {
  t.match(cronProblem('a b c d e'), /minute "a" is not valid/);
  t.match(cronProblem('@often'), /unknown shorthand @often/);
  t.match(cronProblem('0 3 30 2 *'), /never occurs/);
});

t.test('timezones are checked against the IANA database', async (t) => {
  t.ok(isValidTimezone('UTC'));
  t.ok(isValidTimezone('Europe/Berlin'));
  t.notOk(isValidTimezone('Mars/Olympus'));
  t.notOk(isValidTimezone(''));
  t.throws(() => parseCron('0 3 * * *', 'Mars/Olympus'), { code: 'CONFIG_INVALID', message: /IANA timezone/ });
});

t.test('parseCron throws a JarvisError in the config message style', async (t) => {
  t.throws(() => parseCron('0 25 * * *', 'UTC'), JarvisError);
  t.throws(() => parseCron('0 25 * * *', 'UTC'), { message: '"0 25 * * *" is not a valid cron expression (hour 25 is out of range)' });
});

t.test('runs are computed in the schedule timezone', async (t) => {
  // 03:00 in Berlin is 02:00 UTC in winter.
  t.equal(nextRun('0 3 * * *', 'Europe/Berlin', new Date('2026-11-24T03:00:00Z')).toISOString(), '2026-11-25T02:00:00.000Z');
  t.equal(nextRun('0 3 * * *', 'UTC', new Date('2026-11-24T02:00:00Z')).toISOString(), '2026-11-24T03:00:00.000Z');
  t.equal(parseCron('@daily', 'UTC', new Date('2026-11-24T12:00:00Z')).next().toDate().toISOString(), '2026-11-25T00:00:00.000Z');
});

t.test('the plain expressions validated without cron-parser are ones cron-parser accepts', async (t) => {
  const { CronExpressionParser } = await import('cron-parser');
  const parses = (expression: string) => {
    try { CronExpressionParser.parse(expression, { tz: 'UTC', strict: false, currentDate: new Date(Date.UTC(2026, 0, 1)) }); return true; } catch { return false; }
  };
  const candidates = ['*', '*/1', '*/15', '*/0', '*/61', '*/7', '0', '1', '7', '07', '12', '23', '24', '31', '32', '59', '60', '1-5', '5-1', '0-59', '1-31', '1,2,3', '1-3,5', '5/10', '1-10/2', '1-10/0', 'MON', 'L', '?', '1#2', '-1', '1-', ',', ''];
  // A fixed walk through the combinations (a linear congruential sequence): the same cases on every run.
  let seed = 12345;
  const next = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
  let plain = 0;
  for (let n = 0; n < 60000; n++) {
    const fields = Array.from({ length: 5 }, () => candidates[next() % candidates.length]!);
    if (!plainlyValid(fields)) continue;
    plain++;
    if (!parses(fields.join(' '))) t.fail(`"${fields.join(' ')}" passed the plain check but cron-parser refuses it`);
  }
  t.ok(plain > 100, `the walk reached the plain check ${plain} times`);
  for (const expression of ['0 3 * * *', '*/15 * * * *', '30 3 * * 1-5', '0 0 1 * *', '0 */6 * * 0,6']) t.ok(plainlyValid(expression.split(' ')), `${expression} needs no parser`);
  for (const expression of ['0 0 31 2 *', '0 0 * * MON', '0 0 L * *']) t.notOk(plainlyValid(expression.split(' ')), `${expression} is left to cron-parser`);
  t.match(cronProblem('0 0 31 2 *'), /never occurs/);
});
