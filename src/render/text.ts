/**
 * Plans, apply results and `plan --base` impact as text for a terminal (docs/architecture.md §2):
 * `+` create, `-` destroy, `~` change in place, `!` finding; the Terraform-like summary line.
 * Pure: a palette decides colours (none when output is not a terminal).
 */
import { basename } from 'node:path';
import { impactSentence, type ImpactLine } from '../engine/impact.js';
import { blockedActions } from '../engine/planner.js';
import { ACTION_KIND, type Action, type ActionType, type Estimate, type Finding, type Plan, type RunResult } from '../engine/types.js';
import { palette, type Palette } from './color.js';
import { formatBytes, formatDuration, plural } from './format.js';
import { symbolOf } from './progress.js';

export interface PlanCounts { create: number; change: number; destroy: number; destructive: number; findings: number; errors: number }

export function planCounts(plan: Plan): PlanCounts {
  const counts: PlanCounts = { create: 0, change: 0, destroy: 0, destructive: 0, findings: plan.findings.length, errors: plan.errors.length };
  for (const a of plan.actions) {
    counts[ACTION_KIND[a.type as ActionType] ?? 'change']++;
    if (a.risk === 'destructive') counts.destructive++;
  }
  return counts;
}

/**
 * `Plan: 3 to create, 1 to change, 2 to destroy.`, or `No changes. Observed state matches
 * jarvis-db.yaml.`; a plan with errors never claims the state matches.
 */
export function summaryLine(plan: Plan): string {
  const c = planCounts(plan);
  if (plan.actions.length === 0 && plan.errors.length) return `No plan: ${plural(plan.errors.length, 'error')} to fix first.`;
  if (plan.actions.length === 0) return `No changes. Observed state matches ${basename(plan.configFile)}.`;
  return `Plan: ${c.create} to create, ${c.change} to change, ${c.destroy} to destroy.`;
}

export function estimateText(e: Estimate | null): string {
  if (!e) return '';
  const parts: string[] = [];
  if (e.rows !== undefined) parts.push(plural(e.rows, 'row'));
  if (e.bytes !== undefined) parts.push(`~${formatBytes(e.bytes)}`);
  if (e.backups !== undefined && e.backups !== 1) parts.push(plural(e.backups, 'backup'));
  if (e.seconds !== undefined) parts.push(`~${formatDuration(e.seconds * 1000)}`);
  return parts.join(', ');
}

function colourSymbol(c: Palette, action: Action): string {
  const s = symbolOf(action);
  return s === '+' ? c.green(s) : s === '-' ? c.red(s) : c.yellow(s);
}

function statusColour(c: Palette, f: Finding): (s: string) => string {
  return f.status === 'CRITICAL' ? c.red : f.status === 'WARNING' || f.status === 'UNKNOWN' ? c.yellow : c.green;
}

export function findingLine(c: Palette, f: Finding): string {
  return `${statusColour(c, f)('!')} ${statusColour(c, f)(f.status)} ${f.check}: ${f.message}`;
}

/** The heading of a plan's errors: what they stop (only what depends on them). */
export function errorsHeading(plan: Plan, held: number): string {
  const n = plural(plan.errors.length, 'error');
  if (plan.actions.length === 0) return `${n}: fix ${plan.errors.length === 1 ? 'it' : 'them'} first`;
  if (held === plan.actions.length) return `${n}: no action can run until ${plan.errors.length === 1 ? 'it is' : 'they are'} fixed`;
  const others = plan.actions.length - held;
  return `${n}: ${plural(held, 'action')} held back until fixed; ${others === 1 ? 'the other still runs' : `the ${others} others still run`}`;
}

export function renderPlanText(plan: Plan, c: Palette = palette(false)): string {
  const out: string[] = [];
  const held = blockedActions(plan.actions, plan.errors);
  if (plan.errors.length) {
    out.push(c.red(c.bold(errorsHeading(plan, held.size))));
    for (const e of plan.errors) out.push(`  ${c.red('✗')} ${e.module}: ${e.message}${e.path ? c.dim(` (${e.path})`) : ''}`);
    out.push('');
  }
  if (plan.actions.length) {
    out.push(`jarvis-db will do this, in this order${plan.target ? ` (--target ${plan.target})` : ''}:`, '');
    for (const a of plan.actions) {
      const flag = a.risk === 'destructive' ? c.red(c.bold(' DESTRUCTIVE')) : '';
      const hold = held.has(a.id) ? c.red(' HELD BACK') : '';
      out.push(`  ${colourSymbol(c, a)} ${c.bold(a.type)} ${a.target}${flag}${hold}  ${c.dim(a.id)}`);
      const est = estimateText(a.estimate);
      out.push(`      ${a.reason}${est ? c.dim(` (${est})`) : ''}`);
      if (held.has(a.id)) out.push(`      ${c.red(`not run: ${held.get(a.id)}`)}`);
    }
    out.push('');
  }
  if (plan.findings.length) {
    out.push('Findings:');
    for (const f of plan.findings) out.push(`  ${findingLine(c, f)}`);
    out.push('');
  }
  out.push(plan.actions.length ? c.bold(summaryLine(plan)) : summaryLine(plan));
  return out.join('\n') + '\n';
}

/** The final summary of an apply. */
export function renderRunText(result: RunResult, c: Palette = palette(false)): string {
  const out: string[] = [];
  const n = { done: 0, failed: 0, not_executed: 0 };
  for (const r of result.results) n[r.status]++;
  const took = formatDuration(result.durationMs);
  switch (result.status) {
    case 'nothing_to_do':
      out.push(`${summaryLine(result.plan)} Nothing to apply.`);
      break;
    case 'succeeded':
      out.push(c.green(`Apply complete: ${plural(n.done, 'action')} done in ${took}.`));
      break;
    default: {
      const head = result.status === 'cancelled' ? 'Apply interrupted' : 'Apply failed';
      out.push(c.red(`${head}: ${n.done} done, ${n.failed} failed, ${n.not_executed} not executed (${took}).`));
      for (const e of result.errors) out.push(`  ${c.red('✗')} ${e.module}: ${e.message}${e.path ? ` (${e.path})` : ''}`);
      for (const r of result.results.filter((x) => x.status === 'failed')) {
        out.push(`  ${c.red('✗')} ${r.id}: ${r.error?.message ?? 'failed'}`);
        if (r.error?.hint) out.push(`    hint: ${r.error.hint}`);
      }
      const skipped = result.results.filter((x) => x.status === 'not_executed');
      // One line per cause: the actions an outage held back, then those an earlier failure stopped.
      const byReason = new Map<string, string[]>();
      for (const r of skipped) byReason.set(r.reason ?? 'not executed', [...(byReason.get(r.reason ?? 'not executed') ?? []), r.id]);
      for (const [reason, ids] of byReason) out.push(`  not executed: ${ids.join(', ')}: ${reason}`);
    }
  }
  out.push(c.dim(`Journal: ${result.journalFile}`));
  return out.join('\n') + '\n';
}

/** The impact of a change of the desired state (`plan --base`), in words, then the textual diff. */
export function renderImpactText(label: string, impact: ImpactLine[], diff: string, c: Palette = palette(false)): string {
  const out = [`Impact of the change from ${label}, against the observed state:`];
  if (impact.length === 0) out.push('  none: the desired state is the same');
  for (const l of impact) out.push(`  ${l.destructive ? c.red('!') : '~'} ${impactSentence(l)}`);
  out.push('');
  if (diff) {
    out.push('Changes to the config:');
    for (const line of diff.trimEnd().split('\n')) {
      out.push(line.startsWith('+') && !line.startsWith('+++') ? c.green(line) : line.startsWith('-') && !line.startsWith('---') ? c.red(line) : line.startsWith('@@') ? c.cyan(line) : line);
    }
    out.push('');
  }
  return out.join('\n') + '\n';
}
