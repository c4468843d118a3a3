/**
 * `jarvis-db sandbox up|down|status|env --dir DIR`: throwaway servers for the demo and the tests.
 * The servers and their bookkeeping live in src/sandbox; this file turns flags into calls and
 * results into lines (URLs always redacted; `env` prints shell that reads the secrets from files).
 */
import type { Command } from 'commander';
import { globalOptions, print, printJson } from './common.js';

const DEFAULT_DIR = './.sandbox';

function servicesOption(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

export function define(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description('Start, stop and describe throwaway PostgreSQL, Redis, Chroma and S3 servers (for the demo and the tests)');

  sandbox
    .command('up')
    .description('Start throwaway servers on free local ports, with their data in DIR')
    .option('--dir <dir>', 'where the servers keep their data and state', DEFAULT_DIR)
    .option('--services <list>', 'comma-separated: postgres,redis,chroma,s3 (default: all four)', servicesOption)
    .action(async (opts: { dir: string; services?: string[] }, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError } = await import('../errors.js');
      const sb = await import('../sandbox/index.js');
      const services = opts.services ?? [...sb.SANDBOX_SERVICES];
      const unknown = services.filter((s) => !(sb.SANDBOX_SERVICES as readonly string[]).includes(s));
      if (unknown.length) throw new JarvisError('USAGE', `--services: unknown service ${unknown.map((s) => `"${s}"`).join(', ')} (expected ${sb.SANDBOX_SERVICES.join(', ')})`);
      const state = await sb.startSandbox({ dir: opts.dir, services: services as import('../sandbox/index.js').SandboxService[] });
      const { redactUrl } = await import('../services/redact.js');
      if (g.json) {
        printJson({ dir: state.dir, services: Object.fromEntries(sb.SANDBOX_SERVICES.filter((s) => state[s]).map((s) => [s, { url: redactUrl(state[s]!.url), port: state[s]!.port, pid: state[s]!.pid }])) });
        return;
      }
      for (const s of sb.SANDBOX_SERVICES) if (state[s]) print(`+ ${s.padEnd(8)} ${redactUrl(state[s]!.url)} (pid ${state[s]!.pid})`);
      print(`Sandbox up in ${state.dir}. Use it with: eval "$(jarvis-db sandbox env --dir ${opts.dir})"`);
    });

  sandbox
    .command('down')
    .description('Stop the servers and remove their data and the storage/ beside them')
    .option('--dir <dir>', 'the sandbox directory', DEFAULT_DIR)
    .action(async (opts: { dir: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const { sandboxLeftovers, stopSandbox } = await import('../sandbox/index.js');
      const state = await stopSandbox(opts.dir);
      const kept = state ? await sandboxLeftovers(state.dir) : [];
      if (g.json) printJson({ dir: opts.dir, stopped: Boolean(state), kept });
      else if (!state) print(`No sandbox in ${opts.dir}.`);
      else if (!kept.length) print(`Sandbox in ${state.dir} stopped; its servers' data, storage/ and the directory are removed.`);
      else print(`Sandbox in ${state.dir} stopped; its servers' data and storage/ are removed. Kept (not made by the sandbox): ${kept.join(', ')}.`);
    });

  sandbox
    .command('status')
    .description('Show the servers of a sandbox and whether they run')
    .option('--dir <dir>', 'the sandbox directory', DEFAULT_DIR)
    .action(async (opts: { dir: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const sb = await import('../sandbox/index.js');
      const { redactUrl } = await import('../services/redact.js');
      const state = await sb.readSandbox(opts.dir);
      if (!state) {
        if (g.json) printJson({ dir: opts.dir, running: false, services: {} });
        else print(`No sandbox in ${opts.dir}.`);
        process.exitCode = 3;
        return;
      }
      const health = sb.sandboxHealth(state);
      if (g.json) {
        printJson({ dir: state.dir, services: Object.fromEntries(sb.SANDBOX_SERVICES.filter((s) => state[s]).map((s) => [s, { status: health[s], url: redactUrl(state[s]!.url), pid: state[s]!.pid }])) });
      } else {
        for (const s of sb.SANDBOX_SERVICES) if (state[s]) print(`${s.padEnd(8)} ${health[s].padEnd(7)} ${redactUrl(state[s]!.url)} (pid ${state[s]!.pid})`);
      }
      const problems = sb.SANDBOX_SERVICES.filter((s) => health[s] === 'dead');
      if (problems.length) process.exitCode = 2;
    });

  sandbox
    .command('env')
    .description('Print `export JARVIS_*_URL=…` lines for eval (the secrets are read from files in DIR)')
    .option('--dir <dir>', 'the sandbox directory', DEFAULT_DIR)
    .action(async (opts: { dir: string }, cmd: Command) => {
      const { JarvisError } = await import('../errors.js');
      if (globalOptions(cmd).json) throw new JarvisError('USAGE', 'sandbox env prints shell lines for eval only; --json does not apply');
      const sb = await import('../sandbox/index.js');
      const state = await sb.readSandbox(opts.dir);
      if (!state) throw new JarvisError('SANDBOX', `no sandbox in ${opts.dir}`, { hint: `jarvis-db sandbox up --dir ${opts.dir}` });
      process.stdout.write(sb.sandboxEnvScript(state) + '\n');
    });
}
