/**
 * Loading jarvis-db.yaml (docs/architecture.md §3): read and parse with positions, interpolate the
 * environment, include policy files, validate against the JSON Schema, run the semantic
 * checks, and return `Desired` with defaults and absolute paths. Every problem of every
 * file is reported at once, in one JarvisError('CONFIG_INVALID').
 */
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { JarvisError } from '../errors.js';
import { expandInclude } from './includes.js';
import { interpolateTree } from './interpolate.js';
import { toDesired, DEFAULTS, type PolicyInput } from './normalize.js';
import { describeValue, Problems, type Path } from './problems.js';
import { SemanticChecker, type Located } from './semantic.js';
import type { Desired } from './types.js';
import { validateAgainstSchema } from './validate.js';
import { displayName, parseSource, readSourceBytes, type SourceFile } from './yaml-source.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

interface Loaded { source: SourceFile; value: unknown }

/** Reads, parses and interpolates one file; problems go to `problems`. Undefined when it could not be parsed. */
async function loadFile(file: string, fileIndex: number, env: NodeJS.ProcessEnv, problems: Problems): Promise<Loaded | undefined> {
  const display = displayName(file);
  const bytes = await readSourceBytes(file);
  if (typeof bytes === 'string') {
    problems.add({ file: display, fileIndex, path: [], message: bytes });
    return undefined;
  }
  const source = parseSource(file, display, fileIndex, bytes, problems);
  if (source.value === undefined) return undefined;
  if (!isObj(source.value)) {
    problems.add({ file: display, fileIndex, position: source.locate([]), path: [], message: `expected a mapping of keys at the top level, got ${describeValue(source.value)}` });
    return undefined;
  }
  return { source, value: interpolateTree(source, env, problems) };
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** `schema.target` names a migration file that exists (when the migrations folder can be read). */
async function checkTarget(config: Obj, source: SourceFile, problems: Problems): Promise<void> {
  if (!isObj(config.schema)) return;
  const target = config.schema.target;
  if (typeof target !== 'string' || target === 'latest' || target === '0') return;
  const folder = resolve(dirname(source.file), typeof config.schema.migrations === 'string' ? config.schema.migrations : DEFAULTS.migrations);
  let names: string[];
  try {
    names = (await readdir(folder)).filter((n) => !n.startsWith('.'));
  } catch {
    return; // the migrate module reports a missing folder when it needs it
  }
  const stems = names.map((n) => n.replace(/\.[^.]+$/, ''));
  if (!stems.includes(target) && !names.includes(target)) {
    const path = ['schema', 'target'];
    if (!problems.covers(source.fileIndex, path)) {
      problems.add({ file: source.display, fileIndex: source.fileIndex, position: source.locate(path), path,
        message: `"${target}" is not a migration in ${displayName(folder)} (expected latest, 0, or one of: ${stems.slice(-5).join(', ') || 'none there'})` });
    }
  }
}

export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Desired> {
  const configFile = resolve(file);
  const display = displayName(configFile);
  const problems = new Problems();
  let config: Loaded | undefined;
  try {
    config = await loadFile(configFile, 0, env, problems);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new JarvisError('CONFIG_NOT_FOUND', `config file ${file} not found`, {
        hint: 'pass the file with -c FILE (or set JARVIS_DB_CONFIG); see examples/minimal.yaml', cause: e,
      });
    }
    if (code === 'EACCES') throw new JarvisError('CONFIG_INVALID', `config file ${file} cannot be read (permission denied)`, { cause: e });
    throw e;
  }
  if (!config) {
    problems.throwIfAny(display);
    throw new JarvisError('INTERNAL', `${display}: could not be loaded`);
  }
  const { source, value } = config;
  const checker = new SemanticChecker(problems);
  const root = value as Obj;
  // Before the schema, whose "unknown key" would say less (and the checker names no value).
  checker.checkRepositoryCredentials(root, source);
  validateAgainstSchema('config', value, source, problems);

  // Policies: inline first, then each included file in the order written.
  const policies: Located[] = [];
  const policyInputs: PolicyInput[] = [];
  const retention = isObj(root.retention) ? root.retention : {};
  (Array.isArray(retention.policies) ? retention.policies : []).forEach((policy, i) => {
    const path: Path = ['retention', 'policies', i];
    policies.push({ value: policy, source, path });
    policyInputs.push({ value: policy, file: configFile, path });
  });
  const hash = createHash('sha256').update(source.bytes);
  const included = new Set<string>([configFile]);
  let fileIndex = 1;
  const includes = Array.isArray(retention.include) ? retention.include : [];
  for (let i = 0; i < includes.length; i++) {
    const entry = includes[i];
    if (typeof entry !== 'string' || entry === '') continue;
    const at: Path = ['retention', 'include', i];
    const report = (message: string) => problems.add({ file: display, fileIndex: 0, position: source.locate(at), path: at, message });
    const expanded = await expandInclude(entry, dirname(configFile));
    if ('error' in expanded) { report(expanded.error); continue; }
    for (const policyFile of expanded.files) {
      if (included.has(policyFile)) continue;
      included.add(policyFile);
      let loaded: Loaded | undefined;
      try {
        loaded = await loadFile(policyFile, fileIndex++, env, problems);
      } catch (e) {
        const code = errnoCode(e);
        report(code === 'ENOENT' || code === 'ENOTDIR' ? `included file ${displayName(policyFile)} does not exist` : `included file ${displayName(policyFile)} cannot be read (${code ?? String(e)})`);
        continue;
      }
      if (!loaded) continue;
      hash.update(loaded.source.bytes);
      validateAgainstSchema('policyFile', loaded.value, loaded.source, problems);
      const list = isObj(loaded.value) && Array.isArray(loaded.value.policies) ? loaded.value.policies : [];
      list.forEach((policy, j) => {
        const path: Path = ['policies', j];
        policies.push({ value: policy, source: loaded.source, path });
        policyInputs.push({ value: policy, file: policyFile, path });
      });
    }
  }

  checker.checkServices(root, source);
  checker.checkRepositories(root, source);
  checker.checkBackups(root, source);
  checker.checkPolicies(root, source, policies);
  checker.checkPartitions(root, source);
  checker.checkLinks(root, source);
  checker.checkErasure(root, source);
  checker.checkSchema(root, source);
  checker.checkThresholds(root, source);
  await checkTarget(root, source, problems);
  problems.throwIfAny(display);
  const desired = toDesired(value, configFile, hash.digest('hex'), policyInputs);
  // Tables and collections are checked against the services later; their errors name the line.
  desired.links?.forEach((link, i) => { link.source.line = source.locate(['links', i])?.line; });
  return desired;
}
