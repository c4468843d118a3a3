/**
 * Finds every `jarvis-db …` invocation quoted in documentation and examples, and checks it
 * against the real CLI (commander's program from src/cli/main.ts): each command path must
 * exist, each flag must belong to that command (or be global), a flag's literal value must be
 * one of its choices, and no stray word may follow a command that takes no argument. So a
 * renamed command or flag in the code breaks the test that runs this over the docs.
 *
 * Where invocations are looked for:
 * - Markdown: fenced code blocks and inline code spans only (prose may say "jarvis-db is …").
 * - Other text files (workflows, units, crontabs, compose files): every line, with shell
 *   line continuations joined.
 * Placeholders are allowed where arguments go (ID, FILE, <id>); `[--flag]` and `a|b`
 * alternatives are read as the flags they name.
 */
import type { Command, Option } from 'commander';

export interface Invocation {
  file: string;
  line: number;
  text: string;
  tokens: string[];
}

export interface Problem {
  invocation: Invocation;
  message: string;
}

/**
 * The code of a markdown file: fenced blocks and inline spans, with their line numbers. Blocks
 * fenced as `text` are output that jarvis-db printed, not commands; `cron` blocks are crontab
 * lines (their time and user fields are not part of the command).
 */
export function markdownCode(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let fence: { marker: string; info: string } | null = null;
  text.split('\n').forEach((raw, i) => {
    const opening = /^\s*(`{3,}|~{3,})\s*(\S*)/.exec(raw);
    if (fence !== null) {
      if (opening && opening[1]!.startsWith(fence.marker) && !opening[2]) fence = null;
      else if (fence.info !== 'text') out.push({ line: i + 1, text: withoutComment(fence.info === 'cron' ? crontabCommand(raw) : raw) });
      return;
    }
    if (opening) {
      fence = { marker: opening[1]!, info: opening[2]! };
      return;
    }
    // In a table, a pipe is written as a backslash and a pipe, even inside a code span.
    for (const span of raw.matchAll(/(`+)(.+?)\1/g)) out.push({ line: i + 1, text: span[2]!.replace(/\\\|/g, '|') });
  });
  return out;
}

/**
 * Every line of a non-markdown file, shell continuations (`\` at the end) joined. A line that
 * quotes code in backticks (a comment in prose) gives only its quoted spans; a comment indented
 * like a usage example (`#   jarvis-db plan`) is read as code; other comments are prose.
 */
export function plainCode(text: string, options: { crontab?: boolean; slashComments?: boolean } = {}): { line: number; text: string }[] {
  const lines: { line: number; text: string }[] = [];
  for (const l of joinContinuations(text)) {
    const spans = [...l.text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    // `#   docker compose exec …`: a comment indented by two spaces or more shows a command.
    const shown = /^\s*(?:#|\/\/)\s{2,}(\S.*)$/.exec(l.text);
    if (spans.length) for (const span of spans) lines.push({ line: l.line, text: span });
    else if (shown) lines.push({ line: l.line, text: withoutComment(shown[1]!, options.slashComments) });
    else lines.push({ line: l.line, text: withoutComment(options.crontab ? crontabCommand(l.text) : l.text, options.slashComments) });
  }
  return lines;
}

/** A line without its `# comment` (or `// comment` in scripts): prose about jarvis-db is not a command line. */
export function withoutComment(line: string, slashComments = false): string {
  const hash = line.replace(/(^|\s)#.*$/, '$1');
  return slashComments ? hash.replace(/(^|\s)\/\/.*$/, '$1') : hash;
}

/** The command of an /etc/cron.d line: the five time fields and the user field dropped. */
function crontabCommand(line: string): string {
  const m = /^\s*(?:@\w+|(?:\S+\s+){5})\S+\s+(.*)$/.exec(line);
  return m && !/^\s*#/.test(line) && !/^\s*\w+=/.test(line) ? m[1]! : line;
}

function joinContinuations(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let pending: { line: number; text: string } | null = null;
  text.split('\n').forEach((raw, i) => {
    const current = pending ? { line: pending.line, text: `${pending.text} ${raw.trim()}` } : { line: i + 1, text: raw };
    if (/\\\s*$/.test(current.text)) pending = { line: current.line, text: current.text.replace(/\\\s*$/, '') };
    else {
      pending = null;
      out.push(current);
    }
  });
  if (pending) out.push(pending);
  return out;
}

const SHELL_STOP = /^(&&|\|\||\||;|>|>>|<|2>.*|1>.*|&>.*|#.*|\)|\$\(.*)$/;
const PROGRAM = /(?<![\w./-])(?:[\w./${}-]*bin\/)?jarvis-db(?:\.js)?(?=[ \t]+\S)/g;

/** Words after `jarvis-db`, up to the end of the shell command, cleaned of quoting and brackets. */
export function tokensAfter(rest: string): string[] {
  const tokens: string[] = [];
  for (const raw of rest.trim().split(/[ \t]+/)) {
    if (SHELL_STOP.test(raw)) break;
    let word = raw.replace(/^["'`]+|["'`]+$/g, '');
    // The end of a subshell or of a statement: `$(jarvis-db sandbox env)`, `jarvis-db plan;`.
    const stop = /[;)]$/.test(word) && !word.startsWith('(');
    if (stop) word = word.replace(/[;)]+$/, '');
    const cleaned = word.replace(/^[(\[]+/, '').replace(/[\],:.]+$/, '').replace(/[[\]]/g, '');
    if (cleaned) tokens.push(cleaned);
    if (stop) break;
  }
  return tokens;
}

/** The `jarvis-db …` invocations in one piece of code. */
export function invocationsIn(file: string, code: { line: number; text: string }[]): Invocation[] {
  const found: Invocation[] = [];
  for (const { line, text } of code) {
    for (const m of text.matchAll(PROGRAM)) {
      const rest = text.slice(m.index! + m[0].length);
      const tokens = tokensAfter(rest);
      if (tokens.length === 0) continue;
      // `docker compose exec jarvis-db jarvis-db plan`: the service name, then the program.
      if (/^jarvis-db(\.js)?$/.test(tokens[0]!)) continue;
      // A path or a file name (`chown jarvis-db /var/lib/jarvis-db`), not a command or a flag.
      if (!/^(-\S*|[a-z][a-z-]*)$/.test(tokens[0]!)) continue;
      found.push({ file, line, text: `jarvis-db ${tokens.join(' ')}`, tokens });
    }
  }
  return found;
}

/** A word that stands for a value in documentation: ID, FILE, <id>, NAME, …, $VAR. */
function isPlaceholder(word: string): boolean {
  return /^(<[^>]+>|[A-Z][A-Z0-9_]*|…|\.\.\.|\$\S*|\{\{.*\}\}|\$\{.*\})$/.test(word) || /^<.*>$/.test(word);
}

function findOption(chain: Command[], flag: string): Option | undefined {
  for (let i = chain.length - 1; i >= 0; i--) {
    const option = chain[i]!.options.find((o) => o.long === flag || o.short === flag);
    if (option) return option;
  }
  return undefined;
}

function subcommand(command: Command, name: string): Command | undefined {
  return command.commands.find((c) => c.name() === name || c.aliases().includes(name));
}

/** Problems of one invocation against the program; empty when it is a valid command line. */
export function checkInvocation(program: Command, invocation: Invocation): string[] {
  const problems: string[] = [];
  const chain: Command[] = [program];
  const where = () => `\`jarvis-db${chain.slice(1).map((c) => ` ${c.name()}`).join('')}\``;
  let positional = 0;
  const tokens = invocation.tokens;

  /** Checks a flag (and its value); returns how many tokens after it were its value. */
  const flagAt = (token: string, next: string | undefined): number => {
    const [flag, inline] = token.includes('=') ? [token.slice(0, token.indexOf('=')), token.slice(token.indexOf('=') + 1)] : [token, undefined];
    if (flag === '--help' || flag === '-h') return 0;
    const option = findOption(chain, flag!);
    if (!option) {
      problems.push(`${flag} is not a flag of ${chain.length > 1 ? where() : '`jarvis-db (global)`'}`);
      // Whether it took a value is unknown: do not report its value as a stray word too.
      return inline === undefined && next !== undefined && !next.startsWith('-') ? 1 : 0;
    }
    if (!option.required && !option.optional) {
      if (inline !== undefined) problems.push(`${flag} takes no value`);
      return 0;
    }
    const value = inline ?? next;
    if (option.required && value === undefined) problems.push(`${flag} needs a value`);
    // `--format text|markdown|json`: each alternative must be a choice.
    for (const v of value === undefined ? [] : value.split('|')) {
      if (option.argChoices && !isPlaceholder(v) && !option.argChoices.includes(v)) problems.push(`${flag} ${v}: not one of ${option.argChoices.join(', ')}`);
    }
    return inline === undefined ? 1 : 0;
  };

  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const current = chain[chain.length - 1]!;
    if (token.startsWith('-') && token.length > 1 && !/^-\d/.test(token)) {
      i += flagAt(token, tokens[i + 1]);
      continue;
    }
    // `ID|--all`: the flags among the alternatives are flags, the rest one argument.
    const alternatives = token.split('|').filter(Boolean);
    for (const flag of alternatives.filter((a) => a.startsWith('-'))) flagAt(flag, undefined);
    const word = alternatives.find((a) => !a.startsWith('-'));
    if (word === undefined) continue;
    if (current.commands.length > 0 && positional === 0) {
      if (word === 'help') {
        positional = Infinity;
        continue;
      }
      const next = subcommand(current, word);
      if (next) {
        chain.push(next);
        continue;
      }
      if (!isPlaceholder(word)) {
        problems.push(`\`${word}\` is not a command of ${where()} (commands: ${current.commands.map((c) => c.name()).join(', ')})`);
        break;
      }
    }
    const allowed = current.registeredArguments;
    const variadic = allowed.some((a) => a.variadic);
    if (positional >= allowed.length && !variadic && !isPlaceholder(word)) {
      problems.push(`\`${word}\`: ${where()} takes ${allowed.length ? `only ${allowed.map((a) => a.name()).join(', ')}` : 'no argument'}`);
      break;
    }
    positional++;
  }
  return problems;
}

/** Every command path of the program (leaves and parents), as `backup create`. */
export function commandPaths(program: Command): { path: string; command: Command }[] {
  const out: { path: string; command: Command }[] = [];
  const walk = (command: Command, prefix: string[]) => {
    for (const sub of command.commands) {
      const path = [...prefix, sub.name()];
      out.push({ path: path.join(' '), command: sub });
      walk(sub, path);
    }
  };
  walk(program, []);
  return out;
}
