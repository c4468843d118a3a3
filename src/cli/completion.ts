/**
 * Shell completion: `jarvis-db completion bash|zsh|fish` prints a script that asks the CLI itself
 * (`jarvis-db __complete CWORD WORDS…`, hidden) for the candidates, so commands and flags come from
 * the command tree and names from the config and the catalog: schedules, policies, repositories,
 * backup and archive ids. Which kind of value a position takes is decided in `whatToComplete`
 * (pure); the lists are read only for that kind, and a config that does not load gives none.
 */
import { Command, type Option } from 'commander';
import { globalOptions, print } from './common.js';

export type Completion =
  | { kind: 'words'; words: string[] }
  | { kind: 'schedules' | 'policies' | 'repositories' | 'backups' | 'archives' | 'files' };

/** Flags whose value is a name from the config. */
const VALUE_KINDS: Record<string, Completion['kind']> = {
  '--schedule': 'schedules', '--policy': 'policies', '--repository': 'repositories', '--config': 'files', '--out': 'files', '--target-dir': 'files',
};

/** Flags whose values are fixed but not declared as choices. */
const VALUE_WORDS: Record<string, string[]> = { '--service': ['postgres', 'redis', 'chroma', 'all'] };

/** Commands whose first argument is a backup id (`latest` too where the command takes it) or an archive id. */
const ARGUMENT_KINDS: Record<string, Completion['kind']> = {
  'backup verify': 'backups', 'backup delete': 'backups', restore: 'backups', 'archive verify': 'archives', 'archive restore': 'archives',
};

function findOption(cmd: Command, flag: string): Option | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const o = c.options.find((x) => x.long === flag || x.short === flag);
    if (o) return o;
  }
  return undefined;
}

const takesValue = (o: Option) => o.required || o.optional;

/** Pure: what the word at `cword` completes to, given the words before it (words[0] is the program). */
export function whatToComplete(program: Command, words: readonly string[], cword: number): Completion {
  let cmd = program;
  const path: string[] = [];
  let positional = 0;
  for (let i = 1; i < cword; i++) {
    const word = words[i] ?? '';
    if (word.startsWith('-')) {
      const o = findOption(cmd, word.split('=')[0]!);
      if (o && takesValue(o) && !word.includes('=')) i++;
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (sub) {
      cmd = sub;
      path.push(sub.name());
    } else positional++;
  }
  const previous = words[cword - 1] ?? '';
  const current = words[cword] ?? '';
  const expecting = previous.startsWith('-') ? findOption(cmd, previous) : undefined;
  if (expecting && takesValue(expecting)) {
    if (expecting.argChoices) return { kind: 'words', words: [...expecting.argChoices] };
    const kind = VALUE_KINDS[expecting.long ?? ''];
    if (kind) return { kind } as Completion;
    return { kind: 'words', words: VALUE_WORDS[expecting.long ?? ''] ?? [] };
  }
  if (current.startsWith('-')) {
    const flags = new Set<string>();
    for (let c: Command | null = cmd; c; c = c.parent) for (const o of c.options) if (o.long && !o.hidden) flags.add(o.long);
    flags.add('--help');
    return { kind: 'words', words: [...flags].sort() };
  }
  const subcommands = cmd.commands.filter((c) => !(c as Command & { _hidden?: boolean })._hidden).map((c) => c.name());
  if (subcommands.length) return { kind: 'words', words: subcommands };
  const kind = ARGUMENT_KINDS[path.join(' ')];
  if (kind && positional === 0) return { kind } as Completion;
  return { kind: 'files' };
}

/** The names a kind of value takes, from the config and the catalog; none when they cannot be read. */
async function namesOf(kind: Exclude<Completion['kind'], 'words' | 'files'>, config: string): Promise<string[]> {
  try {
    const { loadConfig } = await import('../config/load.js');
    const desired = await loadConfig(config);
    if (kind === 'schedules') return desired.backups.map((b) => b.name);
    if (kind === 'policies') return desired.retention.map((p) => p.name);
    const { openRepositories } = await import('../storage/repositories.js');
    const repositories = openRepositories(desired);
    if (kind === 'repositories') return repositories.map((r) => r.name);
    if (kind === 'backups') {
      const { scanStorage } = await import('../backup/catalog.js');
      const ids = (await scanStorage(repositories)).valid.map((e) => e.manifest.id);
      return ['latest', ...new Set(ids.sort().reverse())];
    }
    const { listArchives } = await import('../retention/archives.js');
    return (await listArchives(desired)).archives.map((a) => a.id);
  } catch {
    return [];
  }
}

const SCRIPTS: Record<string, string> = {
  bash: `# jarvis-db completion for bash: source <(jarvis-db completion bash)
_jarvis_db_complete() {
  local IFS=$'\\n' cur="\${COMP_WORDS[COMP_CWORD]}"
  local words
  words=$("\${COMP_WORDS[0]}" __complete "$COMP_CWORD" "\${COMP_WORDS[@]}" 2>/dev/null) || return 0
  if [ "$words" = "__files__" ]; then COMPREPLY=(); compopt -o default 2>/dev/null; return 0; fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _jarvis_db_complete jarvis-db
`,
  zsh: `# jarvis-db completion for zsh: source <(jarvis-db completion zsh)
autoload -U +X bashcompinit && bashcompinit
_jarvis_db_complete() {
  local IFS=$'\\n' cur="\${COMP_WORDS[COMP_CWORD]}"
  local words
  words=$("\${COMP_WORDS[0]}" __complete "$COMP_CWORD" "\${COMP_WORDS[@]}" 2>/dev/null) || return 0
  if [ "$words" = "__files__" ]; then COMPREPLY=($(compgen -f -- "$cur")); return 0; fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _jarvis_db_complete jarvis-db
`,
  fish: `# jarvis-db completion for fish: jarvis-db completion fish | source
function __jarvis_db_complete
  set -l words (commandline -opc) (commandline -ct)
  set -l out (jarvis-db __complete (math (count $words) - 1) $words 2>/dev/null)
  if test "$out" = "__files__"; __fish_complete_path (commandline -ct); else; printf '%s\\n' $out; end
end
complete -c jarvis-db -f -a '(__jarvis_db_complete)'
`,
};

export function define(program: Command): void {
  program
    .command('completion <shell>')
    .description('Print the shell completion script: bash, zsh or fish (source <(jarvis-db completion bash))')
    .action(async (shell: string) => {
      const script = SCRIPTS[shell];
      if (!script) {
        const { JarvisError } = await import('../errors.js');
        throw new JarvisError('USAGE', `no completion for shell "${shell}" (bash, zsh or fish)`);
      }
      print(script.trimEnd());
    });

  program
    .command('__complete', { hidden: true })
    .argument('<cword>')
    .argument('[words...]')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (cword: string, words: string[], _opts: unknown, cmd: Command) => {
      const what = whatToComplete(program, words, Number(cword));
      if (what.kind === 'files') return print('__files__');
      const names = what.kind === 'words' ? what.words : await namesOf(what.kind, configOf(words, cmd));
      if (names.length) print(names.join('\n'));
    });
}

/** The config the command line being completed names (-c FILE, --config FILE or =FILE), else the usual one. */
function configOf(words: readonly string[], cmd: Command): string {
  const i = words.findIndex((w) => w === '-c' || w === '--config');
  return (i >= 0 ? words[i + 1] : words.find((w) => w.startsWith('--config='))?.slice('--config='.length)) ?? globalOptions(cmd).config;
}
