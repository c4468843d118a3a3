/**
 * Passwords written into service URLs without percent-encoding, through the compiled CLI
 * (`npm run build` first): `validate`, `plan` and `health check`, with and without --debug,
 * never print a piece of three characters or more of the password, and refuse the config in
 * one line per URL; the same passwords percent-encoded work against real servers.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { COLON_PASSWORD, HOSTILE_PASSWORDS, URL_FORMS, leaked } from '../helpers/hostile-passwords.js';
import { withSandbox } from '../helpers/sandbox.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const COMMANDS = [['validate'], ['plan'], ['health', 'check']];

interface Run { code: number | null; output: string }

function run(args: string[], cwd: string, env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const base = { ...process.env };
    delete base.JARVIS_DB_CONFIG;
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...base, ...env }, timeout: 60_000 });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** A config with all three services; the PostgreSQL URL comes from the environment, the others are written in the file. */
function configText(redisUrl: string, chromaUrl: string): string {
  return [
    'version: 1',
    'project: jarvis',
    'services:',
    '  postgres: { url: "${JARVIS_PG_URL}" }',
    `  redis: { url: "${redisUrl}" }`,
    `  chroma: { url: "${chromaUrl}" }`,
    'storage: { path: ./backups }',
    '',
  ].join('\n');
}

const REFUSED = (line: number, field: string) => new RegExp(`^jarvis-db\\.yaml:${line}:\\d+: ${field.replace(/\./g, '\\.')}: the URL does not parse as intended \\(`, 'm');

/** Every command, without and with --debug, in that order. */
const INVOCATIONS = COMMANDS.flatMap((command) => [false, true].map((debug) => ({ command, debug, args: [...(debug ? ['--debug'] : []), ...command] })));

// The runs are separate processes that only read their config: they run at once (the test's time is wall
// time), the subtests three at a time; the assertions are checked afterwards, in the same order as before.
t.test('an unencoded password is refused in one line per URL by every command, with and without --debug, and never printed', { jobs: 3 }, async (t) => {
  await Promise.all(HOSTILE_PASSWORDS.map((password, i) => t.test(`password ${i + 1}`, async (t) => {
    const dir = t.testdir();
    await writeFile(join(dir, 'jarvis-db.yaml'), configText(URL_FORMS.redis(password), URL_FORMS.chroma(password)));
    const env = { JARVIS_PG_URL: URL_FORMS.postgres(password, 33703) };
    const runs = await Promise.all(INVOCATIONS.map(({ args }) => run(args, dir, env)));
    for (const [k, { command, debug }] of INVOCATIONS.entries()) {
      const r = runs[k]!;
      const what = `${debug ? '--debug ' : ''}${command.join(' ')}`;
      t.equal(r.code, 1, `${what}: exit 1`);
      t.same(leaked(r.output, password), [], `${what}: no piece of the password`);
      t.match(r.output, /^error: jarvis-db\.yaml: 3 errors$/m, what);
      for (const [line, field] of [[4, 'services.postgres.url'], [5, 'services.redis.url'], [6, 'services.chroma.url']] as const) {
        t.match(r.output, REFUSED(line, field), `${what}: ${field}`);
        t.equal(r.output.split('\n').filter((l) => l.includes(field)).length, 1, `${what}: one line for ${field}`);
      }
      if (debug) t.match(r.output, /^\s+at /m, `${what}: a stack`);
    }
  })));
});

t.test('the same passwords percent-encoded reach real servers, and print as ***', async (t) => {
  const sandbox = await withSandbox(t, ['postgres', 'redis']);
  const admin = new pg.Client({ connectionString: sandbox.postgres!.url });
  await admin.connect();
  const redis = new Redis(sandbox.redis!.url);
  t.teardown(async () => { await admin.end(); redis.disconnect(); });
  for (const password of [HOSTILE_PASSWORDS[0], COLON_PASSWORD]) {
    await admin.query('DROP ROLE IF EXISTS spec');
    await admin.query(`CREATE ROLE spec LOGIN SUPERUSER PASSWORD ${admin.escapeLiteral(password)}`);
    await redis.call('ACL', 'SETUSER', 'default', 'on', 'resetpass', `>${password}`, '~*', '&*', '+@all');
    // The admin connection stays authenticated; new connections need the new password.
    const encoded = password === COLON_PASSWORD ? password : encodeURIComponent(password);
    // Chroma is not running: its URL is refused by nothing but the closed port.
    const config = configText(URL_FORMS.redis(encoded, sandbox.redis!.port), URL_FORMS.chroma(encoded, 1));
    const env = { JARVIS_PG_URL: `${URL_FORMS.postgres(encoded, sandbox.postgres!.port).replace(/\/jarvis$/, `/${sandbox.postgres!.database}`)}` };
    // The runs go at once (the test's time is wall time), each in a config directory of its own, so that
    // no run sees what another wrote (health check appends to the history under the storage path).
    const base = t.testdir();
    const runIn = async (name: string, args: string[]) => {
      const dir = join(base, name);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'jarvis-db.yaml'), config);
      return run(args, dir, env);
    };
    const services = ['postgres', 'redis'];
    const [validate, plan, healths, commands] = await Promise.all([
      runIn('validate', ['validate']),
      runIn('plan', ['plan']),
      Promise.all(services.map((service) => runIn(`health-${service}`, ['health', 'check', '--service', service]))),
      Promise.all([false, true].flatMap((debug) => COMMANDS.map((command, k) => runIn(`${debug ? 'debug-' : ''}${k}`, [...(debug ? ['--debug'] : []), ...command])))),
    ]);

    t.equal(validate.code, 0, validate.output);
    for (const [k, service] of services.entries()) {
      const health = healths[k]!;
      t.match(health.output, /^\s+✓ up\s+yes/m, `${password}: ${service} answers (${health.output})`);
      t.notMatch(health.output, /cannot connect to/, `${password}: ${service} connects`);
    }
    let k = 0;
    for (const debug of [false, true]) {
      for (const command of COMMANDS) {
        const r = commands[k++]!;
        t.same(leaked(r.output, password), [], `${debug ? '--debug ' : ''}${command.join(' ')}: no piece of the password`);
        t.notOk(r.output.includes(encoded), `${command.join(' ')}: not the encoded password either`);
      }
    }
    t.match(plan.output, /http:\/\/spec:\*\*\*@127\.0\.0\.1:1/, 'the unreachable Chroma is named with *** for its password');
  }
});
