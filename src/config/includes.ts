/**
 * `retention.include`: paths and simple patterns of policy files, relative to the config
 * file's directory. A `*` or `?` may appear in the file name (`./policies/*.yaml`), not in
 * directories. Matches are sorted by name; hidden files match only a pattern that starts
 * with a dot. Node 20 has no stable fs.glob, and this is all a config needs.
 */
import { readdir } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';

const WILDCARD = /[*?[\]{}]/;

function patternToRegExp(pattern: string): RegExp {
  const body = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.+()|]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}

export type IncludeResult = { files: string[] } | { error: string };

/** The absolute files an include entry names, in order, or why it names none. */
export async function expandInclude(entry: string, baseDir: string): Promise<IncludeResult> {
  const absolute = resolve(baseDir, entry);
  const dir = dirname(absolute);
  const name = basename(absolute);
  if (WILDCARD.test(dir)) return { error: `"${entry}": wildcards are allowed in the file name only (like ./policies/*.yaml)` };
  if (/[[\]{}]/.test(name)) return { error: `"${entry}": only * and ? are supported as wildcards` };
  if (!WILDCARD.test(name)) return { files: [absolute] };
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? `"${entry}": the directory ${dir} does not exist` : `"${entry}": cannot list ${dir} (${code ?? String(e)})` };
  }
  const re = patternToRegExp(name);
  const files = entries
    .filter((d) => (d.isFile() || d.isSymbolicLink()) && re.test(d.name) && (!d.name.startsWith('.') || name.startsWith('.')))
    .map((d) => resolve(dir, d.name))
    .sort();
  if (files.length === 0) return { error: `"${entry}" matches no file in ${dir}` };
  return { files };
}
