/**
 * `jarvis-db archive list|verify|restore`: the retention archives in storage.
 * Flags → src/retention/archives (restore: a restore_archive action run by the engine's apply) → output. Heavy modules are imported inside the actions.
 */
import type { Command } from 'commander';
import { formatCount, plural } from '../render/format.js';
import { exitWith, globalOptions, loadDesired, lockWait, note, print, printJson } from './common.js';

export function define(program: Command): void {
  const archive = program.command('archive').description('List, verify and restore retention archives');

  archive
    .command('list')
    .description('The archives of every repository, each once: policy, table, cut-off, chunks, rows, size, where they are')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { listArchives } = await import('../retention/archives.js');
      const { archives, invalid } = await listArchives(desired);
      if (g.json) {
        printJson({ archives, invalid });
        return;
      }
      if (archives.length === 0) print(`No archives in ${(await import('../retention/store.js')).archiveRepository(desired).location}.`);
      else {
        const { renderArchiveList } = await import('../retention/render.js');
        print(renderArchiveList(archives));
      }
      for (const b of invalid) note(`! ${b.dir}: ${b.problem}`);
    });

  archive
    .command('verify <id>')
    .description('Settle interrupted chunks, then read every chunk: sizes, SHA-256, decompression, row counts')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { verifyArchiveById } = await import('../retention/archives.js');
      const r = await verifyArchiveById(desired, id, process.env);
      if (g.json) printJson(r);
      else {
        if (r.resolution && (r.resolution.committed || r.resolution.voided)) {
          print(`settled interrupted chunks: ${formatCount(r.resolution.committed)} committed, ${formatCount(r.resolution.voided)} void (removed)`);
        }
        print(`${r.ok ? 'ok' : 'FAILED'} archive ${r.archive.id} (${r.archive.policy}, ${r.archive.table}): ${plural(r.archive.chunks, 'chunk')}, ${plural(r.archive.rows, 'row')}`);
        for (const p of r.problems) print(`  ${p}`);
      }
      if (!r.ok) {
        if (!g.json) {
          const { JarvisError } = await import('../errors.js');
          throw new JarvisError('VERIFY_FAILED', `archive ${r.archive.id} failed verification: ${r.problems[0]}`);
        }
        exitWith(1);
      }
    });

  archive
    .command('restore <id>')
    .description('Re-insert the rows of an archive (parents before children; rows already there are left alone)')
    .option('--table <name>', 'only this table of the archive')
    .option('--lock-timeout <duration>', 'how long to wait for an apply on the same storage to finish', '60s')
    .action(async (id: string, opts: { table?: string; lockTimeout: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { restoreArchiveCommand } = await import('../retention/archives.js');
      const { progressFor } = await import('../render/progress.js');
      const progress = await progressFor(`restore ${id}`, g.json);
      const r = await restoreArchiveCommand(desired, id, {
        ...(opts.table ? { table: opts.table } : {}), env: process.env, progress, ...(await lockWait(desired, opts.lockTimeout)),
      }).finally(() => progress.stop());
      if (g.json) printJson(r);
      else {
        for (const [table, n] of Object.entries(r.inserted)) {
          print(`+ ${table}: ${plural(n, 'row')} restored${r.alreadyThere[table] ? `, ${formatCount(r.alreadyThere[table]!)} already there` : ''}`);
        }
        if (r.partition) {
          const { placementText } = await import('../retention/archives.js');
          print(`+ ${placementText(r.partition)}`);
        }
        if (r.pendingSkipped) note(`! ${plural(r.pendingSkipped, 'pending chunk')} skipped (not settled: see \`jarvis-db archive verify ${r.archiveId}\`)`);
        print(`archive ${r.archiveId}: ${plural(r.chunks, 'chunk')} restored.`);
      }
    });
}
