/** The health part of the config: thresholds name real checks, and the examples use real names. */
import t, { type Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { checkSpec } from '../../src/health/checks.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const ENV = { JARVIS_PG_URL: 'postgres://jarvis:pw@127.0.0.1:5999/jarvis' };

async function config(t: Test, ...health: string[]): Promise<string> {
  const dir = t.testdir();
  const file = join(dir, 'jarvis-db.yaml');
  await writeFile(file, ['version: 1', 'services:', '  postgres: { url: "${JARVIS_PG_URL}" }', 'health:', ...health, ''].join('\n'));
  return file;
}

t.test('a threshold for a check that does not exist is an error at its line, with a suggestion', async (t) => {
  const file = await config(t, '  thresholds:', '    postgres.long_query_seconds: { warning: 60 }', '    backup.age_interval_ratio: { warning: 2 }');
  const error = await loadConfig(file, ENV).then(() => null, (e: Error & { details?: string[] }) => e);
  t.ok(error, 'loading fails');
  const text = [error!.message, ...(error!.details ?? [])].join('\n');
  t.match(text, /jarvis-db\.yaml:6:5: health\.thresholds\["?postgres\.long_query_seconds"?\]: there is no health check named postgres\.long_query_seconds \(did you mean postgres\.longest_query_seconds/);
  t.match(text, /jarvis-db\.yaml:7:5: .*no health check named backup\.age_interval_ratio \(did you mean backups\.age_interval_ratio/);
});

t.test('thresholds load with their direction', async (t) => {
  const file = await config(t, '  thresholds:', '    system.disk_free_ratio: { warning: "< 0.3", critical: "< 0.2" }', '    postgres.longest_query_seconds: { warning: 10 }');
  const d = await loadConfig(file, ENV);
  t.same(d.health.thresholds, {
    'system.disk_free_ratio': { warning: 0.3, critical: 0.2, lowerIsWorse: true },
    'postgres.longest_query_seconds': { warning: 10, lowerIsWorse: false },
  });
});

t.test('every threshold in the root config and in examples/full.yaml names a known check', async (t) => {
  for (const file of [join(ROOT, 'jarvis-db.yaml'), join(ROOT, 'examples', 'full.yaml')]) {
    const d = await loadConfig(file, ENV);
    const names = Object.keys(d.health.thresholds);
    t.ok(names.length > 3, `${file} sets thresholds`);
    for (const name of names) t.ok(checkSpec(name), `${name} is a check`);
  }
});
