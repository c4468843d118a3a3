/** examples/grafana-dashboard.json is what `jarvis-db alerts dashboard` generates, a valid dashboard over metrics the exporter really emits. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Desired } from '../../src/config/types.js';
import { grafanaDashboard } from '../../src/health/dashboard.js';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { CHECK_NAMES, checkSpec, metricName } from '../../src/health/checks.js';
import { evaluate } from '../../src/health/evaluate.js';
import type { Sample } from '../../src/health/samples.js';
import { renderExposition, renderHealthPrometheus } from '../../src/render/prometheus.js';
import { daemonFamilies, newCounters } from '../../src/daemon/metrics.js';

interface Target { expr: string; refId: string; datasource: { uid: string } }
interface Panel { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Target[]; datasource?: { uid: string } }

const dashboard = JSON.parse(readFileSync(new URL('../../examples/grafana-dashboard.json', import.meta.url), 'utf8')) as {
  title: string; uid: string; schemaVersion: number; panels: Panel[]; templating: { list: { name: string }[] }; __inputs: { name: string }[];
};

/** Every metric family /metrics serves: a check that measured everything, and the daemon's own. */
function exportedNames(): Set<string> {
  const samples: Sample[] = CHECK_NAMES.map((check) => {
    const labels = checkSpec(check)!.labels;
    return { check, value: 1, ...(labels ? { labels: Object.fromEntries(labels.map((l) => [l, 'x'])) } : {}) };
  });
  const text = renderHealthPrometheus({ takenAt: new Date().toISOString(), durationMs: 1, services: [], probeMs: {}, samples }, evaluate(samples, {}));
  const counters = newCounters(new Date());
  counters.runs.set('succeeded', 1);
  counters.actions.set('create_backup/done', 1);
  counters.lastRun = { finishedAt: new Date(), durationMs: 1, status: 'succeeded' };
  counters.nextApplyAt = new Date();
  const daemon = renderExposition(daemonFamilies(counters));
  return new Set([...parsePrometheusTextFormat(text), ...parsePrometheusTextFormat(daemon)].map((f) => f.name));
}

const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, ...target })));

t.test('the dashboard is importable: title, uid, schema version, a Prometheus input, unique panel ids on a 24-column grid', async (t) => {
  t.equal(dashboard.title, 'jarvis-db');
  t.match(dashboard.uid, /^[a-z0-9-]{1,40}$/);
  t.ok(dashboard.schemaVersion >= 36);
  t.same(dashboard.__inputs.map((i) => i.name), ['DS_PROMETHEUS']);
  const ids = dashboard.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of dashboard.panels) {
    t.ok(p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
    if (p.type !== 'row') t.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `${p.title} uses the Prometheus input`);
  }
  const cells = new Set<string>();
  for (const p of dashboard.panels) {
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        const cell = `${x},${y}`;
        if (cells.has(cell)) t.fail(`${p.title} overlaps another panel at ${cell}`);
        cells.add(cell);
      }
    }
  }
  t.ok(dashboard.templating.list.some((v) => v.name === 'instance'));
});

t.test('every query names only metrics the exporter emits, and selects the chosen instance', async (t) => {
  const exported = exportedNames();
  t.ok(targets.length > 30);
  for (const target of targets) {
    const names = [...target.expr.matchAll(/\bjarvis_db_[a-z0-9_]+/g)].map((m) => m[0]);
    t.ok(names.length > 0, `${target.panel}: "${target.expr}" reads a jarvis-db metric`);
    for (const name of names) t.ok(exported.has(name), `${target.panel}: ${name} is exported`);
    t.match(target.expr, /\{instance=~"\$instance"/, `${target.panel}: filtered by $instance`);
    let depth = 0;
    for (const ch of target.expr) {
      depth += '({['.includes(ch) ? 1 : ')}]'.includes(ch) ? -1 : 0;
      if (depth < 0) break;
    }
    t.equal(depth, 0, `${target.panel}: brackets balance in "${target.expr}"`);
  }
});

t.test('every check and every daemon metric has a panel', async (t) => {
  const queried = new Set(targets.flatMap((target) => [...target.expr.matchAll(/\bjarvis_db_[a-z0-9_]+/g)].map((m) => m[0])));
  for (const check of CHECK_NAMES) t.ok(queried.has(metricName(check)), `${metricName(check)} is on the dashboard`);
  for (const name of exportedNames()) if (name.startsWith('jarvis_db_daemon_')) t.ok(queried.has(name), `${name} is on the dashboard`);
});

t.test('examples/grafana-dashboard.json is what `jarvis-db alerts dashboard` generates from the root jarvis-db.yaml (regenerate it when this fails)', async (t) => {
  const root = new URL('../..', import.meta.url).pathname;
  const env: NodeJS.ProcessEnv = { ...process.env, JARVIS_PG_URL: 'postgres://jarvis@localhost/jarvis', JARVIS_REDIS_URL: 'redis://localhost:6379', JARVIS_CHROMA_URL: 'http://localhost:8000' };
  delete env.JARVIS_DB_CONFIG;
  const r = spawnSync(process.execPath, [join(root, 'bin/jarvis-db.js'), 'alerts', 'dashboard', '-c', 'jarvis-db.yaml'], { cwd: root, env, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), dashboard, 'node bin/jarvis-db.js alerts dashboard > examples/grafana-dashboard.json (with the three URLs set)');
});

t.test('a threshold changed in the config moves the panel\'s threshold lines; lower-is-worse goes red below the critical', async (t) => {
  const health = (thresholds: Desired['health']['thresholds']) => ({ health: { thresholds, intervalSeconds: 60 } as Desired['health'] });
  const stepsOf = (d: ReturnType<typeof grafanaDashboard>, title: string) =>
    ((d.panels as { title: string; fieldConfig?: { defaults: { thresholds: { steps: unknown[] } } } }[]).find((p) => p.title === title)!).fieldConfig!.defaults.thresholds.steps;
  t.same(stepsOf(grafanaDashboard(health({})), 'Connections used'), [{ color: 'green', value: null }, { color: 'orange', value: 0.8 }, { color: 'red', value: 0.95 }]);
  t.same(stepsOf(grafanaDashboard(health({ 'postgres.connections_used_ratio': { warning: 0.6, critical: 0.7, lowerIsWorse: false } })), 'Connections used'),
    [{ color: 'green', value: null }, { color: 'orange', value: 0.6 }, { color: 'red', value: 0.7 }]);
  t.same(stepsOf(grafanaDashboard(health({ 'system.disk_free_ratio': { warning: 0.3, critical: 0.2, lowerIsWorse: true } })), 'Disk free (storage)'),
    [{ color: 'red', value: null }, { color: 'orange', value: 0.2 }, { color: 'green', value: 0.3 }]);
});
