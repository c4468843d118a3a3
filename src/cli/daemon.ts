/**
 * `jarvis-db daemon [--listen 127.0.0.1:9187]`: the service. It wires the engine's apply, the
 * health check and the config loader into src/daemon, turns SIGHUP into a config reload and
 * SIGTERM / SIGINT into a clean stop (exit 0). A second SIGTERM exits at once (exit 1), after
 * removing what the running action had staged (a backup's `.tmp-…` work dir).
 */
import type { Command } from 'commander';
import { randomUUID } from 'node:crypto';
import { globalOptions, loadDesired } from './common.js';

export function define(program: Command): void {
  program
    .command('daemon')
    .description('Run the schedules (apply what is due), health checks every health.interval, the status page (/), /metrics and /healthz; JSON logs on stdout')
    .option('--listen <host:port>', 'where the status page (/), /metrics and /healthz are served', '127.0.0.1:9187')
    .option('--listen-token-env <name>', 'the variable holding the status page\'s token (required for the page off loopback): Authorization: Bearer TOKEN, or open /?token=TOKEN once')
    .option('--lock-timeout <duration>', 'how long an apply waits for another one to finish', '60s')
    .action(async (opts: { listen: string; lockTimeout: string; listenTokenEnv?: string }, cmd: Command) => {
      const options = globalOptions(cmd);
      const { JarvisError } = await import('../errors.js');
      const listen = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(opts.listen);
      if (!listen || Number(listen[2]) > 65535) throw new JarvisError('USAGE', `--listen: "${opts.listen}" is not host:port (such as 127.0.0.1:9187)`);
      const { checkDuration } = await import('../config/durations.js');
      const lockTimeout = checkDuration(opts.lockTimeout);
      if (typeof lockTimeout === 'string') throw new JarvisError('USAGE', `--lock-timeout: ${lockTimeout}`);
      const host = listen[1]!.replace(/^\[|\]$/g, '');
      const token = opts.listenTokenEnv === undefined ? undefined : process.env[opts.listenTokenEnv];
      if (opts.listenTokenEnv !== undefined && !token) throw new JarvisError('USAGE', `--listen-token-env ${opts.listenTokenEnv}: the variable is not set or empty`, { hint: 'export it with the token the status page is to need' });
      const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
      const desired = await loadDesired(options);
      const { Daemon } = await import('../daemon/daemon.js');
      const { daemonLogger } = await import('../daemon/logger.js');
      const { apply, makePlan } = await import('../engine/index.js');
      const { runHealthCheck } = await import('../health/check.js');
      const { HealthConnections } = await import('../health/connections.js');
      const { removeStagedSync } = await import('../storage/staging.js');
      const connections = new HealthConnections();
      const logger = daemonLogger(undefined, options.debug ? 'debug' : 'info');
      const daemon = new Daemon({
        desired,
        host,
        port: Number(listen[2]),
        // Off loopback without a token, the page stays closed (401); /metrics and /healthz stay open.
        ...(token ? { token } : loopback ? {} : { token: randomUUID() }),
        logger,
        loadConfig: () => loadDesired(options),
        runHealth: (signal, current) => runHealthCheck(current, { signal, connections }),
        runPlan: async (current) => (await makePlan({ desired: current })).plan,
        runApply: async ({ signal, hooks, desired }) => {
          const result = await apply({
            desired, signal, lockTimeoutMs: lockTimeout.seconds * 1000,
            reporter: {
              runStarted: hooks.runStarted,
              waitingForLock: (owner) => hooks.waitingForLock(owner ? `pid ${owner.pid} on ${owner.host}, run ${owner.runId}` : 'an apply whose owner is not recorded'),
              waitingForRepositoryLock: (repository, holder) => hooks.waitingForLock(`repository ${repository}: ${holder ? `pid ${holder.pid} on ${holder.host}, run ${holder.runId}` : 'another apply'}`),
              actionStarted: (action) => { hooks.actionStarted(action); },
              actionFinished: (_action, r) => hooks.actionFinished(r),
            },
          });
          return { runId: result.runId, status: result.status, durationMs: result.durationMs, results: result.results, errors: result.errors };
        },
      });
      // Installed before start: a SIGHUP with no handler would kill the process (exit 129).
      const onHangup = () => { void daemon.reload('SIGHUP'); };
      process.on('SIGHUP', onHangup);
      try {
        await daemon.start();
        if (!loopback && !token) logger.warn({ event: 'status_page_closed', listen: opts.listen }, `the status page on ${opts.listen} is not loopback and has no token: it answers 401; pass --listen-token-env NAME to open it`);
        else logger.info({ event: 'status_page', url: `http://${opts.listen}/`, token: token ? 'required' : 'none (loopback)' }, `status page at http://${opts.listen}/${token ? ' (token required)' : ''}`);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE' || code === 'EACCES') {
          throw new JarvisError('USAGE', `cannot listen on ${opts.listen}: ${code === 'EADDRINUSE' ? 'the address is in use' : 'permission denied'}`, { hint: 'choose another with --listen HOST:PORT' });
        }
        throw e;
      }
      await new Promise<void>((resolve) => {
        let stopping = false;
        const onSignal = (signal: NodeJS.Signals) => {
          if (stopping) {
            // No turn of the event loop is left after this: the staged paths go synchronously.
            const { removed, failed } = removeStagedSync();
            logger.warn({ event: 'daemon_forced', signal, removed, failed }, `${signal} again: exiting without waiting${removed.length ? ` (removed ${removed.join(', ')})` : ''}`);
            logger.flush();
            process.exit(1);
          }
          stopping = true;
          void daemon.stop(signal).then(() => connections.close()).then(resolve);
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      process.off('SIGHUP', onHangup);
      logger.flush();
      process.exitCode = 0;
    });
}
