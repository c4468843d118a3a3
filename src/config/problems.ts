/**
 * Config problems: each one names the file, the line and column where there is one, the
 * path of the value (`backups[1].cron`) and what is wrong. They are collected, sorted and
 * thrown together as one JarvisError('CONFIG_INVALID') whose details list them one a line.
 */
import { JarvisError } from '../errors.js';
import { redact } from '../services/redact.js';

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

export interface Position { line: number; col: number }

export interface Problem {
  /** The file as shown to the user (relative to the working directory when inside it). */
  file: string;
  /** Order of the file in the load (the config first, then included policy files). */
  fileIndex: number;
  position?: Position;
  path: Path;
  message: string;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** `['backups', 1, 'cron']` → `backups[1].cron`; keys that are not identifiers are quoted. */
export function formatPath(path: Path): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (IDENTIFIER.test(segment) && !segment.includes('.')) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** A value quoted for a message: strings in double quotes, cut short, passwords hidden. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)';
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return redact(JSON.stringify(shown));
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

export function formatProblem(p: Problem): string {
  const where = p.position ? `${p.file}:${p.position.line}:${p.position.col}` : p.file;
  const path = formatPath(p.path);
  return redact(path ? `${where}: ${path}: ${p.message}` : `${where}: ${p.message}`);
}

export class Problems {
  readonly list: Problem[] = [];

  add(problem: Problem): void {
    const key = formatProblem(problem);
    if (!this.list.some((p) => formatProblem(p) === key)) this.list.push(problem);
  }

  get size(): number { return this.list.length; }

  /** True when a problem was already reported at exactly this path. */
  covers(fileIndex: number, path: Path): boolean {
    return this.list.some((p) => p.fileIndex === fileIndex && p.path.length === path.length && p.path.every((s, i) => s === path[i]));
  }

  sorted(): Problem[] {
    return [...this.list].sort((a, b) =>
      a.fileIndex - b.fileIndex
      || (a.position?.line ?? 0) - (b.position?.line ?? 0)
      || (a.position?.col ?? 0) - (b.position?.col ?? 0));
  }

  /** Throws one JarvisError listing every problem, if there is any. */
  throwIfAny(configFile: string): void {
    if (this.list.length === 0) return;
    const n = this.list.length;
    throw new JarvisError('CONFIG_INVALID', `${configFile}: ${n} error${n === 1 ? '' : 's'}`, {
      details: this.sorted().map(formatProblem),
    });
  }
}
