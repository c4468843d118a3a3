/**
 * Every command and flag quoted in README.md, docs/ and examples/ exists in the real CLI
 * (commander's program from src/cli/main.ts), and the README's command reference and the docs
 * together name every command and every flag. A command or a flag renamed in the code breaks
 * this test until the documentation follows.
 */
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildProgram } from '../../src/cli/main.js';
import { checkInvocation, commandPaths, invocationsIn, markdownCode, plainCode, type Invocation } from './invocations.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** README.md, docs/**.md and every text file of examples/ (dashboards are JSON data, not commands). */
function documentationFiles(): string[] {
  return [
    join(ROOT, 'README.md'),
    ...filesUnder(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')),
    ...filesUnder(join(ROOT, 'examples')).filter((f) => !f.endsWith('.json')),
  ];
}

function invocationsOf(file: string, text = readFileSync(file, 'utf8')): Invocation[] {
  const name = relative(ROOT, file);
  return invocationsIn(name, file.endsWith('.md') ? markdownCode(text) : plainCode(text, { crontab: file.endsWith('.cron'), slashComments: /\.[cm]?js$/.test(file) }));
}

function check(text: string, markdown = true): string[] {
  const program = buildProgram();
  return invocationsIn('inline', markdown ? markdownCode(text) : plainCode(text)).flatMap((i) => checkInvocation(program, i));
}

t.test('the checker refuses what does not exist and accepts what does', async (t) => {
  t.same(check('`jarvis-db plan --format markdown --base origin/main`'), [], 'a real command line');
  t.same(check('`jarvis-db -c jarvis-db.yaml --json backup list`'), [], 'global flags before the command');
  t.same(check('`jarvis-db restore ID [--target-db NAME] [--force]`'), [], 'placeholders and optional flags');
  t.same(check('`jarvis-db backup verify ID|--all [--restore-test]`'), [], 'alternatives');
  t.same(check('`jarvis-db migrate down --to=0 --allow-down`'), [], '--flag=value');
  t.same(check('```sh\neval "$(jarvis-db sandbox env --dir /tmp/sb)"\njarvis-db apply plan.json && jarvis-db plan\n```'), [], 'shell around it');
  t.same(check('`jarvis-db plan --formt markdown`'), ['--formt is not a flag of `jarvis-db plan`'], 'a misspelt flag');
  t.same(check('```text\njarvis-db will do this, in this order:\n```'), [], 'output in a text block is not a command');
  t.same(check('```cron\n*/15 * * * * jarvis-db /usr/local/bin/jarvis-db apply --auto-approve\n```'), [], 'the user field of a crontab line');
  t.same(check('```cron\n*/15 * * * * jarvis-db /usr/local/bin/jarvis-db aply\n```').length, 1, 'but its command is checked');
  t.same(check('`jarvis-db apply --dry-run`'), ['--dry-run is not a flag of `jarvis-db apply`'], 'a flag of another command');
  t.same(check('`jarvis-db plan --format md`'), ['--format md: not one of text, markdown, json'], 'a value outside the choices');
  t.match(check('`jarvis-db backup show ID`'), [/`show` is not a command of `jarvis-db backup`/], 'an unknown subcommand');
  t.match(check('`jarvis-db planx`'), [/`planx` is not a command of `jarvis-db`/], 'an unknown command');
  t.match(check('`jarvis-db plan now`'), [/`now`: `jarvis-db plan` takes no argument/], 'a stray word after a command without arguments');
  t.match(check('`jarvis-db restore a b`'), [/`b`: `jarvis-db restore` takes only id/], 'one argument too many');
  t.same(check('ExecStart=/usr/local/bin/jarvis-db apply --auto-approve --lock-timeout 20m', false), []);
  t.same(check('ExecStart=/usr/local/bin/jarvis-db apply --auto-aprove', false), ['--auto-aprove is not a flag of `jarvis-db apply`'], 'in a unit file');
  t.same(check('docker compose exec jarvis-db jarvis-db plan   # any command', false), [], 'a compose service named jarvis-db');
  t.same(check('chown jarvis-db /var/lib/jarvis-db; jarvis-db.yaml is the config', false), [], 'names and paths are not invocations');
  t.same(check('#   install -m 0640 -o root -g jarvis-db jarvis-db.env.example /etc/jarvis-db/env', false), [], 'a group named jarvis-db');
  t.same(check('#   docker compose exec jarvis-db jarvis-db plna', false).length, 1, 'a usage example in a comment is checked');
  t.same(check('# prose: jarvis-db keeps the data layer in shape', false), [], 'a prose comment is not');
  t.same(check('useradd --system --home-dir /var/lib/jarvis-db --shell /usr/sbin/nologin jarvis-db', false), [], 'a directory named jarvis-db is not the program');
  t.same(check('node /app/bin/jarvis-db.js plan --formt x', false), ['--formt is not a flag of `jarvis-db plan`'], 'the launcher by its path');
});

t.test('every jarvis-db command line in README.md, docs/ and examples/ exists in the CLI', async (t) => {
  const program = buildProgram();
  const files = documentationFiles();
  const all = files.flatMap((f) => invocationsOf(f));
  const problems = all.flatMap((i) => checkInvocation(program, i).map((p) => `${i.file}:${i.line}: ${i.text}: ${p}`));
  t.same(problems, [], 'no command or flag that the CLI does not have');
  if (process.env.JARVIS_LIST_INVOCATIONS) for (const i of all) t.comment(`${i.file}:${i.line}: ${i.text}`);
  // Not vacuous: the guide, the README and each kind of example quote real commands.
  const perFile = new Map<string, number>();
  for (const i of all) perFile.set(i.file, (perFile.get(i.file) ?? 0) + 1);
  for (const required of ['README.md', 'docs/operators-guide.md', 'docs/disaster-recovery.md', 'docs/encryption.md',
    'examples/github/jarvis-db-plan.yml', 'examples/github/jarvis-db-apply.yml', 'examples/cron/jarvis-db.cron',
    'examples/systemd/jarvis-db-apply.service', 'examples/systemd/jarvis-db-daemon.service', 'examples/docker-compose/docker-compose.yml']) {
    t.ok((perFile.get(required) ?? 0) > 0, `${required} quotes jarvis-db commands`);
  }
  t.ok(all.length > 100, `${all.length} invocations checked`);
});

t.test('the README command reference names every command, and README and docs together name every flag', async (t) => {
  const program = buildProgram();
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const reference = readme.slice(readme.indexOf('## Commands'));
  t.ok(reference.length < readme.length, 'README.md has a Commands section');
  const referenced = new Set(invocationsIn('README.md', markdownCode(reference)).map((i) => {
    const words: string[] = [];
    let command = program;
    for (const token of i.tokens) {
      const next = command.commands.find((c) => c.name() === token);
      if (!next) break;
      words.push(token);
      command = next;
    }
    return words.join(' ');
  }));
  for (const { path, command } of commandPaths(program)) {
    if (command.commands.length > 0) continue; // a group: its subcommands are checked
    if ((command as { _hidden?: boolean })._hidden) continue; // internal (the completion's callback)
    t.ok(referenced.has(path), `the command reference shows \`jarvis-db ${path}\``);
  }
  const docs = [readme, ...filesUnder(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => readFileSync(f, 'utf8'))].join('\n');
  const quoted = [...docs.matchAll(/(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b/g)].map((m) => m[1]);
  const mentioned = new Set<string>(quoted.filter((q): q is string => q !== undefined));
  for (const { path, command } of [{ path: '(global)', command: program }, ...commandPaths(program)]) {
    for (const option of command.options) {
      if (option.long === '--help' || option.long === '--version') continue;
      t.ok(mentioned.has(option.long ?? option.short ?? option.flags), `${option.long} of \`jarvis-db ${path}\` is documented`);
    }
  }
});

t.test('the commands that the compose file and the Kubernetes CronJob give the jarvis-db image exist', async (t) => {
  const program = buildProgram();
  const { parse } = await import('yaml');
  type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const argv: { where: string; args: string[] }[] = [];
  const compose = parse(readFileSync(join(ROOT, 'examples/docker-compose/docker-compose.yml'), 'utf8'), { merge: true }) as Obj;
  for (const [name, service] of Object.entries(compose.services as Record<string, Obj>)) {
    if (String(service.image).startsWith('jarvis-db')) argv.push({ where: `compose service ${name}`, args: service.command });
  }
  const k8s = readFileSync(join(ROOT, 'examples/kubernetes/jarvis-db-apply-cronjob.yaml'), 'utf8').split(/^---$/m).map((d) => parse(d) as Obj);
  for (const doc of k8s.filter((d) => d.kind === 'CronJob')) {
    for (const c of doc.spec.jobTemplate.spec.template.spec.containers as Obj[]) argv.push({ where: `CronJob container ${c.name}`, args: c.args });
  }
  t.equal(argv.length, 3, 'jarvis-db-init, jarvis-db and the CronJob');
  for (const { where, args } of argv) {
    t.ok(Array.isArray(args) && args.length > 0, `${where} gives arguments`);
    t.same(checkInvocation(program, { file: where, line: 0, text: args.join(' '), tokens: args }), [], `${where}: jarvis-db ${args.join(' ')}`);
  }
});
