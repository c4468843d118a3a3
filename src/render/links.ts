/**
 * Cross-store comparisons for people (`verify --point`): one line per link, then the orphans
 * of each side with their examples. Pure.
 */
import { isFailure, type LinkOutcome } from '../links/compare.js';
import { plural } from './format.js';

function orphanLines(o: Exclude<LinkOutcome, { problem: string }>): string[] {
  const lines: string[] = [];
  const what = o.other === 'chroma' ? ['record', 'records'] as const : ['key', 'keys'] as const;
  const eg = (examples: string[], count: number) => `e.g. ${examples.join(', ')}${count > examples.length ? ', …' : ''}`;
  if (o.missing.count) lines.push(`    ${plural(o.missing.count, 'row')} without ${o.missing.count === 1 ? 'its' : 'their'} ${what[0]} in ${o.other} (side postgres): ${eg(o.missing.examples, o.missing.count)}`);
  if (o.orphans.count) lines.push(`    ${plural(o.orphans.count, what[0], what[1])} in ${o.other} without ${o.orphans.count === 1 ? 'its' : 'their'} row (side ${o.other}): ${eg(o.orphans.examples, o.orphans.count)}`);
  return lines;
}

/** True when every link compared and none has an orphan. */
export function linksAgree(outcomes: readonly LinkOutcome[]): boolean {
  return outcomes.every((o) => (isFailure(o) ? o.kind === 'skipped' : o.missing.count === 0 && o.orphans.count === 0));
}

export function renderLinkOutcomes(title: string, outcomes: readonly LinkOutcome[]): string {
  const lines = [title];
  const width = Math.max(...outcomes.map((o) => o.link.length));
  for (const o of outcomes) {
    if (isFailure(o)) {
      lines.push(`${o.kind === 'skipped' ? '-' : '!'} ${o.link.padEnd(width)}  ${o.kind === 'skipped' ? 'skipped' : o.kind === 'broken' ? 'broken link' : 'not compared'}: ${o.problem}`);
      continue;
    }
    const orphans = o.missing.count + o.orphans.count;
    lines.push(`${orphans ? '✗' : '✓'} ${o.link.padEnd(width)}  ${o.note}: ${orphans ? plural(orphans, 'orphan') : 'no orphans'}`);
    lines.push(...orphanLines(o));
  }
  const bad = outcomes.filter((o) => (isFailure(o) ? o.kind !== 'skipped' : o.missing.count + o.orphans.count > 0));
  lines.push('', bad.length ? `${plural(bad.length, 'link')} of ${outcomes.length} ${bad.length === 1 ? 'disagrees or could' : 'disagree or could'} not be compared.` : `The stores agree through ${plural(outcomes.filter((o) => !isFailure(o)).length, 'link')}.`);
  return lines.join('\n');
}
