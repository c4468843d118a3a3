/**
 * docs/config.md is the schema in words: written from it, and never out of date with it.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { configReference } from '../../src/config/reference.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/jarvis-db.schema.json', import.meta.url), 'utf8')) as Record<string, unknown>;

t.test('docs/config.md matches the schema (run `npm run docs` after changing the schema)', async (t) => {
  const onDisk = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');
  t.equal(onDisk, configReference(schema));
});

t.test('the reference lists nested fields, list items and named maps with their descriptions', async (t) => {
  const md = configReference(schema);
  t.match(md, /\| `backups\[\]\.cron` \| string \(required\) \| /);
  t.match(md, /\| `backups\[\]\.keep\.daily` \| integer/);
  t.match(md, /\| `health\.thresholds\.<name>\.warning` \| number or `"< x"` \|/);
  t.match(md, /\| `storage\.path` \| string \| Directory for the local state/);
  t.match(md, /## Policy files[\s\S]*\| `policies\[\]\.action` \| `delete` \\\| `archive`/);
});
