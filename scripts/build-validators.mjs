#!/usr/bin/env node
// Build step (after tsc; `npm run build` and `prepare` run it): the config schema's validators
// as standalone CommonJS code in dist/config/validators.cjs, so that no start compiles the
// schema with ajv (docs/architecture.md §3). The file carries the SHA-256 of the schema it was
// made from; src/config/validate.ts compiles at run time instead when it does not match.
// CommonJS because ajv's standalone output requires its runtime helpers (ucs2length, formats).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { schemaAjv, schemaSha256, SCHEMA_ID, POLICY_FILE_ID } = await import(new URL('../dist/config/schema-compile.js', import.meta.url).href);
const standaloneCode = require('ajv/dist/standalone').default;

const text = readFileSync(new URL('../schemas/jarvis-db.schema.json', import.meta.url), 'utf8');
const ajv = schemaAjv(JSON.parse(text), { source: true });
const code = standaloneCode(ajv, { config: SCHEMA_ID, policyFile: POLICY_FILE_ID });
const out = new URL('../dist/config/validators.cjs', import.meta.url);
writeFileSync(out, `${code}\nexports.schemaSha256 = ${JSON.stringify(schemaSha256(text))};\n`);
