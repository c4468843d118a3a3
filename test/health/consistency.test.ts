/**
 * The health check `consistency` from the links' outcomes (pure): orphans per link and side with
 * their examples, the keys compared and how, broken links critical with the link's file:line, and
 * a link whose service is down UNKNOWN alone.
 */
import t from 'tap';
import type { LinkOutcome } from '../../src/links/compare.js';
import { consistencySamples } from '../../src/health/probes/consistency.js';
import { evaluate } from '../../src/health/evaluate.js';
import { renderHealthPrometheus } from '../../src/render/prometheus.js';

const vectors: LinkOutcome = {
  link: 'memory-vectors', source: 'jarvis-db.yaml:7 links[0]', other: 'chroma', mode: 'all', rows: 260, records: 259,
  missing: { count: 1, examples: ['42'] }, orphans: { count: 0, examples: [] }, note: 'all 260 rows and 259 records',
};
const sessionsDown: LinkOutcome = { link: 'user-sessions', source: 'jarvis-db.yaml:10 links[1]', other: 'redis', problem: 'redis cannot be reached: connection refused', kind: 'failed' };
const broken: LinkOutcome = { link: 'typo', source: 'jarvis-db.yaml:13 links[2]', other: 'chroma', problem: 'jarvis-db.yaml:13 links[2].postgres.table: table memroy does not exist in the database', kind: 'broken' };

t.test('an orphan is a WARNING naming the link, the side and the id; a service down is UNKNOWN for its link alone; a broken link is CRITICAL with its line', async (t) => {
  const samples = consistencySamples([vectors, sessionsDown, broken]);
  const findings = evaluate(samples, {});
  const status = (check: string) => findings.find((f) => f.check === check);
  t.equal(status('consistency.orphans.memory-vectors.postgres')?.status, 'WARNING');
  t.match(status('consistency.orphans.memory-vectors.postgres')?.message, /rows without their record, e\.g\. 42/);
  t.equal(status('consistency.orphans.memory-vectors.chroma')?.status, 'HEALTHY');
  t.equal(status('consistency.orphans.user-sessions.redis')?.status, 'UNKNOWN');
  t.match(status('consistency.orphans.user-sessions.redis')?.message, /connection refused/);
  t.equal(status('consistency.broken_links')?.status, 'CRITICAL');
  t.match(status('consistency.broken_links')?.message, /jarvis-db\.yaml:13 links\[2\]\.postgres\.table: table memroy does not exist/);
  t.same(samples.find((s) => s.check === 'consistency.keys_compared'), { check: 'consistency.keys_compared', labels: { link: 'memory-vectors' }, value: 519, detail: 'all 260 rows and 259 records' });
});

t.test('the Prometheus metric is jarvis_db_consistency_orphans{link,side}', async (t) => {
  const samples = consistencySamples([vectors]);
  const text = renderHealthPrometheus({ takenAt: new Date().toISOString(), durationMs: 1, services: ['consistency'], probeMs: {}, samples }, evaluate(samples, {}));
  t.match(text, /^jarvis_db_consistency_orphans\{link="memory-vectors",side="postgres"\} 1$/m);
  t.match(text, /^jarvis_db_consistency_orphans\{link="memory-vectors",side="chroma"\} 0$/m);
  t.match(text, /^jarvis_db_consistency_broken_links 0$/m);
});
