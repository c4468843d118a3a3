/**
 * The validators built at `npm run build` (dist/config/validators.cjs, ajv's standalone code)
 * must be what compiling the schema gives: the same verdict and the same errors, field by
 * field, since every message of config validation is made from them.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { schemaValidators } from '../../src/config/validate.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const built = join(ROOT, 'dist', 'config', 'validators.cjs');
const yamlOf = (file: string) => parse(readFileSync(join(ROOT, file), 'utf8')) as Record<string, unknown>;

const full = yamlOf('examples/full.yaml');
const configs: [string, unknown][] = [
  ['examples/full.yaml', full],
  ['examples/minimal.yaml', yamlOf('examples/minimal.yaml')],
  ['jarvis-db.yaml', yamlOf('jarvis-db.yaml')],
  ['not a mapping', ['a', 'list']],
  ['empty', {}],
  ['unknown keys and wrong types everywhere', {
    version: 2, projekt: 'x', services: { postgres: { url: 5 }, mysql: {} },
    backups: [{ name: 'Bad Name', service: 'postgres', cron: 7, keep: { last: -1, yearly: 'x' }, format: 'zip', jobs: 0 }, 'text'],
    storage: { path: '', encryption: { passphraseEnv: 'lower-case' } },
    retention: { policies: [{ name: 'p', table: 'bad table!', age: { column: 'c', olderThan: '3 weeks' }, action: 'explode' }] },
    health: { interval: 'often', thresholds: { 'nosuch.check': { warning: 'x' }, 'postgres.cache_hit_ratio': { warning: '<< 1' } } },
  }],
  ['a duplicate in a list', { ...full, retention: { include: ['./a.yaml', './a.yaml'] } }],
];
const policyFiles: [string, unknown][] = [
  ['policies/operational.yaml', yamlOf('policies/operational.yaml')],
  ['policy file with errors', { policies: [{ name: 'x', action: 'delete' }, 3], extra: true }],
];

t.test('the built validators give the verdict and errors that compiling the schema gives', { skip: existsSync(built) ? false : 'dist/config/validators.cjs is not built (npm run build)' }, async (t) => {
  const fast = schemaValidators();
  t.equal(fast.source, 'built', 'a start uses the built validators, not ajv');
  const compiled = schemaValidators('compiled');
  const same = (kind: 'config' | 'policyFile', name: string, value: unknown) => {
    const a = fast[kind](value);
    const b = compiled[kind](value);
    t.equal(a, b, `${name}: same verdict`);
    t.same(JSON.parse(JSON.stringify(fast[kind].errors ?? null)), JSON.parse(JSON.stringify(compiled[kind].errors ?? null)), `${name}: same errors`);
  };
  for (const [name, value] of configs) same('config', name, value);
  for (const [name, value] of policyFiles) same('policyFile', name, value);
  t.notOk(fast.config(configs[5]![1]), 'the broken config is refused');
  t.ok((fast.config.errors ?? []).length > 10, 'with every error at once');
});
