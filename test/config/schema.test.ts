import t from 'tap';
import { readFileSync } from 'node:fs';
import { DURATION_PATTERN } from '../../src/config/durations.js';
import { configSchema } from '../../src/config/validate.js';

type Schema = Record<string, unknown>;
const schema = configSchema();

/** Every subschema with its JSON-pointer-ish location. */
function walk(node: unknown, at: string, visit: (s: Schema, at: string) => void): void {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) { node.forEach((n, i) => walk(n, `${at}/${i}`, visit)); return; }
  const s = node as Schema;
  visit(s, at);
  for (const [k, v] of Object.entries(s)) {
    if (k === 'properties' || k === '$defs') {
      for (const [name, sub] of Object.entries(v as Record<string, unknown>)) walk(sub, `${at}/${k}/${name}`, visit);
    } else if (['items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', 'propertyNames'].includes(k)) {
      walk(v, `${at}/${k}`, visit);
    }
  }
}

t.test('the schema is JSON Schema 2020-12 and the file is valid JSON', async (t) => {
  const raw = JSON.parse(readFileSync(new URL('../../schemas/jarvis-db.schema.json', import.meta.url), 'utf8')) as Schema;
  t.equal(raw.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.same(raw, schema);
});

t.test('every property has a description, so editors show help', async (t) => {
  const missing: string[] = [];
  walk(schema, '#', (s, at) => {
    for (const [name, sub] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) {
      if (typeof sub.description !== 'string' || sub.description.length < 10) missing.push(`${at}/properties/${name}`);
    }
  });
  t.same(missing, []);
});

t.test('every object with named properties refuses unknown keys; maps restrict their key names', async (t) => {
  const open: string[] = [];
  walk(schema, '#', (s, at) => {
    if (s.type !== 'object') return;
    if (s.properties !== undefined && s.additionalProperties !== false) open.push(at);
    if (s.properties === undefined && (s.propertyNames === undefined || typeof s.additionalProperties !== 'object')) open.push(at);
  });
  t.same(open, []);
});

t.test('policy files have their own top-level shape under $defs/policyFile', async (t) => {
  const defs = schema.$defs as Record<string, Schema>;
  t.same(defs.policyFile?.required, ['policies']);
  t.equal(defs.policyFile?.additionalProperties, false);
});

t.test('the duration rule in the schema is the one the code uses', async (t) => {
  const defs = schema.$defs as Record<string, Schema>;
  t.equal(defs.duration?.pattern, DURATION_PATTERN.source.replace('([1-9][0-9]{0,8})', '[1-9][0-9]{0,8}'));
});
