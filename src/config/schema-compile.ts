/**
 * Compiling schemas/jarvis-db.schema.json with ajv: one definition of the ajv instance, used at
 * build time (`scripts/build-validators.mjs` turns it into standalone CommonJS code in
 * dist/config/validators.cjs, so that a start does not compile the schema) and at run time
 * when that file is missing or was built from another schema (`validate.ts`).
 *
 * ajv is CommonJS: it is required synchronously, and only when compiling, so that a start with
 * the built validators never loads it.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Ajv2020 as Ajv, ErrorObject } from 'ajv/dist/2020.js';

const require = createRequire(import.meta.url);

export const SCHEMA_ID = 'urn:jarvis-db:schema:config';
/** The policy files' schema: a reference into the config schema, given an id so that it can be exported. */
export const POLICY_FILE_ID = 'urn:jarvis-db:schema:policy-file';

/** A compiled validator, from ajv or from the built standalone code: the same shape. */
export type SchemaValidator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };
export interface SchemaValidators { config: SchemaValidator; policyFile: SchemaValidator }

/** What the built validators were made from (compared before they are used). */
export function schemaSha256(schemaText: string): string {
  return createHash('sha256').update(schemaText).digest('hex');
}

/** The ajv instance with the schema added (every error at once, verbose for the messages). */
export function schemaAjv(schema: Record<string, unknown>, options: { source?: boolean } = {}): Ajv {
  const { Ajv2020 } = require('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
  const ajv = new Ajv2020({
    allErrors: true, verbose: true, strict: true, strictTypes: false, allowUnionTypes: true,
    ...(options.source ? { code: { source: true } } : {}),
  });
  // ajv-formats is CommonJS with `exports.default`: take the plugin function from either shape.
  const plugin = require('ajv-formats') as { default?: unknown };
  const addFormats = (typeof plugin === 'function' ? plugin : plugin.default) as (ajv: Ajv) => unknown;
  addFormats(ajv);
  ajv.addSchema(schema);
  ajv.addSchema({ $id: POLICY_FILE_ID, $ref: `${SCHEMA_ID}#/$defs/policyFile` });
  return ajv;
}

/** Compiles both validators now (the slow path: ~60–90 ms, then ~100 ms more on a first start). */
export function compileValidators(schema: Record<string, unknown>): SchemaValidators {
  const ajv = schemaAjv(schema);
  return { config: ajv.getSchema(SCHEMA_ID)!, policyFile: ajv.getSchema(POLICY_FILE_ID)! };
}
