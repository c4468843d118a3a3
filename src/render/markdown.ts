/**
 * A plan as markdown for a pull-request comment: the summary line, a table of counts per
 * module, destructive actions called out first, every action and finding in collapsible
 * sections, and (with `plan --base`) the impact of the change and the config diff.
 * GitHub refuses comments over 65,536 characters: the output stays under MARKDOWN_LIMIT,
 * cutting rows from the end of each list and saying how many were cut.
 */
import { basename } from 'node:path';
import { impactSentence, type ImpactLine } from '../engine/impact.js';
import { ACTION_KIND, type Action, type ActionType, type Plan } from '../engine/types.js';
import { formatCount, plural } from './format.js';
import { symbolOf } from './progress.js';
import { blockedActions } from '../engine/planner.js';
import { errorsHeading, estimateText, planCounts, summaryLine } from './text.js';

export const MARKDOWN_LIMIT = 60_000;
/** Room kept for closing tags and the note about what was cut. */
const RESERVE = 800;

/** A table cell: one line, no pipes breaking the table, no HTML. */
export function cell(text: string): string {
  return text.replace(/\r?\n/g, ' ').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\|/g, '\\|');
}

const code = (text: string) => `\`${text.replace(/`/g, "'")}\``;

class Budget {
  private parts: string[] = [];
  private length = 0;
  readonly cut = new Map<string, number>();
  constructor(private readonly limit: number) {}
  /** Always added (headers, closing tags): the reserve pays for these. */
  add(text: string): void {
    this.parts.push(text);
    this.length += text.length + 1;
  }
  /** Added if it fits; counted as cut (under `what`) otherwise. */
  tryAdd(text: string, what: string): boolean {
    if (this.length + text.length + 1 + RESERVE > this.limit || (this.cut.get(what) ?? 0) > 0) {
      this.cut.set(what, (this.cut.get(what) ?? 0) + 1);
      return false;
    }
    this.add(text);
    return true;
  }
  text(): string {
    return this.parts.join('\n') + '\n';
  }
}

export interface MarkdownExtras {
  /** `plan --base`: where the change starts from, its impact in words, the unified diff. */
  base?: { label: string; impact: ImpactLine[]; diff: string };
  limit?: number;
}

function actionRow(a: Action, i: number, heldBy: string | undefined): string {
  const est = estimateText(a.estimate);
  const why = heldBy ? `${a.reason}; **held back**: ${heldBy}` : a.reason;
  return `| ${i + 1} | ${symbolOf(a)} | ${code(a.type)} | ${code(a.target)} | ${cell(why)} | ${cell(est)} | ${a.risk === 'destructive' ? '**destructive**' : 'safe'} |`;
}

export function renderPlanMarkdown(plan: Plan, extras: MarkdownExtras = {}): string {
  const b = new Budget(extras.limit ?? MARKDOWN_LIMIT);
  const counts = planCounts(plan);
  b.add(`### jarvis-db plan: ${code(basename(plan.configFile))}${plan.target ? ` (--target ${code(plan.target)})` : ''}`);
  b.add('');
  b.add(`**${summaryLine(plan)}**${counts.destructive ? ` ⚠️ ${plural(counts.destructive, 'destructive action')}.` : ''}`);
  b.add('');

  const held = blockedActions(plan.actions, plan.errors);
  if (plan.errors.length) {
    b.add(`#### ❌ ${errorsHeading(plan, held.size)}`);
    b.add('');
    for (const e of plan.errors) b.tryAdd(`- **${cell(e.module)}**: ${cell(e.message)}${e.path ? ` (${code(e.path)})` : ''}`, 'error');
    b.add('');
  }

  if (extras.base) {
    const { label, impact } = extras.base;
    b.add(`#### Impact of this change (base ${code(label)})`);
    b.add('');
    if (impact.length === 0) b.add('The desired state is the same.');
    for (const l of impact) b.tryAdd(`- ${l.destructive ? '⚠️ ' : ''}${cell(impactSentence(l))}`, 'impact line');
    b.add('');
  }

  const modules = [...new Set([...plan.actions.map((a) => a.module), ...plan.errors.map((e) => e.module)])];
  if (modules.length) {
    b.add('| Module | + create | ~ change | - destroy | destructive |');
    b.add('|---|---:|---:|---:|---:|');
    for (const m of modules) {
      const mine = plan.actions.filter((a) => a.module === m);
      const k = (kind: string) => mine.filter((a) => (ACTION_KIND[a.type as ActionType] ?? 'change') === kind).length;
      b.add(`| ${cell(m)} | ${k('create')} | ${k('change')} | ${k('destroy')} | ${mine.filter((a) => a.risk === 'destructive').length} |`);
    }
    b.add('');
  }

  const destructive = plan.actions.filter((a) => a.risk === 'destructive');
  if (destructive.length) {
    b.add(`#### ⚠️ Destructive actions (${formatCount(destructive.length)})`);
    b.add('');
    b.add('| Action | Target | Why |');
    b.add('|---|---|---|');
    for (const a of destructive) b.tryAdd(`| ${code(a.type)} | ${code(a.target)} | ${cell(a.reason)} |`, 'destructive action');
    b.add('');
  }

  if (plan.actions.length) {
    b.add(`<details><summary>All ${plural(plan.actions.length, 'action')}, in the order apply runs them</summary>`);
    b.add('');
    b.add('| # | | Action | Target | Why | Estimate | Risk |');
    b.add('|---:|---|---|---|---|---|---|');
    plan.actions.forEach((a, i) => b.tryAdd(actionRow(a, i, held.get(a.id)), 'action'));
    b.add('');
    b.add('</details>');
    b.add('');
  }

  if (plan.findings.length) {
    const worst = ['CRITICAL', 'WARNING', 'UNKNOWN', 'HEALTHY'].find((s) => plan.findings.some((f) => f.status === s));
    b.add(`<details><summary>${plural(plan.findings.length, 'finding')} (worst: ${worst})</summary>`);
    b.add('');
    b.add('| Status | Check | Message |');
    b.add('|---|---|---|');
    for (const f of plan.findings) b.tryAdd(`| ${f.status} | ${code(f.check)} | ${cell(f.message)} |`, 'finding');
    b.add('');
    b.add('</details>');
    b.add('');
  }

  if (extras.base?.diff) {
    b.add('<details><summary>Config diff</summary>');
    b.add('');
    b.add('```diff');
    for (const line of extras.base.diff.trimEnd().split('\n')) b.tryAdd(line.replace(/```/g, "'''"), 'diff line');
    b.add('```');
    b.add('');
    b.add('</details>');
    b.add('');
  }

  if (b.cut.size) {
    const what = [...b.cut.entries()].map(([k, n]) => plural(n, k)).join(', ');
    b.add(`_✂️ Cut to stay under ${formatCount(extras.limit ?? MARKDOWN_LIMIT)} characters: ${what} not shown. \`jarvis-db plan\` prints the whole plan._`);
    b.add('');
  }
  b.add(`<sub>observed ${plan.createdAt} · fingerprint ${code(plan.fingerprint.slice(0, 12))}</sub>`);
  return b.text();
}
