/**
 * Alert rules from the checks table (src/health/rules.ts, `jarvis-db alerts rules`): one alert per
 * check with a threshold and a rule per level; the config's thresholds reach the expressions;
 * `promtool check rules` accepts the file and `promtool test rules` shows the alerts firing as
 * `jarvis-db health check` would judge (Debian's prometheus package, installed by .ci/run).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CHECK_NAMES, checkSpec } from '../../src/health/checks.js';
import { effectiveThreshold } from '../../src/health/evaluate.js';
import { alertName, alertRules } from '../../src/health/rules.js';
import { renderAlertRules } from '../../src/render/alert-rules.js';
import type { Desired } from '../../src/config/types.js';

const health = (thresholds: Desired['health']['thresholds'] = {}, intervalSeconds = 60) => ({ project: 'jarvis', health: { thresholds, intervalSeconds } as Desired['health'] });

const promtool = (args: string[], cwd: string) => spawnSync('promtool', args, { cwd, encoding: 'utf8' });

t.test('one alert per check that has a threshold, one rule per level it has, severity labelled; a stale-check alert beside them', async (t) => {
  const [group] = alertRules(health());
  const withThreshold = CHECK_NAMES.filter((c) => effectiveThreshold(c, {}));
  t.same([...new Set(group!.rules.map((r) => r.alert))].sort(), [...withThreshold.map(alertName), 'JarvisDbHealthCheckStale'].sort());
  for (const check of withThreshold) {
    const th = checkSpec(check)!.threshold!;
    const levels = group!.rules.filter((r) => r.alert === alertName(check)).map((r) => r.labels.severity).sort();
    t.same(levels, (['critical', 'warning'] as const).filter((l) => th[l] !== undefined), `${check}: a rule per level`);
  }
  t.ok(group!.rules.every((r) => r.for === '60s'), 'each fires after one health interval');
});

t.test('the config\'s thresholds and interval reach the rules: a warning excludes its critical, "< x" compares below, counters use their increase', async (t) => {
  const [group] = alertRules(health({
    'postgres.connections_used_ratio': { warning: 0.7, critical: 0.9, lowerIsWorse: false },
    'system.disk_free_ratio': { warning: 0.25, critical: 0.15, lowerIsWorse: true },
  }, 30));
  const expr = (alert: string, severity: string) => group!.rules.find((r) => r.alert === alert && r.labels.severity === severity)?.expr;
  t.equal(expr('JarvisDbPostgresConnectionsUsedRatio', 'critical'), 'jarvis_db_postgres_connections_used_ratio >= 0.9');
  t.equal(expr('JarvisDbPostgresConnectionsUsedRatio', 'warning'), 'jarvis_db_postgres_connections_used_ratio >= 0.7 unless jarvis_db_postgres_connections_used_ratio >= 0.9');
  t.equal(expr('JarvisDbSystemDiskFreeRatio', 'critical'), 'jarvis_db_system_disk_free_ratio < 0.15');
  t.equal(expr('JarvisDbRedisRejectedConnectionsTotal', 'warning'), 'increase(jarvis_db_redis_rejected_connections_total[60s]) >= 1');
  t.equal(expr('JarvisDbBackupsAgeIntervalRatio', 'critical'), 'jarvis_db_health_status{check=~"backups\\\\.age_interval_ratio(\\\\..+)?"} == 2',
    'no backup at all exports no value: the judged status decides');
  t.equal(expr('JarvisDbBackupsAgeIntervalRatio', 'warning'), 'jarvis_db_backups_age_interval_ratio >= 1.5 unless jarvis_db_backups_age_interval_ratio >= 3');
  t.equal(group!.rules.find((r) => r.alert === 'JarvisDbPostgresConnectionsUsedRatio')!.for, '30s');
});

t.test('promtool accepts the generated file, and its unit tests show the alerts firing as health check judges', async (t) => {
  const which = spawnSync('promtool', ['--version']);
  if (which.error) return t.fail('promtool is missing: install Debian\'s prometheus package (.ci/run does)');
  const dir = t.testdir();
  await writeFile(join(dir, 'rules.yml'), renderAlertRules(alertRules(health()), 'jarvis-db.yaml'));
  const checked = promtool(['check', 'rules', 'rules.yml'], dir);
  t.equal(checked.status, 0, checked.stdout + checked.stderr);
  t.match(checked.stdout, /SUCCESS: \d+ rules found/);

  const labels = { instance: 'db1:9187', job: 'jarvis-db' };
  const series = (metric: string, values: string, extra: Record<string, string> = {}) => ({ series: `${metric}{${Object.entries({ ...labels, ...extra }).map(([k, v]) => `${k}="${v}"`).join(',')}}`, values });
  const tests = {
    rule_files: ['rules.yml'],
    evaluation_interval: '15s',
    tests: [{
      interval: '15s',
      input_series: [
        series('jarvis_db_postgres_connections_used_ratio', '0.5 0.97x10'),
        series('jarvis_db_redis_memory_used_ratio', '0.5 0.92x10'),
        series('jarvis_db_system_load_per_cpu', '1x10'),
        series('jarvis_db_health_status', '0 2x10', { check: 'backups.age_interval_ratio.nightly', service: 'backups' }),
        series('jarvis_db_health_check_timestamp_seconds', '0x10'),
      ],
      alert_rule_test: [
        {
          eval_time: '2m', alertname: 'JarvisDbPostgresConnectionsUsedRatio',
          exp_alerts: [{ exp_labels: { ...labels, severity: 'critical', service: 'postgres', check: 'postgres.connections_used_ratio' },
            exp_annotations: { summary: 'postgres.connections_used_ratio is CRITICAL on db1:9187', description: 'Client connections over the connections available to them. Value 0.97; warning >= 80%, critical >= 95%.' } }],
        },
        {
          eval_time: '2m', alertname: 'JarvisDbRedisMemoryUsedRatio',
          exp_alerts: [{ exp_labels: { ...labels, severity: 'warning', service: 'redis', check: 'redis.memory_used_ratio' },
            exp_annotations: { summary: 'redis.memory_used_ratio is WARNING on db1:9187', description: 'used_memory over maxmemory (or the machine\'s memory when maxmemory is 0). Value 0.92; warning >= 90%, critical >= 95%.' } }],
        },
        { eval_time: '2m', alertname: 'JarvisDbSystemLoadPerCpu', exp_alerts: [] },
        { eval_time: '30s', alertname: 'JarvisDbPostgresConnectionsUsedRatio', exp_alerts: [] },
        {
          eval_time: '2m', alertname: 'JarvisDbBackupsAgeIntervalRatio',
          exp_alerts: [{ exp_labels: { ...labels, severity: 'critical', service: 'backups', check: 'backups.age_interval_ratio.nightly' },
            exp_annotations: { summary: 'backups.age_interval_ratio.nightly is CRITICAL on db1:9187', description: 'Age of the newest valid backup over the interval of the schedule\'s cron. Judged by jarvis-db (run `jarvis-db health check` for the value); warning >= 1.5, critical >= 3.' } }],
        },
        {
          eval_time: '5m', alertname: 'JarvisDbHealthCheckStale',
          exp_alerts: [{ exp_labels: { ...labels, severity: 'critical', service: 'jarvis-db', check: 'health_check_timestamp_seconds' },
            exp_annotations: { summary: 'No health check for three intervals on db1:9187', description: 'The newest health check is 5m 0s old; the daemon checks every 60s. Is the daemon (`jarvis-db daemon`) running and scraped?' } }],
        },
      ],
    }],
  };
  await writeFile(join(dir, 'tests.yml'), stringify(tests));
  const tested = promtool(['test', 'rules', 'tests.yml'], dir);
  t.equal(tested.status, 0, tested.stdout + tested.stderr);
  t.match(tested.stdout, /SUCCESS/);
});

t.test('examples/prometheus-rules.yml is what `jarvis-db alerts rules` generates from the root jarvis-db.yaml (regenerate it when this fails)', async (t) => {
  const root = new URL('../..', import.meta.url).pathname;
  const env: NodeJS.ProcessEnv = { ...process.env, JARVIS_PG_URL: 'postgres://jarvis@localhost/jarvis', JARVIS_REDIS_URL: 'redis://localhost:6379', JARVIS_CHROMA_URL: 'http://localhost:8000' };
  delete env.JARVIS_DB_CONFIG;
  const r = spawnSync(process.execPath, [join(root, 'bin/jarvis-db.js'), 'alerts', 'rules', '-c', 'jarvis-db.yaml'], { cwd: root, env, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, await readFile(join(root, 'examples/prometheus-rules.yml'), 'utf8'),
    'JARVIS_PG_URL=postgres://jarvis@localhost/jarvis JARVIS_REDIS_URL=redis://localhost:6379 JARVIS_CHROMA_URL=http://localhost:8000 node bin/jarvis-db.js alerts rules > examples/prometheus-rules.yml');
  t.notMatch(r.stdout, /postgres:\/\/|redis:\/\//, 'no service URL in the rules');
});
