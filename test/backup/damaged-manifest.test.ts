/**
 * A backup whose manifest does not hold is refused by restore, with and without --force, with a
 * hint that says what to do; and docs/disaster-recovery.md shows exactly that refusal.
 * Needs the compiled CLI (`npm run build`); no server (the refusal comes before any connection).
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, writeConfig } from '../engine/fixtures/cli.js';
import { publishBackup } from '../cli/fixtures/catalog.js';

const DOC = new URL('../../docs/disaster-recovery.md', import.meta.url);

t.test('restore of a backup with a damaged manifest is refused, even with --force, with a hint; the docs say so', async (t) => {
  const dir = t.testdir();
  const config = await writeConfig(dir, [
    'version: 1', 'services: { postgres: { url: "postgres://nobody@127.0.0.1:1/none" } }', 'storage: { path: ./backups }',
    'backups:', '  - { name: postgres-nightly, service: postgres, cron: "0 3 * * *", keep: { last: 2 } }',
  ]);
  const storage = join(dir, 'backups');
  const id = await publishBackup(storage, 'postgres', 'postgres-nightly', new Date(Date.UTC(2026, 10, 25, 8, 35, 46)));
  const manifestFile = join(storage, 'postgres', 'postgres-nightly', id, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { totalBytes: number };
  manifest.totalBytes += 1; // an edit the manifest's own checksum catches
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2) + '\n');

  const docs = await readFile(DOC, 'utf8');
  const documented = /^ *error: backup \S+ \(postgres\/postgres-nightly\) is damaged: manifest\.json fails its own checksum\n *(hint: .*)$/m.exec(docs);
  t.ok(documented, 'docs/disaster-recovery.md shows the refusal of a damaged manifest');
  t.match(docs, /The manifest does not hold[^]*refused even with `--force`/, 'and says --force does not restore it');
  for (const args of [['restore', id], ['restore', id, '--force']]) {
    const r = cli(args, { JARVIS_DB_CONFIG: config });
    t.equal(r.code, 1, `${args.join(' ')} exits 1`);
    const lines = r.stderr.trimEnd().split('\n').filter((l) => l.startsWith('error: ') || l.startsWith('hint: '));
    t.same(lines, [
      `error: backup ${id} (postgres/postgres-nightly) is damaged: manifest.json fails its own checksum`,
      documented?.[1],
    ], `${args.join(' ')}: the documented error and hint`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});
