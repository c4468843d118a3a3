/**
 * Validation against schemas/jarvis-db.schema.json (JSON Schema 2020-12, ajv with every
 * error at once). Each ajv error becomes a Problem with the file, line and column of the
 * offending value (of the key, for an unknown key), its path, and words for people.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ErrorObject } from 'ajv/dist/2020.js';
import { urlSyntaxMessage } from '../services/url-syntax.js';
import { DURATION_EXPECTED } from './durations.js';
import { describeValue, type Path, type PathSegment, type Problems } from './problems.js';
import { compileValidators, schemaSha256, type SchemaValidators } from './schema-compile.js';
import type { SourceFile } from './yaml-source.js';

export const SCHEMA_URL = new URL('../../schemas/jarvis-db.schema.json', import.meta.url);
/** Built by `npm run build` (scripts/build-validators.mjs); the same path from src/ and dist/. */
const BUILT_VALIDATORS = new URL('../../dist/config/validators.cjs', import.meta.url);

/** What a value shaped by each `$defs` entry should look like, for pattern and anyOf errors. */
const EXPECTED: Record<string, string> = {
  duration: DURATION_EXPECTED,
  name: 'a name of lower case letters, digits, ".", "_" and "-" (at most 63 characters)',
  identifier: 'a table name such as messages or public.messages',
  column: 'a column name such as created_at',
  envName: 'an environment variable name such as JARVIS_BACKUP_KEY',
  thresholdValue: 'a number or a comparison such as "< 0.9"',
  repositoryName: 'a repository name of lower case letters, digits and "-" (at most 63 characters)',
  bucketName: 'an S3 bucket name: 3-63 lower case letters, digits, "." and "-", starting and ending with a letter or digit',
};

export type ValidatorSource = 'built' | 'compiled';
let validators: (SchemaValidators & { source: ValidatorSource }) | undefined;
let schemaText: string | undefined;

const readSchemaText = () => (schemaText ??= readFileSync(SCHEMA_URL, 'utf8'));

/** The built validators when they were made from this schema; undefined when missing or stale. */
function builtValidators(text: string): SchemaValidators | undefined {
  let built: Partial<SchemaValidators> & { schemaSha256?: string };
  try {
    built = createRequire(import.meta.url)(BUILT_VALIDATORS.pathname) as typeof built;
  } catch {
    return undefined;
  }
  if (built.schemaSha256 !== schemaSha256(text) || !built.config || !built.policyFile) return undefined;
  return { config: built.config, policyFile: built.policyFile };
}

/**
 * The validators: the built standalone code when it matches the schema (no ajv at start), else
 * compiled now. `prefer: 'compiled'` is for the test that both give the same errors.
 */
export function schemaValidators(prefer: ValidatorSource = 'built'): SchemaValidators & { source: ValidatorSource } {
  if (prefer === 'compiled') return { ...compileValidators(configSchema()), source: 'compiled' };
  if (validators) return validators;
  const text = readSchemaText();
  const built = builtValidators(text);
  validators = built ? { ...built, source: 'built' } : { ...compileValidators(configSchema()), source: 'compiled' };
  return validators;
}

/** The loaded JSON Schema (for tests and documentation). */
let schema: Record<string, unknown> | undefined;
export function configSchema(): Record<string, unknown> {
  return (schema ??= JSON.parse(readSchemaText()) as Record<string, unknown>);
}

function pathOf(instancePath: string): PathSegment[] {
  if (instancePath === '') return [];
  return instancePath.slice(1).split('/').map((raw) => {
    const s = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s;
  });
}

/** The `$defs` entry an error's schemaPath is inside, if any (`#/$defs/duration/pattern` → duration). */
function defOf(schemaPath: string): string | undefined {
  return /#\/\$defs\/([^/]+)\//.exec(schemaPath)?.[1];
}

function typeWords(type: unknown): string {
  const words: Record<string, string> = {
    string: 'a string', number: 'a number', integer: 'a whole number', boolean: 'true or false',
    array: 'a list', object: 'a mapping', null: 'nothing (null)',
  };
  const list = Array.isArray(type) ? type : [type];
  return list.map((t) => words[String(t)] ?? String(t)).join(' or ');
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = current;
    }
  }
  return row[b.length]!;
}

/** `did you mean "keep"?` for a near miss among the allowed keys. */
function suggestion(key: string, allowed: string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key, candidate);
    if (d < bestDistance) { best = candidate; bestDistance = d; }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.ceil(best.length / 3)) ? `did you mean "${best}"? ` : '';
}

interface Mapped { path: Path; atKey: boolean; message: string }

function mapError(error: ErrorObject): Mapped | undefined {
  const path = pathOf(error.instancePath);
  const params = error.params as Record<string, unknown>;
  const parent = (error.parentSchema ?? {}) as Record<string, unknown>;
  const data = error.data;
  const def = defOf(error.schemaPath);
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((parent.properties ?? {}) as Record<string, unknown>);
      return {
        path: [...path, key], atKey: true,
        message: `unknown key "${key}" (${suggestion(key, allowed)}expected one of: ${allowed.join(', ')})`,
      };
    }
    case 'required':
      return { path, atKey: false, message: `missing required key "${String(params.missingProperty)}"` };
    case 'type':
      return { path, atKey: false, message: `expected ${def && EXPECTED[def] ? EXPECTED[def] : typeWords(params.type)}, got ${describeValue(data)}` };
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map((v) => String(v)).join(', ');
      return { path, atKey: false, message: `${describeValue(data)} is not allowed (expected one of: ${allowed})` };
    }
    case 'const':
      return { path, atKey: false, message: `expected ${JSON.stringify(params.allowedValue)}, got ${describeValue(data)}` };
    case 'minimum': case 'exclusiveMinimum':
      return { path, atKey: false, message: `must be ${error.keyword === 'minimum' ? 'at least' : 'more than'} ${String(params.limit)} (got ${describeValue(data)})` };
    case 'maximum': case 'exclusiveMaximum':
      return { path, atKey: false, message: `must be ${error.keyword === 'maximum' ? 'at most' : 'less than'} ${String(params.limit)} (got ${describeValue(data)})` };
    case 'minLength':
      return { path, atKey: false, message: Number(params.limit) === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long` };
    case 'maxLength':
      return { path, atKey: false, message: `must be at most ${String(params.limit)} characters long` };
    case 'minItems':
      return { path, atKey: false, message: `must list at least ${String(params.limit)} item${Number(params.limit) === 1 ? '' : 's'}` };
    case 'uniqueItems': {
      const list = Array.isArray(data) ? data : [];
      const [first, second] = [Number(params.i), Number(params.j)].sort((a, b) => a - b);
      return { path: [...path, second!], atKey: false, message: `${describeValue(list[second!])} is listed twice (items ${first} and ${second})` };
    }
    case 'minProperties': {
      const allowed = Object.keys((parent.properties ?? {}) as Record<string, unknown>);
      return { path, atKey: false, message: allowed.length > 0 ? `must set at least one of: ${allowed.join(', ')}` : 'must not be empty' };
    }
    case 'format':
      // A URL that is not what it seems says why, and quotes nothing of it.
      if (params.format === 'uri' && typeof data === 'string' && urlSyntaxMessage(data)) return { path, atKey: false, message: urlSyntaxMessage(data)! };
      return { path, atKey: false, message: `${describeValue(data)} is not a valid ${params.format === 'uri' ? 'URL' : String(params.format)}` };
    case 'pattern': {
      if (error.schemaPath.includes('/propertyNames/')) return undefined; // reported by the propertyNames error
      const expected = def && EXPECTED[def] ? EXPECTED[def] : /\^https\?/.test(String(params.pattern)) ? 'an http:// or https:// URL' : `text matching ${String(params.pattern)}`;
      return { path, atKey: false, message: `${describeValue(data)} is not ${expected}` };
    }
    case 'propertyNames': {
      const name = String(params.propertyName);
      const pattern = String(((parent.propertyNames ?? {}) as Record<string, unknown>).pattern ?? '');
      const expected = pattern.startsWith('^(postgres') ? 'a check name such as postgres.cache_hit_ratio (service.metric; services: postgres, redis, chroma, system, backups)'
        : 'a column name such as email';
      return { path: [...path, name], atKey: true, message: `key "${name}" is not ${expected}` };
    }
    case 'anyOf': case 'oneOf': {
      const expected = def && EXPECTED[def] ? EXPECTED[def] : 'a value of one of the allowed forms';
      return { path, atKey: false, message: `expected ${expected}, got ${describeValue(data)}` };
    }
    case 'if': case 'then': case 'else': case 'not': case 'allOf':
      return undefined;
    default:
      return { path, atKey: false, message: error.message ?? `fails "${error.keyword}"` };
  }
}

/** Drops the branch errors of a failed anyOf/oneOf (the anyOf error itself says what was expected). */
function withoutBranchNoise(errors: ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  return errors.filter((e) => !unions.some((u) => u !== e && e.instancePath === u.instancePath && e.schemaPath.startsWith(`${u.schemaPath}/`)));
}

export type SchemaKind = 'config' | 'policyFile';

/**
 * Validates a parsed, interpolated value. Returns true when it is valid. Problems at paths
 * already reported (interpolation errors) are not repeated.
 */
export function validateAgainstSchema(kind: SchemaKind, value: unknown, source: SourceFile, problems: Problems): boolean {
  const v = schemaValidators()[kind];
  if (v(value)) return true;
  const already = new Set(problems.list.filter((p) => p.fileIndex === source.fileIndex).map((p) => JSON.stringify(p.path)));
  for (const error of withoutBranchNoise(v.errors ?? [])) {
    const mapped = mapError(error);
    if (!mapped || already.has(JSON.stringify(mapped.path))) continue;
    problems.add({ file: source.display, fileIndex: source.fileIndex, position: source.locate(mapped.path, mapped.atKey), path: mapped.path, message: mapped.message });
  }
  return false;
}
