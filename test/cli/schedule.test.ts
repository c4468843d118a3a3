/** `jarvis-db schedule [--next N]` through the compiled CLI, on a catalog made without a server. */
import t from 'tap';
import { join } from 'node:path';
import { cli, writeConfig } from '../engine/fixtures/cli.js';
import { publishBackup } from './fixtures/catalog.js';

t.test('schedule lists each schedule with its last backup, whether it is due, and its next runs', async (t) => {
  const dir = t.testdir();
  const config = await writeConfig(dir, [
    'version: 1',
    'services: { postgres: { url: "postgres://nobody@127.0.0.1:1/none" }, redis: { url: "redis://127.0.0.1:1/0" } }',
    'storage: { path: ./backups }',
    'backups:',
    '  - { name: pg-hourly, service: postgres, cron: "0 * * * *", keep: { last: 2 } }',
    '  - { name: redis-daily, service: redis, cron: "30 2 * * *", timezone: Europe/Paris, keep: { last: 2 } }',
  ]);
  // A pg backup from just now: not due before the next full hour (unless the hour turns during the test).
  await publishBackup(join(dir, 'backups'), 'postgres', 'pg-hourly', new Date());
  const env = { JARVIS_DB_CONFIG: config, JARVIS_DB_TEST_MODULE: undefined };

  const json = cli(['schedule', '--next', '3', '--json'], env);
  t.equal(json.code, 0, json.stderr);
  const { schedules } = JSON.parse(json.stdout) as { schedules: { name: string; due: boolean; neverRan: boolean; nextRuns: string[]; lastBackupAt: string | null }[] };
  t.same(schedules.map((s) => [s.name, s.neverRan, s.nextRuns.length]), [['pg-hourly', false, 3], ['redis-daily', true, 3]]);
  t.equal(schedules[1]!.due, true);
  for (const s of schedules) t.ok(s.nextRuns.every((r, i) => i === 0 || Date.parse(r) > Date.parse(s.nextRuns[i - 1]!)), 'next runs ascend');
  t.ok(schedules[1]!.nextRuns.every((r) => /T0[01]:30:00\.000Z$/.test(r)), '02:30 in Paris is 00:30 or 01:30 UTC');

  const text = cli(['schedule', '--next', '2'], env);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^SCHEDULE +SERVICE +CRON +TIMEZONE +LAST BACKUP +STATUS +NEXT RUN$/m);
  t.match(text.stdout, /^redis-daily +redis +30 2 \* \* \* +Europe\/Paris +never +due: never backed up +/m);
  t.match(text.stdout, /^Next runs of pg-hourly:\n {2}\d{4}-\d\d-\d\d \d\d:00 UTC\n {2}\d{4}-\d\d-\d\d \d\d:00 UTC$/m);

  const bad = cli(['schedule', '--next', 'many'], env);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /--next must be a whole number from 1 to 1000 \(got "many"\)/);
});
