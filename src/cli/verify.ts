/**
 * `jarvis-db verify --point ID`: the links of the config (`links:`) compared exactly in a
 * recovery point's backups (src/links/point.ts); exit 0 when the stores agree, 1 when a link
 * has orphans or could not be compared. The live counterpart is `health check --service consistency`.
 */
import type { Command } from 'commander';
import { exitWith, globalOptions, loadDesired, note, print, printJson } from './common.js';

export function define(program: Command): void {
  program
    .command('verify')
    .description('Compare PostgreSQL, Redis and Chroma through the links of the config in a recovery point\'s backups (exact); exit 1 on orphans')
    .requiredOption('--point <id>', 'the recovery point (backup list shows them; a unique prefix will do)')
    .option('--repository <name>', 'read the point and its backups from this repository (default: the first that holds it)')
    .action(async (opts: { point: string; repository?: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const desired = await loadDesired(g);
      const { verifyPointLinks } = await import('../links/point.js');
      const { linksAgree, renderLinkOutcomes } = await import('../render/links.js');
      const result = await verifyPointLinks(desired, opts.point, { env: process.env, ...(opts.repository ? { repository: opts.repository } : {}), ...(g.json ? {} : { note }) });
      const agree = linksAgree(result.outcomes);
      if (g.json) printJson({ point: result.point.id, startedAt: result.point.startedAt, agree, links: result.outcomes });
      else print(renderLinkOutcomes(`Recovery point ${result.point.id} (${result.point.startedAt}), compared exactly:`, result.outcomes));
      exitWith(agree ? 0 : 1);
    });
}
