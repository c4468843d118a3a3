/**
 * `${VAR}` and `${VAR:-default}` in string values, after parsing: an environment value can
 * change a value but never the YAML structure. `$${` writes a literal `${`. A plain
 * (unquoted) scalar that was entirely one reference takes the YAML type of its result, so
 * `jobs: ${PG_JOBS:-2}` is the number 2; quoted scalars stay strings.
 */
import type { Path, Problems } from './problems.js';
import type { SourceFile } from './yaml-source.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export type InterpolationResult =
  | { ok: true; value: string; references: string[] }
  | { ok: false; errors: string[] };

/** Interpolates one string. Unset variables (without a default) and malformed references are errors. */
export function interpolateString(text: string, env: NodeJS.ProcessEnv): InterpolationResult {
  let out = '';
  const errors: string[] = [];
  const references: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) { out += '${'; i += 3; continue; }
    if (!text.startsWith('${', i)) { out += text[i]; i++; continue; }
    const end = text.indexOf('}', i + 2);
    if (end < 0) { errors.push('unclosed "${": write ${NAME}, ${NAME:-default}, or $${ for a literal "${"'); break; }
    const inner = text.slice(i + 2, end);
    const sep = inner.indexOf(':-');
    const name = sep >= 0 ? inner.slice(0, sep) : inner;
    if (!NAME.test(name)) {
      errors.push(`"\${${inner}}" is not a valid variable reference: names are letters, digits and _ (write $\${ for a literal "\${")`);
      i = end + 1;
      continue;
    }
    references.push(name);
    const value = env[name];
    if (value !== undefined && (sep < 0 || value !== '')) out += value;
    else if (sep >= 0) out += inner.slice(sep + 2);
    else errors.push(`environment variable ${name} is not set (and has no default: write \${${name}:-default} to give one)`);
    i = end + 1;
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: out, references };
}

/** YAML 1.2 core-schema typing of an unquoted scalar's text. */
function plainScalar(text: string): unknown {
  if (/^[-+]?[0-9]+$/.test(text)) return Number(text);
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(text)) return Number(text);
  if (/^(true|True|TRUE)$/.test(text)) return true;
  if (/^(false|False|FALSE)$/.test(text)) return false;
  if (/^(null|Null|NULL|~|)$/.test(text)) return null;
  return text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Returns a fresh tree with every string interpolated. Problems are reported at the value's
 * position; such a value is left as written. Non-JSON values (tagged binaries, sets) are
 * refused here too.
 */
export function interpolateTree(source: SourceFile, env: NodeJS.ProcessEnv, problems: Problems): unknown {
  const report = (path: Path, message: string) =>
    problems.add({ file: source.display, fileIndex: source.fileIndex, position: source.locate(path), path, message });

  const walk = (value: unknown, path: PathSegments): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('${')) return value;
      const result = interpolateString(value, env);
      if (!result.ok) { for (const e of result.errors) report(path, e); return value; }
      const wholeReference = /^\$\{[^}]*\}$/.test(value.trim());
      if (wholeReference && source.scalarStyle(path) === 'PLAIN') return plainScalar(result.value);
      return result.value;
    }
    if (Array.isArray(value)) return value.map((item, index) => walk(item, [...path, index]));
    if (isPlainObject(value)) {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(value)) {
        Object.defineProperty(out, key, { value: walk(child, [...path, key]), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    if (value !== null && typeof value === 'object') {
      report(path, `unsupported YAML value (${value.constructor?.name ?? 'object'}): use plain strings, numbers, lists and mappings`);
      return null;
    }
    return value;
  };
  return walk(source.value, []);
}

type PathSegments = (string | number)[];
