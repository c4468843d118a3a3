/**
 * One rule for output flags on every command: `--format text|json[|markdown|prometheus]`,
 * `--json` short for `--format json`, a conflict a usage error (exit 1, one line).
 */
import t from 'tap';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { outputFormat } from '../../src/cli/common.js';
import { cli, writeConfig } from '../engine/fixtures/cli.js';

function leaves(cmd: Command, path: string[] = []): { path: string; cmd: Command }[] {
  if (!cmd.commands.length) return [{ path: path.join(' '), cmd }];
  return cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]));
}

t.test('every command that prints takes --format with text and json; the daemon, sandbox env, the generated alert rules and dashboard and the completion have one form', async (t) => {
  for (const { path, cmd } of leaves(buildProgram())) {
    const format = cmd.options.find((o) => o.long === '--format');
    if (['daemon', 'sandbox env', 'alerts rules', 'alerts dashboard', 'completion', '__complete'].includes(path)) {
      t.notOk(format, `${path} has no --format`);
      continue;
    }
    t.ok(format, `${path} has --format`);
    t.ok(['text', 'json'].every((c) => format?.argChoices?.includes(c)), `${path}: text and json`);
  }
});

t.test('--json is --format json; with another --format it is a usage error', async (t) => {
  t.equal(outputFormat(false, undefined), 'text');
  t.equal(outputFormat(true, undefined), 'json');
  t.equal(outputFormat(false, 'markdown'), 'markdown');
  t.equal(outputFormat(true, 'json'), 'json');
  t.throws(() => outputFormat(true, 'text'), { code: 'USAGE', message: '--json is short for --format json; it conflicts with --format text' });
});

t.test('through the CLI: backup list --format json is JSON, --json with --format text fails in one line', async (t) => {
  const dir = t.testdir();
  const config = await writeConfig(dir, [
    'version: 1', 'services: { postgres: { url: "postgres://nobody@127.0.0.1:1/none" } }', 'storage: { path: ./backups }',
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 2 } }',
  ]);
  const env = { JARVIS_DB_CONFIG: config };
  const list = cli(['backup', 'list', '--format', 'json'], env);
  t.equal(list.code, 0, list.stderr);
  t.same(JSON.parse(list.stdout), JSON.parse(cli(['--json', 'backup', 'list'], env).stdout), 'the same JSON as --json');
  t.same(JSON.parse(cli(['validate', '--format', 'json'], env).stdout).ok, true);
  for (const args of [['--json', 'validate', '--format', 'text'], ['plan', '--format', 'markdown', '--json'], ['backup', 'list', '--json', '--format', 'text']]) {
    const r = cli(args, env);
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`);
    t.equal(r.stdout, '', 'nothing on stdout');
    t.match(r.stderr, /^error: --json is short for --format json; it conflicts with --format (text|markdown)\n$/, 'one line');
  }
  const env2 = cli(['sandbox', 'env', '--json', '--dir', dir], env);
  t.equal(env2.code, 1);
  t.match(env2.stderr, /^error: sandbox env prints shell lines for eval only; --json does not apply\n$/);
});
