/**
 * What every command shares: the global flags, loading the config, and redacted output.
 * Keep this file light: it is loaded on every start (no database clients here).
 */
import type { Command } from 'commander';
import type { Desired } from '../config/types.js';
import { JarvisError } from '../errors.js';
import { colorWanted, palette, type Palette } from '../render/color.js';
import { redact } from '../services/redact.js';

export interface GlobalOptions {
  config: string;
  /** Whether -c or JARVIS_DB_CONFIG named the config (rather than the default). */
  configGiven: boolean;
  /** `--format json` or its shorthand `--json`. */
  json: boolean;
  /** The output format: `--format`, `json` with `--json`, else `text`. */
  format: string;
  /** Colour on stdout; `colors(stream)` decides for another stream. */
  color: boolean;
  colorFlag: boolean;
  debug: boolean;
}

/** The global flags, wherever they were written on the command line. */
export function globalOptions(cmd: Command): GlobalOptions {
  const opts = cmd.optsWithGlobals() as Partial<GlobalOptions>;
  const given = opts.config ?? process.env.JARVIS_DB_CONFIG;
  const format = outputFormat(opts.json === true, cmd.getOptionValueSource('format') === 'cli' ? String(opts.format) : undefined);
  return {
    config: given ?? './jarvis-db.yaml',
    configGiven: given !== undefined,
    json: format === 'json',
    format,
    color: colorWanted(process.stdout, opts.color !== false),
    colorFlag: opts.color !== false,
    debug: Boolean(opts.debug),
  };
}

/** The formats every command that prints offers; some offer more (plan: markdown, health check: prometheus). */
export const OUTPUT_FORMATS = ['text', 'json'] as const;

/**
 * The one rule of output flags: `--format` picks the output (default text), `--json` is short
 * for `--format json`, and the two saying different things is a usage error.
 */
export function outputFormat(json: boolean, format: string | undefined): string {
  if (json && format !== undefined && format !== 'json') {
    throw new JarvisError('USAGE', `--json is short for --format json; it conflicts with --format ${format}`);
  }
  return json ? 'json' : format ?? 'text';
}

/** The palette for stdout or stderr: colour only on a terminal, never with --no-color or NO_COLOR. */
export function colors(options: GlobalOptions, stream: { isTTY?: boolean } = process.stdout): Palette {
  return palette(colorWanted(stream, options.colorFlag));
}

/** A duration flag such as `--lock-timeout 60s` in milliseconds (`0` waits not at all). */
export async function durationFlag(flag: string, value: string): Promise<number> {
  if (/^0+(s|m|h)?$/.test(value)) return 0;
  const { checkDuration } = await import('../config/durations.js');
  const parsed = checkDuration(value);
  if (typeof parsed === 'string') throw new JarvisError('USAGE', `${flag}: ${parsed}`);
  return parsed.seconds * 1000;
}

export async function loadDesired(options: GlobalOptions): Promise<Desired> {
  const { loadConfig } = await import('../config/load.js');
  return loadConfig(options.config);
}

/** Writes to stdout, redacted. */
export function print(text: string): void {
  process.stdout.write(redact(text.endsWith('\n') ? text : text + '\n'));
}

/** Writes to stderr, redacted (progress, notes). */
export function note(text: string): void {
  process.stderr.write(redact(text.endsWith('\n') ? text : text + '\n'));
}

export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

/** Sets the exit code without cutting output short. */
export function exitWith(code: number): void {
  process.exitCode = code;
}

/**
 * `--lock-timeout` of a command that writes (backup create and prune, restore, archive restore):
 * its wait in milliseconds, and the line shown while it waits for another apply to finish
 * (the engine's apply lock, docs/architecture.md §4 rule 6).
 */
export async function lockWait(desired: Desired, lockTimeout: string): Promise<{ lockTimeoutMs: number; waitingForLock(owner: { pid: number; runId: string } | null): void }> {
  return {
    lockTimeoutMs: await durationFlag('--lock-timeout', lockTimeout),
    waitingForLock: (owner) => note(`waiting up to ${lockTimeout} for the lock on ${desired.storage.path}${owner ? ` (held by pid ${owner.pid}, run ${owner.runId})` : ''}`),
  };
}

/** Whether a prompt can be answered: stdin and stderr on a terminal. */
export function onTerminal(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
}

/** Asks on the terminal; only `yes` goes on (as Terraform). `apply` and `erase` ask with it. */
export async function askYes(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim() === 'yes';
  } finally {
    rl.close();
  }
}
