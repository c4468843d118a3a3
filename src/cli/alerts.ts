import type { Command } from 'commander';
import { basename } from 'node:path';
import { globalOptions, loadDesired, print } from './common.js';

export function define(program: Command): void {
  const alerts = program
    .command('alerts')
    .description('Generate Prometheus alert rules and the Grafana dashboard from the health checks and the config');

  alerts
    .command('rules')
    .description('Print a Prometheus rules file: one alert per check with a threshold, severity warning and critical, the thresholds of the config')
    .action(async (_opts: unknown, cmd: Command) => {
      const desired = await loadDesired(globalOptions(cmd));
      const { alertRules } = await import('../health/rules.js');
      const { renderAlertRules } = await import('../render/alert-rules.js');
      print(renderAlertRules(alertRules(desired), basename(desired.configFile)).trimEnd());
    });

  alerts
    .command('dashboard')
    .description('Print the Grafana dashboard (JSON, import it and pick the Prometheus data source): every check, threshold lines from the config')
    .action(async (_opts: unknown, cmd: Command) => {
      const desired = await loadDesired(globalOptions(cmd));
      const { grafanaDashboard } = await import('../health/dashboard.js');
      print(JSON.stringify(grafanaDashboard(desired), null, 2));
    });
}
