import { Option, type Command } from 'commander';
import { exitWith, globalOptions, loadDesired, note, print, printJson } from './common.js';

export function define(program: Command): void {
  const health = program
    .command('health')
    .description('Check PostgreSQL, Redis, Chroma, the machine and the backups');

  health
    .command('check')
    .description('Run every health check once; exit 0 healthy, 1 warning, 2 critical, 3 unknown')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json', 'prometheus']).default('text'))
    .addOption(new Option('--service <service>', 'only this service').choices(['postgres', 'redis', 'chroma', 'system', 'backups', 'repository', 'consistency']))
    .action(async (opts: { format: string; service?: string }, cmd: Command) => {
      const options = globalOptions(cmd);
      const desired = await loadDesired(options);
      const { runHealthCheck } = await import('../health/check.js');
      const { STATUS_EXIT_CODE } = await import('../health/evaluate.js');
      const result = await runHealthCheck(desired, opts.service ? { services: [opts.service as 'postgres'] } : {});
      const format = options.json ? 'json' : opts.format;
      if (format === 'json') {
        const { healthJson } = await import('../render/health.js');
        printJson(healthJson(result.observation, result.findings, result.status));
      } else if (format === 'prometheus') {
        const { renderHealthPrometheus } = await import('../render/prometheus.js');
        print(renderHealthPrometheus(result.observation, result.findings));
      } else {
        const { renderHealthText } = await import('../render/health.js');
        print(renderHealthText(result.observation, result.findings, result.status));
      }
      for (const failure of result.alertFailures) note(`warning: ${failure}`);
      exitWith(STATUS_EXIT_CODE[result.status]);
    });

  health
    .command('checks')
    .description('List every check: its default levels, where they come from, what it measures')
    .action(async (_opts: unknown, cmd: Command) => {
      const options = globalOptions(cmd);
      const { CHECKS } = await import('../health/checks.js');
      const { describeThreshold } = await import('../health/evaluate.js');
      const rows = Object.entries(CHECKS as Record<string, import('../health/checks.js').CheckSpec>).map(([name, spec]) => ({
        name, service: spec.service, type: spec.type, labels: spec.labels ?? [],
        default: spec.threshold ? describeThreshold(spec.threshold, spec) : null,
        source: spec.source ?? null, help: spec.help,
      }));
      if (options.json) return printJson(rows);
      const width = Math.max(...rows.map((r) => r.name.length));
      for (const r of rows) {
        print(`${r.name.padEnd(width)}  ${r.default ?? '-'}${r.source ? `  (${r.source})` : ''}`);
        print(`${' '.repeat(width)}  ${r.help}`);
      }
    });

  health
    .command('history')
    .description('The trend of each check: min / avg / max per day, with sparklines')
    .option('--since <duration>', 'how far back (30s, 15m, 12h, 7d, 2w, ...)', '7d')
    .option('--check <name>', 'one check (postgres.cache_hit_ratio) or its labelled samples')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { since: string; check?: string; format: string }, cmd: Command) => {
      const options = globalOptions(cmd);
      const { checkDuration } = await import('../config/durations.js');
      const { JarvisError } = await import('../errors.js');
      const parsed = checkDuration(opts.since);
      if (typeof parsed === 'string') throw new JarvisError('USAGE', `--since: ${parsed}`);
      const desired = await loadDesired(options);
      const { historyTrends } = await import('../health/history.js');
      const until = new Date();
      const since = new Date(until.getTime() - parsed.seconds * 1000);
      const trends = await historyTrends(desired.storage.path, since, opts.check);
      if (opts.check && !trends.length) {
        const { checkSpec, similarChecks } = await import('../health/checks.js');
        if (!checkSpec(opts.check) && !checkSpec(opts.check.split('.').slice(0, 2).join('.'))) {
          const similar = similarChecks(opts.check);
          throw new JarvisError('USAGE', `--check: there is no check named ${opts.check}`, similar.length ? { hint: `did you mean ${similar.join(', ')}?` } : {});
        }
      }
      const { historyJson, renderHistoryText } = await import('../render/health.js');
      if (options.json || opts.format === 'json') printJson(historyJson(trends, since, until));
      else print(renderHistoryText(trends, since, until));
    });
}
