import type { Command } from 'commander';
import { globalOptions, loadDesired, print, printJson } from './common.js';

export function define(program: Command): void {
  program
    .command('validate')
    .description('Check the config file (schema, cron, durations, names); print every error at once')
    .action(async (_opts: unknown, cmd: Command) => {
      const options = globalOptions(cmd);
      const desired = await loadDesired(options);
      const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
      const summary = `${plural(desired.backups.length, 'backup schedule', 'backup schedules')}, ${plural(desired.retention.length, 'retention policy', 'retention policies')}`;
      if (options.json) printJson({ ok: true, configFile: desired.configFile, configHash: desired.configHash, backups: desired.backups.length, policies: desired.retention.length });
      else print(`OK ${desired.configFile}: ${summary}`);
    });
}
