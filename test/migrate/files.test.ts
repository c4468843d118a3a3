/**
 * Migration files on disk: node-pg-migrate's order, checksums, Down sections, `migrate create`,
 * and the project's own migrations folder.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { getMigrationFilePaths } from 'node-pg-migrate/migration';
import { createMigrationFile, readMigrationFiles } from '../../src/migrate/files.js';

const PROJECT_MIGRATIONS = new URL('../../migrations/', import.meta.url).pathname;

t.test('files come in node-pg-migrate order (numeric prefixes, not text order) with their SHA-256', async (t) => {
  const dir = t.testdir({
    '10_later.sql': '-- Up Migration\nSELECT 10;\n-- Down Migration\nSELECT -10;\n',
    '2_earlier.sql': '-- Up Migration\nSELECT 2;\n',
    '1_first.js': 'export const up = () => {}; export const down = () => {};\n',
    '.hidden.sql': 'ignored',
  });
  const { files, problems } = await readMigrationFiles(dir);
  t.same(problems, []);
  t.same(files.map((f) => f.name), ['1_first', '2_earlier', '10_later']);
  t.same(files.map((f) => f.hasDown), [null, false, true], 'Down sections are known for SQL files');
  const bytes = await readFile(join(dir, '10_later.sql'));
  t.equal(files[2]!.sha256, createHash('sha256').update(bytes).digest('hex'));
});

t.test('the files are listed in exactly the order node-pg-migrate itself lists them (the runner and the plan never disagree)', async (t) => {
  const dir = t.testdir({
    '10_later.sql': '', '2_earlier.sql': '', '002_b.sql': '', '1_first.js': '', '1_First.sql': '', '20261124093000000_utc.sql': '',
    '1700000000000_ts.sql': '', '3-dash.sql': '', '3_a.b.sql': '', '.hidden.sql': '', sub: {},
  });
  const theirs = (await getMigrationFilePaths(dir, { logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } })).map((p) => basename(p));
  const ours = (await readMigrationFiles(dir)).files.map((f) => f.file);
  t.same(ours, theirs);
});

t.test('a missing folder and two files with one name are problems, not crashes', async (t) => {
  const missing = await readMigrationFiles('/nonexistent/migrations');
  t.match(missing.problems[0], /the migrations directory \/nonexistent\/migrations does not exist/);
  const dir = t.testdir({ '1_same.sql': '-- Up Migration\n', '1_same.js': 'export const up = () => {};' });
  const dup = await readMigrationFiles(dir);
  t.match(dup.problems[0], /two migration files have the name 1_same/);
});

t.test('migrate create writes the next numbered SQL file with Up and Down sections', async (t) => {
  const dir = t.testdir({ '0001_a.sql': '-- Up Migration\n-- Down Migration\n', '0002_b.sql': '-- Up Migration\n-- Down Migration\n' });
  const file = await createMigrationFile(dir, 'add_user_locale');
  t.equal(file, join(dir, '0003_add_user_locale.sql'));
  const content = await readFile(file, 'utf8');
  t.match(content, /-- Up Migration/);
  t.match(content, /-- Down Migration/);
  await t.rejects(createMigrationFile(dir, 'drop table; --'), { code: 'USAGE', message: /letters, digits, _ and -/ });
  const empty = join(t.testdir(), 'new-folder');
  t.equal(await createMigrationFile(empty, 'init'), join(empty, '0001_init.sql'), 'the folder is created and numbering starts at 0001');
});

t.test('every project migration has an Up and a Down section and a numbered name', async (t) => {
  const { files, problems } = await readMigrationFiles(PROJECT_MIGRATIONS);
  t.same(problems, []);
  t.ok(files.length >= 5, 'several migrations, not one big file');
  for (const f of files) {
    t.match(f.name, /^\d{4}_[a-z_]+$/, f.name);
    t.equal(f.hasDown, true, `${f.file} has a Down section`);
  }
  t.same((await readdir(PROJECT_MIGRATIONS)).filter((n) => !n.endsWith('.sql')), [], 'only SQL migrations in the folder');
});

t.test('a folder that is a file is a problem', async (t) => {
  const dir = t.testdir();
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'plain'), 'x');
  t.match((await readMigrationFiles(join(dir, 'plain'))).problems[0], /is not a directory/);
});
