/**
 * The CLI entry. Each command lives in its own file under src/cli/ and exports `define`,
 * which declares its flags and an action that imports the heavy modules it needs only when
 * it runs, so that `jarvis-db --version` and `--help` start fast.
 */
import '../services/pg-runtime.js';
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { OUTPUT_FORMATS } from './common.js';
import { reportFailure } from './failure.js';
import * as alerts from './alerts.js';
import * as apply from './apply.js';
import * as archive from './archive.js';
import * as backup from './backup.js';
import * as completion from './completion.js';
import * as daemon from './daemon.js';
import * as erase from './erase.js';
import * as health from './health.js';
import * as init from './init.js';
import * as migrate from './migrate.js';
import * as plan from './plan.js';
import * as restore from './restore.js';
import * as retention from './retention.js';
import * as sandbox from './sandbox.js';
import * as schedule from './schedule.js';
import * as validate from './validate.js';
import * as verify from './verify.js';
import * as wal from './wal.js';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new Command('jarvis-db')
    .description('Declarative backups, migrations, retention and health for PostgreSQL, Redis and Chroma.')
    .version(packageVersion(), '-V, --version')
    .addOption(new Option('-c, --config <file>', 'config file (default: $JARVIS_DB_CONFIG or ./jarvis-db.yaml)'))
    .option('--json', 'machine-readable JSON output (short for --format json)')
    .option('--no-color', 'no colours (also NO_COLOR=1)')
    .option('--debug', 'show stack traces and debug details')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.configureHelp({ sortSubcommands: false });
  for (const command of [plan, apply, validate, backup, restore, verify, erase, health, alerts, schedule, migrate, retention, archive, wal, init, daemon, sandbox, completion]) {
    command.define(program);
  }
  addFormatOptions(program);
  // Subcommands inherit exitOverride so that usage errors go through the same path.
  const propagate = (cmd: Command) => { cmd.exitOverride(); cmd.commands.forEach(propagate); };
  propagate(program);
  return program;
}

/** Commands whose output has one form: the daemon logs JSON lines, `sandbox env` prints shell, `alerts` a rules file or a dashboard. */
const ONE_FORM = new Set(['daemon', 'sandbox env', 'alerts rules', 'alerts dashboard', 'completion', '__complete']);

/** Every command that prints takes `--format text|json` (those that offer more declare their own). */
function addFormatOptions(program: Command): void {
  const visit = (cmd: Command, path: string[]) => {
    if (cmd.commands.length) return cmd.commands.forEach((c) => visit(c, [...path, c.name()]));
    if (ONE_FORM.has(path.join(' ')) || cmd.options.some((o) => o.long === '--format')) return;
    cmd.addOption(new Option('--format <format>', 'output format (--json is short for --format json)').choices(OUTPUT_FORMATS).default('text'));
  };
  program.commands.forEach((c) => visit(c, [c.name()]));
}

/**
 * A reader that stops early (`jarvis-db plan | head`) closes the pipe. Unlike a Unix tool killed
 * by SIGPIPE, the command goes on without its output: an apply or a backup is never cut short
 * because nobody reads it any more, and the exit code is still the outcome's. Without this, the
 * EPIPE would crash the process with a stack trace.
 */
function carryOnWhenTheReaderLeaves(stream: NodeJS.WriteStream): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    stream.write = ((_chunk: unknown, encodingOrDone?: unknown, done?: unknown) => {
      const callback = typeof encodingOrDone === 'function' ? encodingOrDone : done;
      if (typeof callback === 'function') queueMicrotask(() => (callback as () => void)());
      return true;
    }) as typeof stream.write;
  });
}

export async function main(argv: string[]): Promise<void> {
  carryOnWhenTheReaderLeaves(process.stdout);
  carryOnWhenTheReaderLeaves(process.stderr);
  const program = buildProgram();
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has printed help, the version or the usage error itself.
      process.exitCode = error.exitCode === 0 ? 0 : 1;
      return;
    }
    process.exitCode = reportFailure(error, debug);
  }
}
