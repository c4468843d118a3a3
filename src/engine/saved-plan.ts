/**
 * Saved plans (`plan --out FILE`, `apply FILE`): the plan as JSON, written atomically, read
 * back with its shape checked so that a truncated or hand-edited file is refused clearly.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { JarvisError } from '../errors.js';
import { redactUrl } from '../services/redact.js';
import { paramsProblem } from './action-params.js';
import { PLAN_FORMAT_VERSION, type Plan } from './types.js';

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The plan as a file: the same JSON as `plan --format json`. URL passwords are masked; the
 * wider `redact` (every secret value of the environment) is not applied, because a short
 * secret could match inside an id or the fingerprint and corrupt the plan. Modules keep
 * secrets out of actions.
 */
export async function writePlanFile(file: string, json: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, redactUrl(json.endsWith('\n') ? json : json + '\n'), { mode: 0o600 });
  await rename(tmp, file);
}

/**
 * What is wrong with a parsed plan file, or null. `knownTypes` are the action types with a
 * handler; the params of each action are checked against the rules of its type.
 */
export function planFileProblem(value: unknown, knownTypes: ReadonlySet<string>): string | null {
  if (!isObj(value)) return 'it is not a JSON object';
  if (value.formatVersion !== PLAN_FORMAT_VERSION) return `its formatVersion is ${JSON.stringify(value.formatVersion)}; this jarvis-db reads ${PLAN_FORMAT_VERSION}`;
  for (const key of ['createdAt', 'configFile', 'configHash', 'fingerprint'] as const) {
    if (typeof value[key] !== 'string') return `"${key}" is missing`;
  }
  if (!isObj(value.basis) || typeof value.basis.configHash !== 'string' || !isObj(value.basis.modules)) return '"basis" is missing';
  for (const key of ['actions', 'findings', 'errors'] as const) {
    if (!Array.isArray(value[key])) return `"${key}" is not a list`;
  }
  const ids = new Set<string>();
  for (const [i, a] of (value.actions as unknown[]).entries()) {
    if (!isObj(a)) return `actions[${i}] is not an object`;
    for (const key of ['id', 'type', 'module', 'target', 'reason'] as const) {
      if (typeof a[key] !== 'string') return `actions[${i}].${key} is missing`;
    }
    if (a.risk !== 'safe' && a.risk !== 'destructive') return `actions[${i}].risk must be safe or destructive`;
    if (!isObj(a.params)) return `actions[${i}].params is missing`;
    if (!knownTypes.has(a.type as string)) return `actions[${i}] has the unknown type ${JSON.stringify(a.type)}`;
    const problem = paramsProblem(a.type as string, a.params);
    if (problem) return `actions[${i}] (${a.id as string}, ${a.type as string}): ${problem}`;
    if (ids.has(a.id as string)) return `two actions have the id ${a.id as string}`;
    ids.add(a.id as string);
  }
  return null;
}

export async function readPlanFile(file: string, knownTypes: ReadonlySet<string>): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new JarvisError(code === 'ENOENT' ? 'USAGE' : 'PLAN_INVALID', `plan file ${file} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(e)})`}`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new JarvisError('PLAN_INVALID', `plan file ${file} is not valid JSON (${(e as Error).message})`, { hint: 'save a plan with `jarvis-db plan --out FILE`' });
  }
  const problem = planFileProblem(value, knownTypes);
  if (problem) throw new JarvisError('PLAN_INVALID', `plan file ${file} is not a jarvis-db plan: ${problem}`, { hint: 'save a plan with `jarvis-db plan --out FILE`' });
  return value as Plan;
}
