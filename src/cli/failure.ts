/**
 * The one place that turns any error into output and an exit code (DESIGN.md §4 rule 7):
 * one line naming what failed and what to do; the stack only with --debug; always redacted.
 */
import { isJarvisError, messageOf } from '../errors.js';
import { redact } from '../services/redact.js';

export function describeFailure(error: unknown, debug: boolean): string {
  const lines: string[] = [];
  if (isJarvisError(error)) {
    lines.push(`error: ${error.message}`);
    for (const detail of error.details) lines.push(detail);
    if (error.hint) lines.push(`hint: ${error.hint}`);
  } else {
    lines.push(`error: ${messageOf(error)}`);
  }
  if (debug) {
    let e: unknown = error;
    while (e instanceof Error) {
      lines.push(e.stack ?? String(e));
      e = e.cause;
      if (e !== undefined) lines.push('caused by:');
    }
  }
  return redact(lines.join('\n'));
}

export function reportFailure(error: unknown, debug: boolean): number {
  process.stderr.write(describeFailure(error, debug) + '\n');
  return 1;
}
