/**
 * The Dockerfile, checked without Docker (there is no engine on the build machines): the base
 * image, the user it runs as, the entrypoint and default command against the real CLI, the
 * PostgreSQL client tools chosen by PG_MAJOR, production dependencies only, and every file it
 * copies present in the repository and not excluded by .dockerignore. It has not been built here.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/main.js';
import { checkInvocation } from '../docs/invocations.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

interface Instruction { keyword: string; args: string; line: number }
interface Stage { from: string; name?: string; instructions: Instruction[] }

/** Instructions (continuations joined, comments dropped), split into build stages, ARG defaults substituted in FROM. */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  let pending: Instruction | null = null;
  text.split('\n').forEach((raw, i) => {
    if (!pending && (/^\s*#/.test(raw) || !raw.trim())) return;
    const body = raw.replace(/\\\s*$/, '');
    if (pending) pending.args += ` ${body.trim()}`;
    else {
      const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(body)!;
      pending = { keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: i + 1 };
    }
    if (!/\\\s*$/.test(raw)) {
      instructions.push(pending!);
      pending = null;
    }
  });
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const [image, , name] = ins.args.split(/\s+/);
      stages.push({ from: image!.replace(/\$\{(\w+)\}/g, (_, v: string) => args[v] ?? ''), ...(name ? { name } : {}), instructions: [] });
    } else if (stages.length === 0 && ins.keyword === 'ARG') {
      const [k, v] = ins.args.split('=');
      args[k!] = v ?? '';
    } else stages[stages.length - 1]?.instructions.push(ins);
  }
  return { args, stages };
}

const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const { args, stages } = parseDockerfile(text);
const final = stages[stages.length - 1]!;
const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
const jsonArray = (s: string) => JSON.parse(s) as string[];

/** The image a stage starts from, through the stages it builds on. */
function rootImage(stage: Stage): string {
  const parent = stages.find((s) => s.name === stage.from);
  return parent ? rootImage(parent) : stage.from;
}

t.test('every stage is Node 20 on Debian bookworm', async (t) => {
  t.ok(stages.length >= 2, 'a build stage, then the runtime');
  for (const stage of stages) t.match(rootImage(stage), /^node:20-bookworm(-slim)?$/, `${stage.name ?? 'runtime'}: ${stage.from}`);
  const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
  t.match(engines, /^>=20/, 'the package asks for Node 20');
});

t.test('the runtime runs as a user of its own, never root', async (t) => {
  const users = all(final, 'USER');
  t.ok(users.length > 0, 'USER is set');
  const user = users[users.length - 1]!.args;
  t.notMatch(user, /^(root|0)(:|$)/, `runs as ${user}`);
  const lastRun = Math.max(...all(final, 'RUN').map((i) => i.line));
  t.ok(users[users.length - 1]!.line > lastRun, 'USER comes after the last RUN');
  t.match(all(final, 'RUN').map((i) => i.args).join('\n'), new RegExp(`useradd[^\\n]*\\b${user}\\b`), 'the user is created in the image');
});

t.test('the entrypoint is jarvis-db and the default command is a real jarvis-db command line', async (t) => {
  const entrypoint = jsonArray(all(final, 'ENTRYPOINT').at(-1)!.args);
  t.equal(entrypoint.at(-1), '/app/bin/jarvis-db.js', 'node runs the CLI launcher');
  t.ok(entrypoint.includes('node'));
  t.match(all(final, 'WORKDIR').at(-1)?.args, '/app');
  t.ok(all(final, 'COPY').some((c) => c.args === 'bin ./bin'), 'the launcher is copied to /app/bin');
  t.ok(all(final, 'COPY').some((c) => /--from=build \/src\/dist \.\/dist/.test(c.args)), 'with the compiled dist/ it loads');
  const cmd = jsonArray(all(final, 'CMD').at(-1)!.args);
  const problems = checkInvocation(buildProgram(), { file: 'Dockerfile', line: 0, text: cmd.join(' '), tokens: cmd });
  t.same(problems, [], `CMD ${cmd.join(' ')}`);
});

t.test('the PostgreSQL client tools follow the PG_MAJOR build argument; Redis tools are there', async (t) => {
  t.match(args.PG_MAJOR, /^\d+$/, `PG_MAJOR defaults to ${args.PG_MAJOR}`);
  t.ok(all(final, 'ARG').some((a) => a.args === 'PG_MAJOR'), 'the runtime stage reads it');
  const runs = all(final, 'RUN').map((i) => i.args).join('\n');
  t.match(runs, /postgresql-client-\$\{PG_MAJOR\}/, 'postgresql-client-<major>');
  t.match(runs, /apt\.postgresql\.org/, 'majors other than Debian\'s come from PGDG');
  t.match(runs, /redis-tools/, 'redis-check-rdb');
  t.match(runs, /redis-server/, 'the throwaway server of RDB restores');
  t.match(runs, /test -x "\/usr\/lib\/postgresql\/\$\{PG_MAJOR\}\/bin\/pg_dump"/, 'the build fails if pg_dump is not where jarvis-db looks');
});

t.test('only production dependencies reach the image, installed by npm ci --omit=dev', async (t) => {
  const copies = all(final, 'COPY').map((c) => c.args);
  const modules = copies.find((c) => c.includes('node_modules'));
  t.ok(modules, 'node_modules comes from another stage');
  const from = /--from=(\S+)/.exec(modules!)![1];
  const deps = stages.find((s) => s.name === from)!;
  t.match(all(deps, 'RUN').map((i) => i.args).join('\n'), /npm ci --omit=dev/, `stage ${from} installs with --omit=dev`);
  t.match(all(stages.find((s) => s.name === 'build')!, 'RUN').map((i) => i.args).join('\n'), /npm run build/, 'the build stage compiles');
});

t.test('every file the Dockerfile copies exists and is not excluded by .dockerignore', async (t) => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const stage of stages) {
    for (const copy of all(stage, 'COPY')) {
      if (copy.args.startsWith('--from=')) continue;
      const parts = copy.args.split(/\s+/);
      for (const source of parts.slice(0, -1)) {
        t.ok(existsSync(join(ROOT, source)), `${source} exists`);
        t.notOk(ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)), `${source} is sent to the build`);
      }
    }
  }
  t.ok(ignored.includes('node_modules') && ignored.includes('.git'), 'the local node_modules and .git stay out of the build context');
});
