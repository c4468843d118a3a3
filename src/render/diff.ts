/** The textual diff of the config and policy files between a base and the working tree (`plan --base`). */
import { createTwoFilesPatch } from 'diff';
import type { FilePair } from '../engine/base.js';

/** A unified diff of every file that differs (`a/` the base, `b/` the head), empty when none does. */
export function configDiff(files: readonly FilePair[]): string {
  return files
    .filter((f) => f.before !== f.after)
    .map((f) => createTwoFilesPatch(f.before === null ? '/dev/null' : `a/${f.path}`, f.after === null ? '/dev/null' : `b/${f.path}`, f.before ?? '', f.after ?? '', undefined, undefined, { context: 3 })
      .replace(/^=+\n/, ''))
    .join('');
}
