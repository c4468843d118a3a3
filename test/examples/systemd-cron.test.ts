/**
 * The systemd units and the crontab line are read by the real parsers where the machine has
 * them: `systemd-analyze verify` (unknown keys, bad values, a timer without its service) and
 * cron-parser for the schedule. The only complaint allowed is that /usr/local/bin/jarvis-db is
 * not installed on the test machine.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CronExpressionParser } from 'cron-parser';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const UNITS = ['jarvis-db-apply.service', 'jarvis-db-apply.timer', 'jarvis-db-daemon.service'];
const run = promisify(execFile);
const systemdAnalyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));

t.test('systemd-analyze verify finds nothing wrong in the units', { skip: systemdAnalyze ? false : 'systemd-analyze is not installed' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-db-units-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const unit of UNITS) await copyFile(join(ROOT, 'examples/systemd', unit), join(dir, unit));
  const result = await run(systemdAnalyze!, ['verify', '--man=no', ...UNITS.map((u) => join(dir, u))], { cwd: dir })
    .catch((e: { stdout: string; stderr: string }) => e);
  const complaints = `${result.stdout}${result.stderr}`.split('\n').filter(Boolean)
    .filter((line) => !/Command \/usr\/local\/bin\/jarvis-db is not executable/.test(line));
  t.same(complaints, [], 'no unknown key, no bad value, the timer finds its service');
});

t.test('the timer fires every 15 minutes', { skip: systemdAnalyze ? false : 'systemd-analyze is not installed' }, async (t) => {
  const timer = readFileSync(join(ROOT, 'examples/systemd/jarvis-db-apply.timer'), 'utf8');
  const calendar = /^OnCalendar=(.+)$/m.exec(timer)![1]!;
  const { stdout } = await run(systemdAnalyze!, ['calendar', '--iterations=3', calendar]);
  const times = [...stdout.matchAll(/(\d{2}):(\d{2}):00/g)].map((m) => Number(m[2]));
  t.ok(times.length >= 3 && times.every((minute) => minute % 15 === 0), `${calendar}: ${times.join(', ')}`);
});

t.test('the crontab line has a valid schedule, a user and the apply command', async (t) => {
  const lines = readFileSync(join(ROOT, 'examples/cron/jarvis-db.cron'), 'utf8').split('\n')
    .filter((l) => l.trim() && !l.startsWith('#') && !/^[A-Z_]+=/.test(l));
  t.equal(lines.length, 1, 'one job');
  const fields = lines[0]!.split(/\s+/);
  const schedule = fields.slice(0, 5).join(' ');
  const next = CronExpressionParser.parse(schedule, { currentDate: new Date('2026-11-25T09:07:00Z'), tz: 'UTC' }).next().toDate();
  t.equal(next.toISOString(), '2026-11-25T09:15:00.000Z', `${schedule} fires every 15 minutes`);
  t.equal(fields[5], 'jarvis-db', 'runs as the jarvis-db user (the /etc/cron.d format has a user field)');
  t.notMatch(lines[0]!, /%/, 'no % (cron turns it into a newline)');
});
