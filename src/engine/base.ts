/**
 * `plan --base REF|FILE`: the desired state of the base of a change.
 *
 * - FILE (a path that exists): that config file, loaded as it is (its relative paths resolve
 *   against its own directory).
 * - REF (anything else: a branch, a tag, a commit): `git show REF:<config>` and the policy
 *   files it includes, and its migrations folder, written into a temporary copy of the
 *   repository layout and loaded from there. The storage path is mapped back to the working
 *   tree, so that the base is planned against the same backups as the head.
 *
 * Also returns the text of each config and policy file on both sides, for the textual diff.
 */
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../config/load.js';
import { DEFAULTS } from '../config/normalize.js';
import type { Desired } from '../config/types.js';
import { JarvisError, isJarvisError, messageOf } from '../errors.js';
import { describeImpact, type ImpactLine } from './impact.js';
import { makePlan, type EngineParts } from './index.js';
import { runToolToEnd } from '../platform/processes.js';
import type { Plan } from './types.js';

export interface FilePair {
  /** As shown in the diff: repository-relative for a ref, relative to the config's folder for a file. */
  path: string;
  before: string | null;
  after: string | null;
}

export interface BaseState {
  /** `REF` or the file, as given. */
  label: string;
  desired: Desired;
  files: FilePair[];
  /** Call when planning is done: a ref's temporary copy holds the base's migrations. */
  dispose(): Promise<void>;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function git(cwd: string, args: string[]): Promise<string> {
  let r: { code: number; stdout: string; stderr: string };
  try {
    r = await runToolToEnd('git', args, { cwd });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new JarvisError('TOOL_MISSING', 'plan --base REF needs git, which is not installed', { hint: 'install git, or pass the base config as a file' });
    throw new JarvisError('USAGE', `git ${args.join(' ')}: ${messageOf(e)}`, { cause: e });
  }
  if (r.code !== 0) throw new JarvisError('USAGE', `git ${args.join(' ')}: ${(r.stderr || `exit ${r.code}`).trim().split('\n')[0]}`);
  return r.stdout;
}

/** The config and policy files of a loaded Desired, by a key that pairs them across sides. */
async function filesOf(desired: Desired, keyOf: (file: string) => string): Promise<Map<string, { path: string; text: string }>> {
  const out = new Map<string, { path: string; text: string }>();
  // Policy sources are relative to the config's folder.
  const policyFiles = desired.retention.map((p) => resolve(dirname(desired.configFile), p.source.file));
  for (const file of [desired.configFile, ...new Set(policyFiles)]) {
    if (out.has(keyOf(file))) continue;
    out.set(keyOf(file), { path: keyOf(file), text: await readFile(file, 'utf8') });
  }
  return out;
}

function pairs(before: Map<string, { path: string; text: string }>, after: Map<string, { path: string; text: string }>): FilePair[] {
  const keys = [...new Set([...before.keys(), ...after.keys()])].sort();
  return keys.map((k) => ({ path: k, before: before.get(k)?.text ?? null, after: after.get(k)?.text ?? null }));
}

/** Writes the blobs of a repository folder at REF (not recursive) under `into`. */
async function extractFolder(root: string, ref: string, folder: string, into: string): Promise<void> {
  const listing = await git(root, ['ls-tree', '-z', `${ref}`, '--', folder.endsWith('/') ? folder : folder + '/']);
  for (const entry of listing.split('\0').filter(Boolean)) {
    const [meta, path] = entry.split('\t') as [string, string];
    if (meta.split(' ')[1] !== 'blob') continue;
    const text = await git(root, ['show', `${ref}:${path}`]);
    await mkdir(dirname(join(into, path)), { recursive: true });
    await writeFile(join(into, path), text);
  }
}

/** `a/b` inside the repository for an absolute path, or null when it is outside. */
function repoRelative(root: string, path: string): string | null {
  const rel = relative(root, path);
  return rel.startsWith('..') || rel === '' ? null : rel.split(sep).join('/');
}

function mapPaths(desired: Desired, from: string, to: string, headConfig: string): Desired {
  const move = (p: string) => (p === from || p.startsWith(from + sep) ? to + p.slice(from.length) : p);
  return {
    ...desired,
    configFile: headConfig,
    storage: { ...desired.storage, path: move(desired.storage.path) },
    // A local repository in the checkout is read where the head's is (as the storage path).
    ...(desired.repositories ? { repositories: desired.repositories.map((r) => (r.kind === 'local' ? { ...r, dir: move(r.dir) } : r)) } : {}),
  };
}

async function loadAtRef(ref: string, head: Desired, env: NodeJS.ProcessEnv): Promise<BaseState> {
  const configDir = dirname(head.configFile);
  const root = (await git(configDir, ['rev-parse', '--show-toplevel'])).trim();
  const configRel = repoRelative(root, head.configFile);
  if (!configRel) throw new JarvisError('USAGE', `plan --base ${ref}: ${head.configFile} is not inside the git repository ${root}`);
  await git(root, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]).catch(() => {
    throw new JarvisError('USAGE', `plan --base ${ref}: no such file, and no such git ref in ${root}`, { hint: 'give a branch, tag or commit (origin/main), or a config file' });
  });
  let text: string;
  try {
    text = await git(root, ['show', `${ref}:${configRel}`]);
  } catch {
    throw new JarvisError('USAGE', `plan --base ${ref}: ${configRel} does not exist at ${ref}`, { hint: 'the base has no config: compare with a file instead (plan --base FILE)' });
  }
  const tmp = await mkdtemp(join(tmpdir(), 'jarvis-db-base-'));
  try {
    await mkdir(dirname(join(tmp, configRel)), { recursive: true });
    await writeFile(join(tmp, configRel), text);
    // The folders the base config reads: those of its includes, and its migrations.
    let raw: { retention?: { include?: unknown }; schema?: { migrations?: unknown } } = {};
    try { raw = (parseYaml(text) ?? {}) as typeof raw; } catch { /* loadConfig reports it */ }
    const folders = new Set<string>();
    for (const pattern of Array.isArray(raw.retention?.include) ? raw.retention.include : []) {
      if (typeof pattern === 'string') folders.add(dirname(resolve(configDir, pattern)));
    }
    folders.add(resolve(configDir, typeof raw.schema?.migrations === 'string' ? raw.schema.migrations : DEFAULTS.migrations));
    for (const folder of folders) {
      const rel = repoRelative(root, folder);
      if (rel) await extractFolder(root, ref, rel, tmp);
    }
    let loaded: Desired;
    try {
      loaded = await loadConfig(join(tmp, configRel), env);
    } catch (e) {
      if (!isJarvisError(e)) throw e;
      const fix = (s: string) => s.split(tmp + sep).join(`${ref}:`).replace(/(\.\.\/)+tmp\/jarvis-db-base-[^/]+\//g, `${ref}:`);
      throw new JarvisError(e.code, `the base config at ${ref}: ${fix(e.message)}`, { details: e.details.map(fix), hint: e.hint, cause: e });
    }
    const keyIn = (base: string) => (file: string) => repoRelative(base, file) ?? file;
    const before = await filesOf(loaded, keyIn(tmp));
    const after = await filesOf(head, keyIn(root));
    const desired = mapPaths(loaded, tmp, root, head.configFile);
    // The migrations folder stays in the temporary copy (the base's migrations), until the caller is done.
    return { label: ref, desired, files: pairs(before, after), dispose: () => rm(tmp, { recursive: true, force: true }) };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

async function loadFile(file: string, head: Desired, env: NodeJS.ProcessEnv): Promise<BaseState> {
  const desired = await loadConfig(file, env);
  const keyIn = (configFile: string) => (f: string) => (f === configFile ? 'jarvis-db.yaml (config)' : relative(dirname(configFile), f).split(sep).join('/'));
  const before = await filesOf(desired, keyIn(desired.configFile));
  const after = await filesOf(head, keyIn(head.configFile));
  return { label: file, desired, files: pairs(before, after), dispose: async () => undefined };
}

/** The base's desired state and file texts: a file if `refOrFile` names one, else a git ref. */
export async function loadBase(refOrFile: string, head: Desired, env: NodeJS.ProcessEnv = process.env): Promise<BaseState> {
  return (await isFile(refOrFile)) ? loadFile(refOrFile, head, env) : loadAtRef(refOrFile, head, env);
}

export interface ChangeReview {
  label: string;
  impact: ImpactLine[];
  files: FilePair[];
}

/**
 * `plan --base`: the base's desired state, planned against the observed state as the head is,
 * and the impact of going from one to the other. Both plans are whole (not narrowed by --target):
 * pass the head's plan when it is.
 */
export async function reviewChange(refOrFile: string, head: Desired, parts: EngineParts, options: { headPlan?: Plan; env?: NodeJS.ProcessEnv } = {}): Promise<ChangeReview> {
  const env = options.env ?? process.env;
  const base = await loadBase(refOrFile, head, env);
  try {
    const [basePlan, headPlan] = await Promise.all([
      makePlan({ desired: base.desired, parts, env }).then((r) => r.plan),
      options.headPlan ?? makePlan({ desired: head, parts, env }).then((r) => r.plan),
    ]);
    return { label: base.label, impact: describeImpact(base.desired, head, basePlan, headPlan, parts.modules), files: base.files };
  } finally {
    await base.dispose();
  }
}
