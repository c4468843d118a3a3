/**
 * Hostile configs: each must be refused with exit 1 and a clear error naming file:line:col
 * where there is one, never a stack trace, never a hang, never a password. Every case runs
 * through loadConfig and the CLI's failure formatter; the cases marked `cli` also run
 * through the real CLI (`node bin/jarvis-db.js validate -c FILE`; build first with
 * `npx tsc -p tsconfig.json`, as `npm test` does).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeFailure } from '../../src/cli/failure.js';
import { loadConfig } from '../../src/config/load.js';
import { isJarvisError } from '../../src/errors.js';
import { COLON_PASSWORD, HOSTILE_PASSWORDS, URL_FORMS, fragments } from '../helpers/hostile-passwords.js';

const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const BIN = join(ROOT, 'bin', 'jarvis-db.js');
const PG = 'postgres://jarvis:pg-Secret-42@127.0.0.1:5999/jarvis';
const lines = (...l: string[]) => l.join('\n') + '\n';

/** A valid config: line numbers below refer to it. */
const BASE = [
  'version: 1', //                                 1
  'project: jarvis', //                            2
  'services:', //                                  3
  '  postgres: { url: "${JARVIS_PG_URL}" }', //    4
  '  redis: { url: "redis://127.0.0.1:6379/0" }', // 5
  'backups:', //                                   6
  '  - name: postgres-nightly', //                 7
  '    service: postgres', //                      8
  '    cron: "0 3 * * *"', //                      9
  '    keep: { last: 3 }', //                      10
  '  - name: redis-hourly', //                     11
  '    service: redis', //                         12
  '    cron: "0 * * * *"', //                      13
  '    keep: { hourly: 24 }', //                   14
];
/** BASE with line n (1-based) replaced, or with extra lines after it. */
const edit = (n: number, replacement: string | string[]) => {
  const out = [...BASE];
  out.splice(n - 1, 1, ...(Array.isArray(replacement) ? replacement : [replacement]));
  return out.join('\n') + '\n';
};
const withTail = (...tail: string[]) => [...BASE, ...tail].join('\n') + '\n';

function aliasBomb(): string {
  let text = 'version: 1\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  let prev = 'a';
  for (const name of 'bcdefghi') {
    text += `${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
    prev = name;
  }
  return text;
}

interface Case {
  name: string;
  files: Record<string, string | Buffer>;
  /** The file passed to -c (default jarvis-db.yaml). */
  config?: string;
  env?: Record<string, string>;
  code?: 'CONFIG_INVALID' | 'CONFIG_NOT_FOUND';
  /** Each must match the printed failure. */
  expect: RegExp[];
  /** Must not appear in the printed failure. */
  secrets?: string[];
  cli?: boolean;
  /** The printed failure has exactly this many lines (the summary and one per problem). */
  lineCount?: number;
}

const cases: Case[] = [
  { name: 'a wrong type', cli: true,
    files: { 'jarvis-db.yaml': edit(10, ['    jobs: three', '    keep: { last: 3 }']) },
    expect: [/jarvis-db\.yaml:10:11: backups\[0\]\.jobs: expected a whole number, got "three"/] },
  { name: 'a scalar where a list belongs',
    files: { 'jarvis-db.yaml': lines('version: 1', 'services: { postgres: { url: "postgres://h/d" } }', 'backups: nightly') },
    expect: [/jarvis-db\.yaml:3:10: backups: expected a list, got "nightly"/] },
  { name: 'an unknown key, with a suggestion', cli: true,
    files: { 'jarvis-db.yaml': edit(10, '    kepe: { last: 3 }') },
    expect: [/jarvis-db\.yaml:10:5: backups\[0\]\.kepe: unknown key "kepe" \(did you mean "keep"\? expected one of: name, service, cron, timezone, keep,/,
      /jarvis-db\.yaml:7:5: backups\[0\]: missing required key "keep"/] },
  { name: 'an unknown top-level key',
    files: { 'jarvis-db.yaml': withTail('retension: {}') },
    expect: [/jarvis-db\.yaml:15:1: retension: unknown key "retension" \(did you mean "retention"\?/] },
  { name: 'a missing required key',
    files: { 'jarvis-db.yaml': edit(9, []) },
    expect: [/jarvis-db\.yaml:7:5: backups\[0\]: missing required key "cron"/] },
  { name: 'a value outside an enum lists the allowed values',
    files: { 'jarvis-db.yaml': withTail('    verify: sometimes') },
    expect: [/jarvis-db\.yaml:15:13: backups\[1\]\.verify: "sometimes" is not allowed \(expected one of: checksum, restore, none\)/] },
  { name: 'a cron hour out of range', cli: true,
    files: { 'jarvis-db.yaml': edit(13, '    cron: "0 25 * * *"') },
    expect: [/(^|\/)jarvis-db\.yaml:13:11: backups\[1\]\.cron: "0 25 \* \* \*" is not a valid cron expression \(hour 25 is out of range\)$/m] },
  { name: 'a cron expression with six fields',
    files: { 'jarvis-db.yaml': edit(9, '    cron: "0 0 3 * * *"') },
    expect: [/jarvis-db\.yaml:9:11: backups\[0\]\.cron: "0 0 3 \* \* \*" is not a valid cron expression \(it has 6 fields; expected 5/] },
  { name: 'an unknown timezone',
    files: { 'jarvis-db.yaml': edit(9, ['    cron: "0 3 * * *"', '    timezone: Europe/Atlantis']) },
    expect: [/jarvis-db\.yaml:10:15: backups\[0\]\.timezone: "Europe\/Atlantis" is not a valid IANA timezone/] },
  { name: 'a duration with a space and a word', cli: true,
    files: { 'jarvis-db.yaml': edit(10, '    keep: { last: 3, within: 7 days }') },
    expect: [/jarvis-db\.yaml:10:30: backups\[0\]\.keep\.within: "7 days" is not a positive duration such as 30s, 15m, 12h, 7d, 2w, 6mo or 2y/] },
  { name: 'a zero duration and a number where a duration belongs',
    files: { 'jarvis-db.yaml': withTail('health:', '  interval: 0s', '  history: 30') },
    expect: [/jarvis-db\.yaml:16:13: health\.interval: "0s" is not a positive duration/, /jarvis-db\.yaml:17:12: health\.history: expected a positive duration such as .*, got 30/] },
  { name: 'two schedules with the same name', cli: true,
    files: { 'jarvis-db.yaml': edit(11, '  - name: postgres-nightly') },
    expect: [/jarvis-db\.yaml:11:11: backups\[1\]\.name: "postgres-nightly" is already the name of backups\[0\] \(line 7\); schedule names must be unique/] },
  { name: 'a duplicate key in a mapping',
    files: { 'jarvis-db.yaml': edit(9, ['    cron: "0 3 * * *"', '    cron: "0 4 * * *"']) },
    expect: [/jarvis-db\.yaml:10:5: duplicate key/] },
  { name: 'two policies with the same name in different files',
    files: {
      'jarvis-db.yaml': withTail('retention:', '  include: [./policies/*.yaml]'),
      'policies/a.yaml': lines('policies:', '  - { name: old-rows, table: metrics, age: { column: recorded_at, olderThan: 30d }, action: delete }'),
      'policies/b.yaml': lines('policies:', '  - name: old-rows', '    table: sessions', '    age: { column: expires_at, olderThan: 30d }', '    action: delete'),
    },
    expect: [/policies\/b\.yaml:2:11: policies\[0\]\.name: policy "old-rows" is already defined as policies\[0\] \((.*\/)?policies\/a\.yaml:2:13\); policy names must be unique/] },
  { name: 'an unset environment variable', cli: true, env: { JARVIS_PG_URL: '' },
    files: { 'jarvis-db.yaml': BASE.join('\n').replace('${JARVIS_PG_URL}', '${JARVIS_PG_URL_TYPO}') + '\n' },
    expect: [/jarvis-db\.yaml:4:20: services\.postgres\.url: environment variable JARVIS_PG_URL_TYPO is not set/] },
  { name: 'a malformed variable reference',
    files: { 'jarvis-db.yaml': edit(5, '  redis: { url: "redis://${REDIS HOST}:6379/0" }') },
    expect: [/jarvis-db\.yaml:5:17: services\.redis\.url: "\$\{REDIS HOST\}" is not a valid variable reference/] },
  { name: 'a YAML syntax error', cli: true,
    files: { 'jarvis-db.yaml': edit(10, '    keep: { last: 3') },
    expect: [/jarvis-db\.yaml:\d+:\d+: YAML syntax error: /] },
  { name: 'an empty file', cli: true,
    files: { 'jarvis-db.yaml': '' },
    expect: [/jarvis-db\.yaml: is empty/] },
  { name: 'a file of comments only',
    files: { 'jarvis-db.yaml': '# nothing here yet\n\n' },
    expect: [/jarvis-db\.yaml: is empty/] },
  { name: 'a 10 MB file', cli: true,
    files: { 'jarvis-db.yaml': Buffer.concat([Buffer.from('version: 1\n'), Buffer.alloc(10_000_000, '# padding\n')]) },
    expect: [/jarvis-db\.yaml: file is 10 MB; a config file may be at most 1\.0 MB/] },
  { name: 'an alias bomb (billion laughs)', cli: true,
    files: { 'jarvis-db.yaml': aliasBomb() },
    expect: [/jarvis-db\.yaml: refused: its aliases expand beyond 100 nodes \(an "alias bomb"\)/] },
  { name: 'nesting a hundred thousand levels deep',
    files: { 'jarvis-db.yaml': `version: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n` },
    expect: [/jarvis-db\.yaml(:\d+:\d+)?: refused: nested/] },
  { name: 'non-UTF-8 bytes', cli: true,
    files: { 'jarvis-db.yaml': Buffer.concat([Buffer.from('version: 1\nproject: "caf'), Buffer.from([0xe9]), Buffer.from('"\nservices: {}\n')]) },
    expect: [/jarvis-db\.yaml:2:14: is not valid UTF-8: byte 0xe9/] },
  { name: 'a UTF-16 file',
    files: { 'jarvis-db.yaml': Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('version: 1\n', 'utf16le')]) },
    expect: [/jarvis-db\.yaml:1:1: is not valid UTF-8: byte 0xff/] },
  { name: 'a backup of a service that is not configured', cli: true,
    files: { 'jarvis-db.yaml': withTail('  - { name: chroma-daily, service: chroma, cron: "30 3 * * *", keep: { daily: 14 } }') },
    expect: [/jarvis-db\.yaml:15:36: backups\[2\]\.service: service "chroma" is not configured under services \(configured: postgres, redis\)/] },
  { name: 'a policy file with an error names that file and line', cli: true,
    files: {
      'jarvis-db.yaml': withTail('retention:', '  include: [./policies/*.yaml]'),
      'policies/bad.yaml': lines('policies:', '  - name: metrics-delete', '    table: metrics', '    age: { column: recorded_at, olderThan: 30 days }', '    action: remove'),
    },
    expect: [/policies\/bad\.yaml:4:44: policies\[0\]\.age\.olderThan: "30 days" is not a positive duration/, /policies\/bad\.yaml:5:13: policies\[0\]\.action: "remove" is not allowed \(expected one of: delete, archive, anonymize, compress, erase\)/] },
  { name: 'a policy file that is not UTF-8',
    files: {
      'jarvis-db.yaml': withTail('retention:', '  include: [./policies/*.yaml]'),
      'policies/latin1.yaml': Buffer.concat([Buffer.from('policies:\n  - name: r\xc3\xa9'), Buffer.from([0xe9, 0x0a])]),
    },
    expect: [/policies\/latin1\.yaml:2:14: is not valid UTF-8/] },
  { name: 'a missing included file',
    files: { 'jarvis-db.yaml': withTail('retention:', '  include: [./policies/gone.yaml]') },
    expect: [/jarvis-db\.yaml:16:13: retention\.include\[0\]: included file .*policies\/gone\.yaml does not exist/] },
  { name: 'an include pattern that matches nothing',
    files: { 'jarvis-db.yaml': withTail('retention:', '  include: ["./policies/*.yml"]'), 'policies/a.yaml': 'policies: []\n' },
    expect: [/jarvis-db\.yaml:16:13: retention\.include\[0\]: "\.\/policies\/\*\.yml" matches no file/] },
  { name: 'a password in a URL of an invalid config is never printed', cli: true,
    files: { 'jarvis-db.yaml': edit(4, '  postgres: { url: "mysql://admin:Hunter2-Secret@db.internal/jarvis" }').replace('project: jarvis', 'project: "postgres://u:Hunter2-Secret@h/d"') },
    secrets: ['Hunter2-Secret'],
    expect: [/jarvis-db\.yaml:4:20: services\.postgres\.url: a postgres URL must start with postgres:\/\/ or postgresql:\/\//, /jarvis-db\.yaml:2:10: project: "postgres:\/\/u:\*\*\*@h\/d" is not a name/] },
  { name: 'a password from the environment in an invalid config is never printed', env: { JARVIS_PG_URL: 'mysql://jarvis:Env-Secret-99@db/x' },
    files: { 'jarvis-db.yaml': BASE.join('\n') + '\n' },
    secrets: ['Env-Secret-99'],
    expect: [/services\.postgres\.url: a postgres URL must start with/] },
  { name: 'a list at the top level',
    files: { 'jarvis-db.yaml': '- version: 1\n' },
    expect: [/jarvis-db\.yaml:1:1: expected a mapping of keys at the top level, got a list/] },
  { name: 'an unknown format version',
    files: { 'jarvis-db.yaml': edit(1, 'version: 2') },
    expect: [/jarvis-db\.yaml:1:10: version: expected 1, got 2/] },
  { name: 'a method that does not fit the service',
    files: { 'jarvis-db.yaml': withTail('    method: physical') },
    expect: [/jarvis-db\.yaml:15:13: backups\[1\]\.method: method "physical" is not available for redis \(expected one of: rdb, logical\)/] },
  { name: 'keep rules that keep nothing',
    files: { 'jarvis-db.yaml': edit(10, '    keep: { last: 0 }') },
    expect: [/jarvis-db\.yaml:10:11: backups\[0\]\.keep: keep rules keep nothing/] },
  { name: 'several YAML documents',
    files: { 'jarvis-db.yaml': BASE.join('\n') + '\n---\nversion: 1\n' },
    expect: [/jarvis-db\.yaml:15:1: holds several YAML documents/] },
  { name: 'an unknown YAML tag',
    files: { 'jarvis-db.yaml': edit(2, 'project: !vault jarvis') },
    expect: [/jarvis-db\.yaml:2:10: YAML problem: Unresolved tag: !vault/] },
  { name: 'thresholds in the wrong order',
    files: { 'jarvis-db.yaml': withTail('health:', '  thresholds:', '    postgres.cache_hit_ratio: { warning: "< 0.90", critical: "< 0.98" }') },
    expect: [/jarvis-db\.yaml:17:31: health\.thresholds\["postgres\.cache_hit_ratio"\]: when lower is worse, warning \(0\.9\) must not be below critical \(0\.98\)/] },
  { name: 'an anonymize policy without columns, and a table name that is SQL',
    files: { 'jarvis-db.yaml': withTail('retention:', '  policies:', '    - { name: u, table: "users; DROP TABLE users", age: { column: last_active_at, olderThan: 2y }, action: anonymize }') },
    expect: [/jarvis-db\.yaml:17:7: retention\.policies\[0\]: an anonymize policy needs anonymize\.columns/, /jarvis-db\.yaml:17:25: retention\.policies\[0\]\.table: "users; DROP TABLE users" is not a table name/] },
  { name: 'a config file that does not exist', cli: true, code: 'CONFIG_NOT_FOUND', config: 'nope.yaml',
    files: {},
    expect: [/config file .*nope\.yaml not found/, /-c FILE/] },
  { name: 'a directory given as the config',
    config: 'conf.d', files: { 'conf.d/x.yaml': 'version: 1\n' },
    expect: [/conf\.d: is a directory/] },
  { name: 'a secret access key under an S3 repository: refused in one line, its value never printed', cli: true,
    files: { 'jarvis-db.yaml': withTail(
      'repositories:', //                                                  15
      '  - { name: local, path: ./repo }', //                               16
      '  - name: offsite', //                                              17
      '    s3: { bucket: jarvis-backups, secretAccessKey: "wJalrXUtnFEMI-K7MDENG-bPxRfiCY" }', // 18
    ) },
    expect: [/jarvis-db\.yaml:18:35: repositories\[1\]\.s3\.secretAccessKey: credentials never go in the file: they come from the AWS chain \(AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity\)$/m],
    secrets: ['wJalrXUtnFEMI-K7MDENG-bPxRfiCY'], lineCount: 2 },
  { name: 'an access key id and a password beside a repository, from the environment: neither value printed',
    env: { OFFSITE_KEY: 'AKIAHOSTILE0000KEY' },
    files: { 'jarvis-db.yaml': withTail(
      'repositories:', //                                                  15
      '  - name: offsite', //                                              16
      '    s3: { bucket: jarvis-backups }', //                              17
      '    access_key_id: "${OFFSITE_KEY}"', //                             18
      '    password: hunter2-hostile', //                                   19
    ) },
    expect: [/jarvis-db\.yaml:18:5: repositories\[0\]\.access_key_id: credentials never go in the file/, /jarvis-db\.yaml:19:5: repositories\[0\]\.password: credentials never go in the file/],
    secrets: ['AKIAHOSTILE0000KEY', 'hunter2-hostile'], lineCount: 3 },
  { name: 'a repository with both path and s3, and an endpoint that is not an http URL', cli: true,
    files: { 'jarvis-db.yaml': withTail(
      'repositories:', //                                                  15
      '  - { name: local, path: ./repo, s3: { bucket: jarvis-backups } }', // 16
      '  - { name: offsite, s3: { bucket: jarvis-backups, endpoint: "ftp://minio:9000" } }', // 17
    ) },
    expect: [/jarvis-db\.yaml:16:5: repositories\[0\]: a repository is either a local directory \(path\) or a bucket \(s3\), not both/,
      /jarvis-db\.yaml:17:\d+: repositories\[1\]\.s3\.endpoint: "ftp:\/\/minio:9000" is not an http:\/\/ or https:\/\/ URL/] },
  { name: 'repository names that repeat or are not lower case, and a bucket name S3 refuses',
    files: { 'jarvis-db.yaml': withTail(
      'repositories:', //                                                  15
      '  - { name: offsite, path: ./a }', //                                16
      '  - { name: offsite, path: ./b }', //                                17
      '  - { name: Off_Site, s3: { bucket: "Jarvis_Backups" } }', //        18
    ) },
    expect: [/jarvis-db\.yaml:17:\d+: repositories\[1\]\.name: "offsite" is already the name of repositories\[0\] \(line 16\); repository names must be unique/,
      /jarvis-db\.yaml:18:\d+: repositories\[2\]\.name: "Off_Site" is not a repository name of lower case letters/,
      /jarvis-db\.yaml:18:\d+: repositories\[2\]\.s3\.bucket: "Jarvis_Backups" is not an S3 bucket name/] },
];

const NOT_AS_INTENDED = (where: string, field: string) => new RegExp(`(^|/)jarvis-db\\.yaml:${where}: ${field.replace(/\./g, '\\.')}: the URL does not parse as intended \\([^()]+\\); percent-encode the password \\(e\\.g\\. @ as %40, / as %2F, # as %23, \\? as %3F, % as %25, : as %3A\\)$`, 'm');

// A password with @ / % # ? in a URL, not percent-encoded: refused in one line naming file:line:col and the field, no piece of it printed.
HOSTILE_PASSWORDS.forEach((password, i) => {
  const cli = i === 0 || i === HOSTILE_PASSWORDS.length - 1;
  cases.push(
    { name: `an unencoded password in services.postgres.url from the environment (password ${i + 1})`, cli, lineCount: 2,
      env: { JARVIS_PG_URL: URL_FORMS.postgres(password, 33703) },
      files: { 'jarvis-db.yaml': BASE.join('\n') + '\n' },
      secrets: fragments(password), expect: [NOT_AS_INTENDED('4:20', 'services.postgres.url')] },
    { name: `an unencoded password in services.redis.url (password ${i + 1})`, cli, lineCount: 2,
      files: { 'jarvis-db.yaml': edit(5, `  redis: { url: "${URL_FORMS.redis(password)}" }`) },
      secrets: fragments(password), expect: [NOT_AS_INTENDED('5:17', 'services.redis.url')] },
    { name: `an unencoded password in services.chroma.url (password ${i + 1})`, cli, lineCount: 2,
      files: { 'jarvis-db.yaml': edit(5, [BASE[4]!, `  chroma: { url: "${URL_FORMS.chroma(password)}" }`]) },
      secrets: fragments(password), expect: [NOT_AS_INTENDED('6:18', 'services.chroma.url')] },
  );
});
cases.push(
  { name: 'an unencoded password in health.alerts.webhook', cli: true, lineCount: 2,
    files: { 'jarvis-db.yaml': withTail('health:', '  alerts: { webhook: "https://hook:Sp@c/i%al:P#w?d@hooks.example.com/x" }') },
    secrets: fragments('Sp@c/i%al:P#w?d'), expect: [NOT_AS_INTENDED('16:22', 'health.alerts.webhook')] },
  { name: 'a port that is not a number', lineCount: 2,
    files: { 'jarvis-db.yaml': edit(5, '  redis: { url: "redis://:pw@127.0.0.1:63x9/0" }') },
    expect: [/services\.redis\.url: the URL does not parse as intended \(the port is not a number\)/] },
  { name: 'a redis database that is not a number does not echo the path', lineCount: 2,
    files: { 'jarvis-db.yaml': edit(5, '  redis: { url: "redis://127.0.0.1:6379/Xq9-Path" }') },
    secrets: ['Xq9-Path'],
    expect: [/jarvis-db\.yaml:5:17: services\.redis\.url: the database in a redis URL is a number from 0 to 15 \(the path after the host is not one\)$/m] },
);

t.ok(cases.length >= 25, `${cases.length} hostile configs`);

async function setup(dir: string, c: Case): Promise<string> {
  for (const [name, content] of Object.entries(c.files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return join(dir, c.config ?? 'jarvis-db.yaml');
}

/** The assertions checkOutput uses (tap's Test has them). */
type Asserts = { match(v: string, re: RegExp, m: string): unknown; notMatch(v: string, re: RegExp, m: string): unknown; notOk(v: unknown, m: string): unknown; equal(a: unknown, b: unknown, m: string): unknown };

function checkOutput(t: Asserts, c: Case, text: string): void {
  for (const re of c.expect) t.match(text, re, `says ${re}`);
  t.notMatch(text, /^\s+at /m, 'no stack trace');
  for (const secret of [...(c.secrets ?? []), 'pg-Secret-42']) t.notOk(text.includes(secret), `no password (${secret})`);
  if (c.lineCount !== undefined) t.equal(text.trimEnd().split('\n').length, c.lineCount, `${c.lineCount} lines`);
}

for (const c of cases) {
  t.test(`refused through loadConfig: ${c.name}`, async (t) => {
    const file = await setup(t.testdir(), c);
    const started = Date.now();
    let error: unknown;
    try {
      await loadConfig(file, { JARVIS_PG_URL: PG, ...c.env });
    } catch (e) {
      error = e;
    }
    t.ok(Date.now() - started < 5000, 'answers within seconds');
    t.ok(isJarvisError(error), `a JarvisError (got ${String(error)})`);
    if (!isJarvisError(error)) return;
    t.equal(error.code, c.code ?? 'CONFIG_INVALID');
    checkOutput(t, c, describeFailure(error, false));
  });
}

t.test('the same passwords percent-encoded load, in every URL form; an unencoded : alone is read as written', async (t) => {
  const passwords = [...HOSTILE_PASSWORDS.filter((p) => !p.includes('%ce')).map(encodeURIComponent), COLON_PASSWORD];
  for (const password of passwords) {
    const dir = t.testdir(); // one directory, rewritten: a test directory is named after the test, never after a password
    const file = await setup(dir, { name: password, expect: [], files: { 'jarvis-db.yaml': edit(5, [
      `  redis: { url: "${URL_FORMS.redis(password)}" }`,
      `  chroma: { url: "${URL_FORMS.chroma(password)}" }`,
    ]) } });
    const desired = await loadConfig(file, { JARVIS_PG_URL: URL_FORMS.postgres(password) });
    t.equal(desired.services.postgres?.url, URL_FORMS.postgres(password));
    t.equal(desired.services.redis?.url, URL_FORMS.redis(password));
  }
});

function runCli(args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const base = { ...process.env };
    delete base.JARVIS_DB_CONFIG;
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...base, ...env }, timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

const built = existsSync(join(ROOT, 'dist', 'cli', 'main.js')) && existsSync(join(ROOT, 'dist', 'config', 'load.js'));

// Each case is a CLI process of its own that reads only its own directory: four run at once (the test's
// time is wall time); each still has its 10 s limit.
t.test('through the real CLI', { skip: built ? false : 'build first: npx tsc -p tsconfig.json', jobs: 4 }, async (t) => {
  const cliCases = cases.filter((c) => c.cli);
  t.ok(cliCases.length >= 10, `${cliCases.length} cases through the CLI`);
  await Promise.all(cliCases.map((c) => t.test(`exit 1: ${c.name}`, async (t) => {
    const dir = t.testdir();
    const file = await setup(dir, c);
    const r = await runCli(['validate', '-c', file.slice(dir.length + 1)], dir, { JARVIS_PG_URL: PG, ...c.env });
    t.equal(r.code, 1, 'exit 1');
    t.ok(r.ms < 10_000, `finishes within seconds (${r.ms} ms)`);
    t.equal(r.stdout, '', 'nothing on stdout');
    t.match(r.stderr, /^error: /);
    checkOutput(t, c, r.stderr);
  })));

  t.test('validate prints one OK line and exits 0 for the root config', async (t) => {
    const r = await runCli(['validate'], ROOT, { JARVIS_PG_URL: PG });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^OK .*jarvis-db\.yaml: 3 backup schedules, 6 retention policies\n$/);
    t.equal(r.stdout.split('\n').filter(Boolean).length, 1, 'one line');
    t.equal(r.stderr, '');
  });

  t.test('validate passes a percent-encoded password', async (t) => {
    const dir = t.testdir();
    const file = await setup(dir, { name: 'encoded', expect: [], files: { 'jarvis-db.yaml': edit(5, `  redis: { url: "${URL_FORMS.redis(encodeURIComponent('Sp@c/i%al:P#w?d'))}" }`) } });
    const r = await runCli(['validate', '-c', file], dir, { JARVIS_PG_URL: URL_FORMS.postgres(encodeURIComponent('Sp@c/i%al:P#w?d')) });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^OK /);
  });

  t.test('--debug shows the stack of a config error', async (t) => {
    const dir = t.testdir();
    const file = await setup(dir, cases.find((c) => c.name === 'a cron hour out of range')!);
    const [plain, debug] = await Promise.all([
      runCli(['validate', '-c', file], dir, { JARVIS_PG_URL: PG }),
      runCli(['--debug', 'validate', '-c', file], dir, { JARVIS_PG_URL: PG }),
    ]);
    t.equal(plain.code, 1);
    t.equal(debug.code, 1);
    t.notMatch(plain.stderr, /^\s+at /m);
    t.match(debug.stderr, /^\s+at /m, 'a stack with --debug');
    t.match(debug.stderr, /hour 25 is out of range/);
  });
});
