/**
 * `jarvis-db erase --user ID`: flags → src/erasure/commands (an erase_user action run by the
 * engine's apply: one lock, one journal). It asks on a terminal and elsewhere needs
 * --auto-approve, as apply does. `--dry-run` says what would go; `--verify` proves nothing of
 * the user is left (exit 1 when something is). docs/erasure.md says what goes where.
 */
import type { Command } from 'commander';
import { askYes, exitWith, globalOptions, loadDesired, lockWait, note, onTerminal, print, printJson } from './common.js';

interface EraseFlags { user: string; dryRun?: boolean; autoApprove?: boolean; verify?: boolean; lockTimeout: string }

export function define(program: Command): void {
  program
    .command('erase')
    .description('Erase one user from every store per the declared links (PostgreSQL rows, Chroma vectors, Redis keys), remembered by a tombstone that restores re-apply')
    .requiredOption('--user <id>', 'the user id (the key of the users table, erasure.users)')
    .option('--dry-run', 'say what would be erased in each store; change nothing')
    .option('--auto-approve', 'do not ask for confirmation (needed when not on a terminal)')
    .option('--verify', 'check that nothing of the user is left in any store (exit 1 if something is); change nothing')
    .option('--lock-timeout <duration>', 'how long to wait for an apply on the same storage to finish', '60s')
    .action(async (opts: EraseFlags, cmd: Command) => {
      const g = globalOptions(cmd);
      const { JarvisError } = await import('../errors.js');
      if (opts.dryRun && opts.verify) throw new JarvisError('USAGE', '--dry-run and --verify both change nothing: give one of them');
      const desired = await loadDesired(g);
      if (opts.verify) {
        const { verifyErasure } = await import('../erasure/run.js');
        const v = await verifyErasure(desired, opts.user, process.env);
        if (g.json) printJson({ user: opts.user, erased: v.remaining.length === 0, remaining: v.remaining, checked: v.checked, tombstones: v.tombstones });
        else {
          for (const c of v.checked) print(`checked ${c}`);
          for (const r of v.remaining) print(`! ${r.store}: ${r.count} left in ${r.what}`);
          print(v.remaining.length === 0
            ? `User ${JSON.stringify(opts.user)} is erased: nothing of them is left in any store (${v.tombstones} tombstone${v.tombstones === 1 ? '' : 's'} recorded).`
            : `User ${JSON.stringify(opts.user)} is NOT erased: ${v.remaining.length} place${v.remaining.length === 1 ? '' : 's'} still hold their data.`);
        }
        if (v.remaining.length) exitWith(1);
        return;
      }
      const { describeReport } = await import('../erasure/handlers.js');
      if (opts.dryRun) {
        const { previewErasure } = await import('../erasure/run.js');
        const r = await previewErasure(desired, opts.user, process.env);
        if (g.json) return printJson({ dryRun: true, ...r });
        for (const line of describeReport(r, { rows: 'would be deleted', records: 'would be deleted', keys: 'would be deleted' })) print(line);
        print(`Dry run: nothing was erased (users row would be ${desired.erasure?.user === 'delete' ? 'deleted' : 'anonymized'}).`);
        return;
      }
      if (!opts.autoApprove && !onTerminal()) {
        throw new JarvisError('USAGE', 'erase is not on a terminal, so it cannot ask for confirmation: pass --auto-approve', { hint: `jarvis-db erase --user ${opts.user} --dry-run shows what would go` });
      }
      const { eraseCommand } = await import('../erasure/commands.js');
      const r = await eraseCommand(desired, opts.user, {
        env: process.env, ...(await lockWait(desired, opts.lockTimeout)),
        ...(opts.autoApprove ? {} : { confirm: async () => askYes(`Erase user ${JSON.stringify(opts.user)} from every store? This cannot be undone. Only 'yes' goes on: `) }),
      });
      if (g.json) return printJson(r.report);
      print(r.summary);
      note(`prove it: jarvis-db erase --verify --user ${opts.user}`);
    });
}
