import t from 'tap';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { CHECKS, CHECK_NAMES, checkSpec, metricName } from '../../src/health/checks.js';
import { evaluate } from '../../src/health/evaluate.js';
import type { HealthObservation, Sample } from '../../src/health/samples.js';
import { renderExposition, renderHealthPrometheus } from '../../src/render/prometheus.js';

/** One sample of every check in the catalogue, labelled where the check has labels. */
function everySample(): Sample[] {
  return CHECK_NAMES.map((check, i) => {
    const labels = checkSpec(check)!.labels;
    return { check, value: i + 0.5, ...(labels ? { labels: Object.fromEntries(labels.map((l) => [l, `${l}-"odd"\\ value\n`])) } : {}) };
  });
}

function observation(samples: Sample[]): HealthObservation {
  return { takenAt: '2026-11-24T10:00:00.000Z', durationMs: 42, services: ['postgres', 'redis', 'chroma', 'system', 'backups'], probeMs: {}, samples };
}

t.test('every check renders as a family a real exposition-format parser reads back, with HELP, TYPE and escaped labels', async (t) => {
  const samples = everySample();
  const text = renderHealthPrometheus(observation(samples), evaluate(samples, {}));
  const families = parsePrometheusTextFormat(text);
  const byName = new Map(families.map((f) => [f.name, f]));
  for (const sample of samples) {
    const spec = checkSpec(sample.check)!;
    const family = byName.get(metricName(sample.check));
    if (!t.ok(family, `${sample.check} is exported`)) continue;
    t.equal(family!.type, spec.type.toUpperCase());
    t.equal(family!.help, spec.help);
    t.equal(Number(family!.metrics[0]!.value), sample.value);
    t.same(family!.metrics[0]!.labels ?? {}, sample.labels ?? {}, `${sample.check}: label values survive escaping`);
  }
  const status = byName.get('jarvis_db_health_status');
  t.ok(status && status.metrics.length > 0, 'the status of every finding is exported');
  t.equal(Number(byName.get('jarvis_db_health_check_duration_seconds')!.metrics[0]!.value), 0.042);
});

t.test('names follow jarvis_db_<service>_<metric>_<unit>: counters end in _total, units are base units', async (t) => {
  for (const [check, spec] of Object.entries(CHECKS)) {
    const name = metricName(check);
    t.match(name, new RegExp(`^jarvis_db_${spec.service}_[a-z0-9_]+$`), check);
    if (spec.type === 'counter') t.match(name, /_total$/, `${check} is a counter`);
    else t.notMatch(name, /_total$/, `${check} is a gauge and does not end in _total`);
    t.notMatch(name, /_(ms|milliseconds|percent|kb|mb|hours|minutes|count)(_|$)/, `${check} uses base units`);
    if (spec.display === 'ratio') t.match(name, /_ratio$/, `${check} shows as a ratio and is named one`);
    if (spec.display === 'bytes') t.match(name, /_bytes$/);
    if (spec.display === 'seconds') t.match(name, /_seconds$/);
  }
});

t.test('a sample without a value is left out rather than exported as a made-up number', async (t) => {
  const samples: Sample[] = [{ check: 'redis.up', value: 0, problem: 'refused' }, { check: 'system.disk_free_ratio', value: null, problem: 'x' }];
  const families = parsePrometheusTextFormat(renderHealthPrometheus(observation(samples), evaluate(samples, {})));
  t.ok(families.find((f) => f.name === 'jarvis_db_redis_up'));
  t.notOk(families.find((f) => f.name === 'jarvis_db_system_disk_free_ratio'));
  const status = families.find((f) => f.name === 'jarvis_db_health_status')!;
  t.same(status.metrics.map((m) => [m.labels!.check, m.value]).sort(), [['redis.up', '2'], ['system.disk_free_ratio', '3']]);
});

t.test('special values and invalid names are handled', async (t) => {
  const text = renderExposition([{ name: 'x_seconds', help: 'a\\b\nc', type: 'gauge', samples: [{ value: Infinity }, { labels: { a: '1' }, value: NaN }] }]);
  const [family] = parsePrometheusTextFormat(text);
  t.equal(family!.help, 'a\\b\nc');
  t.same(family!.metrics.map((m) => m.value), ['+Inf', 'NaN']);
  t.throws(() => renderExposition([{ name: 'bad-name', help: '', type: 'gauge', samples: [{ value: 1 }] }]), /invalid metric name/);
});
