/**
 * The one place that turns any error into output and an exit code (docs/architecture.md §4 rule 7):
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
  if (debug) lines.push(...debugLines(error));
  // Everything, the stacks and every cause's message included, goes through redaction as one text.
  return redact(lines.join('\n'));
}

/** The stack of an error and of each cause (an AggregateError's errors too); a cause that is not an Error as text. */
function debugLines(error: unknown): string[] {
  const lines: string[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown, depth: number): void => {
    if (seen.has(e) || depth > 10) return;
    seen.add(e);
    if (!(e instanceof Error)) {
      lines.push(typeof e === 'string' ? e : safeJson(e));
      return;
    }
    lines.push(e.stack ?? `${e.name}: ${e.message}`);
    if (e instanceof AggregateError) {
      for (const inner of e.errors) { lines.push('including:'); visit(inner, depth + 1); }
    }
    if (e.cause !== undefined) { lines.push('caused by:'); visit(e.cause, depth + 1); }
  };
  visit(error, 0);
  return lines;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export function reportFailure(error: unknown, debug: boolean): number {
  process.stderr.write(describeFailure(error, debug) + '\n');
  return 1;
}
