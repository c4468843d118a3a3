/**
 * Shell completion (src/cli/completion.ts): what a position completes to, decided from the
 * command tree (pure, on the real program); then bash itself: the script sourced registers the
 * completion, and driven through COMP_WORDS / COMP_CWORD it completes commands, flags, schedule
 * names from the config and backup ids from the catalog.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildProgram } from '../../src/cli/main.js';
import { whatToComplete } from '../../src/cli/completion.js';
import { BackupWriter } from '../../src/backup/storage.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const words = (line: string) => line.split(' ');
const at = (line: string) => { const w = words(line); return whatToComplete(buildProgram(), w, w.length - 1); };

t.test('commands, then subcommands, flags of the command and the global ones, and the values a flag takes', async (t) => {
  t.match(at('jarvis-db '), { kind: 'words', words: ['plan', 'apply', 'validate', 'backup'] });
  t.notOk((at('jarvis-db ') as { words: string[] }).words.includes('__complete'), 'the hidden command is not offered');
  t.same(at('jarvis-db backup '), { kind: 'words', words: ['create', 'list', 'verify', 'prune', 'delete'] });
  const flags = (at('jarvis-db backup create --') as { words: string[] }).words;
  t.ok(['--service', '--schedule', '--stop-timeout', '--config', '--json'].every((f) => flags.includes(f)), flags.join(' '));
  t.same(at('jarvis-db backup create --schedule '), { kind: 'schedules' });
  t.same(at('jarvis-db -c other.yaml backup create --service postgres --schedule '), { kind: 'schedules' }, 'flags and their values before it are skipped');
  t.same(at('jarvis-db backup create --service '), { kind: 'words', words: ['postgres', 'redis', 'chroma', 'all'] });
  t.same(at('jarvis-db plan --format '), { kind: 'words', words: ['text', 'markdown', 'json'] });
  t.same(at('jarvis-db retention run --policy '), { kind: 'policies' });
  t.same(at('jarvis-db restore '), { kind: 'backups' });
  t.same(at('jarvis-db backup delete '), { kind: 'backups' });
  t.same(at('jarvis-db archive restore '), { kind: 'archives' });
  t.same(at('jarvis-db apply '), { kind: 'files' }, 'a plan file');
});

t.test('bash: the sourced script registers the completion, and completes schedule names and backup ids from the config and catalog', async (t) => {
  const dir = t.testdir();
  const bin = join(dir, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'jarvis-db'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
  await chmod(join(bin, 'jarvis-db'), 0o755);
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "postgres://jarvis:pw@127.0.0.1:1/jarvis" }', 'storage:', `  path: ${join(dir, 'backups')}`,
    'backups:', '  - { name: pg-nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }', '  - { name: pg-hourly, service: postgres, cron: "0 * * * *", keep: { last: 3 } }', '',
  ].join('\n'));
  const writer = await BackupWriter.begin({ repository: join(dir, 'backups'), service: 'postgres', schedule: 'pg-nightly', now: new Date('2026-11-20T03:00:00Z') });
  await writer.writeStream('dump.pgc', Readable.from([Buffer.from('dump')]));
  const { id } = (await writer.publish({ method: 'pg_dump', extra: {} })).manifest;

  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, JARVIS_DB_CONFIG: config };
  const bash = (script: string) => spawnSync('bash', ['-c', script], { env, encoding: 'utf8' });
  const registered = bash('source <(jarvis-db completion bash); complete -p jarvis-db');
  t.equal(registered.status, 0, registered.stderr);
  t.equal(registered.stdout.trim(), 'complete -F _jarvis_db_complete jarvis-db');

  const complete = (line: string) => {
    const w = words(line).map((x) => `'${x}'`).join(' ');
    const r = bash(`source <(jarvis-db completion bash); COMP_WORDS=(${w}); COMP_CWORD=${words(line).length - 1}; _jarvis_db_complete; printf '%s\\n' "\${COMPREPLY[@]}"`);
    t.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean);
  };
  t.same(complete('jarvis-db backup create --schedule '), ['pg-nightly', 'pg-hourly']);
  t.same(complete('jarvis-db backup create --schedule pg-n'), ['pg-nightly'], 'the prefix typed filters them');
  t.same(complete('jarvis-db ba'), ['backup']);
  t.same(complete('jarvis-db restore '), ['latest', id], 'backup ids from the catalog');
  t.same(complete('jarvis-db backup verify 2026'), [id]);
});

t.test('zsh and fish get their scripts; another shell is one clear line', async (t) => {
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  t.match(run('completion', 'zsh').stdout, /bashcompinit[\s\S]*complete -F _jarvis_db_complete jarvis-db/);
  t.match(run('completion', 'fish').stdout, /complete -c jarvis-db -f -a '\(__jarvis_db_complete\)'/);
  const bad = run('completion', 'tcsh');
  t.equal(bad.status, 1);
  t.match(bad.stderr, /^error: no completion for shell "tcsh" \(bash, zsh or fish\)/);
});
