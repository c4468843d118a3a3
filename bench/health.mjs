// Benchmark (issue 9): monitoring overhead and the time of one health check.
//  1. pgbench select-only, 2 clients, SECONDS s: TPS without and with `jarvis-db daemon` checking
//     every 5 s (all services, history, alerts) against the same sandbox servers in the same run,
//     alternated PAIRS times (A B, B A, ...) because the machine is shared; the ratio of the means.
//  2. `jarvis-db health check` of every service from the CLI (a new process each time) and the
//     check itself (its own measure, durationMs), median of 15.
//  2b. The same comparison made robust to a shared machine: one long pgbench -P 1 while the
//     daemon is thawed and frozen in alternate 10 s blocks; the TPS of each thawed block against
//     the mean of its two frozen neighbours (slow drifts of the machine's load cancel out).
//  3. The CPU the checks cost, counted rather than inferred from noisy TPS: the servers' processes
//     (from /proc, reaped children included) and the daemon's, over SECONDS s of an idle
//     system with and without the daemon; as a share of the machine's CPUs.
// Usage: node bench/health.mjs [PAIRS=3] [SECONDS=30] [BLOCKS=24]   (a built dist/: npx tsc)
//        JARVIS_BENCH_HEALTH_INTERVAL=1h node bench/health.mjs 0 10 24   (the control: no checks)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism, tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';

const PAIRS = Number(process.argv[2] ?? 3);
const SECONDS = Number(process.argv[3] ?? 30);
const BLOCKS = Number(process.argv[4] ?? 24);
const BLOCK_S = 10;
// A control run: JARVIS_BENCH_HEALTH_INTERVAL=1h keeps the daemon (frozen and thawed the same way) from
// checking at all, which measures what the freeze/thaw method itself does to pgbench.
const INTERVAL = process.env.JARVIS_BENCH_HEALTH_INTERVAL ?? '5s';
const ROOT = new URL('..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/jarvis-db.js');
const sandbox = await import(new URL('../dist/sandbox/index.js', import.meta.url).href);
const { libpqEnv } = await import(new URL('../dist/services/postgres.js', import.meta.url).href);

const dir = await mkdtemp(join(tmpdir(), 'jarvis-bench-health-'));
await chmod(dir, 0o755);
let state;
const cleanup = async () => { await sandbox.stopSandbox(dir).catch(() => undefined); await rm(dir, { recursive: true, force: true }); };
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds of a process and its descendants, live ones and the reaped ones it has waited for. */
function treeCpuSeconds(pid) {
  const stats = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(entry), { ppid: Number(fields[1]), own: Number(fields[11]) + Number(fields[12]), reaped: Number(fields[13]) + Number(fields[14]) });
    } catch { /* gone */ }
  }
  let total = 0;
  const visit = (p, root) => {
    const s = stats.get(p);
    if (!s) return;
    total += s.own + (root ? s.reaped : 0);
    for (const [child, c] of stats) if (c.ppid === p) visit(child, false);
  };
  // Reaped time of the root only: a live child's reaped time is counted when the root reaps it.
  visit(pid, true);
  return total / TICKS;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

try {
  state = await sandbox.startSandbox({ dir, services: ['postgres', 'redis', 'chroma'], ownerPid: process.pid });
  const env = { ...process.env, ...sandbox.sandboxEnv(state) };
  const pgEnv = { ...process.env, ...libpqEnv(state.postgres.url) };
  const pgbench = join(state.postgres.binDir, 'pgbench');
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: bench', 'services:',
    '  postgres: { url: "${JARVIS_PG_URL}" }', '  redis: { url: "${JARVIS_REDIS_URL}" }',
    `  chroma: { url: "\${JARVIS_CHROMA_URL}", path: ${JSON.stringify(state.chroma.dataDir)} }`,
    'storage: { path: ./backups }',
    'backups:', '  - { name: nightly, service: postgres, cron: "0 3 * * *", keep: { last: 3 } }',
    `health: { interval: ${INTERVAL} }`, '',
  ].join('\n'));
  // Something for every probe to look at: pgbench tables, Redis keys, a Chroma collection, one real backup.
  const init = spawnSync(pgbench, ['-i', '-q', '-s', '10'], { env: pgEnv, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
  const { connectRedis } = await import(new URL('../dist/services/redis.js', import.meta.url).href);
  const redis = await connectRedis(state.redis.url);
  for (let i = 0; i < 1000; i++) await redis.set(`session:${i}`, 'x'.repeat(200));
  redis.disconnect();
  const { ChromaClient } = await import('chromadb');
  const u = new URL(state.chroma.url);
  const chroma = new ChromaClient({ host: u.hostname, port: Number(u.port) });
  const coll = await chroma.createCollection({ name: 'memories', embeddingFunction: null });
  await coll.add({ ids: Array.from({ length: 500 }, (_, i) => `m${i}`), embeddings: Array.from({ length: 500 }, (_, i) => Array.from({ length: 16 }, (_, j) => Math.sin(i + j))) });
  const backup = spawnSync(process.execPath, [BIN, '-c', config, 'backup', 'create', '--service', 'postgres'], { env, encoding: 'utf8' });
  if (backup.status !== 0) throw new Error(`backup create failed: ${backup.stderr}`);

  const runPgbench = (seconds) => {
    const r = spawnSync(pgbench, ['-S', '-c', '2', '-j', '2', '-T', String(seconds), '-n'], { env: pgEnv, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`pgbench failed: ${r.stderr}`);
    const m = /tps = ([0-9.]+) \(without initial connection time\)/.exec(r.stdout);
    return Number(m[1]);
  };
  /**
   * One `jarvis-db daemon` (checks every 5 s) for the whole run, warmed up first as a daemon that
   * has run for a while is; between the measured windows it is frozen (SIGSTOP), so the
   * "without" runs see no checks at all, and thawed (SIGCONT) for the "with" runs.
   */
  const port = await sandbox.freePort();
  const daemon = spawn(process.execPath, [BIN, '-c', config, 'daemon', '--listen', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const checks = [];
  let buffered = '';
  daemon.stdout.on('data', (c) => {
    buffered += c;
    const parts = buffered.split('\n');
    buffered = parts.pop();
    for (const p of parts) {
      const line = JSON.parse(p);
      if (line.event === 'health_checked') checks.push(line.durationMs);
    }
  });
  const daemonExit = new Promise((r) => daemon.on('exit', r));
  console.log('warming the daemon up (30 s of checks every 5 s)');
  await new Promise((r) => setTimeout(r, 30_000));
  if (daemon.exitCode !== null) throw new Error('the daemon exited');
  daemon.kill('SIGSTOP');
  /** Runs `during` with the daemon thawed; its checks and CPU in that window. */
  const thawed = async (during) => {
    const before = checks.length;
    const cpu0 = treeCpuSeconds(daemon.pid);
    daemon.kill('SIGCONT');
    const value = await during();
    daemon.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 100));
    return { value, checks: checks.length - before, durationsMs: checks.slice(before), cpuMs: (treeCpuSeconds(daemon.pid) - cpu0) * 1000 };
  };
  const withChecks = async (seconds) => {
    const r = await thawed(async () => runPgbench(seconds));
    return { tps: r.value, ...r };
  };

  console.log(`warming up (pgbench -S 10 s); load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  runPgbench(10);
  const baseline = [];
  const monitored = [];
  for (let i = 0; i < PAIRS; i++) {
    const order = i % 2 === 0 ? ['without', 'with'] : ['with', 'without'];
    for (const which of order) {
      if (which === 'without') {
        const tps = runPgbench(SECONDS);
        baseline.push(tps);
        console.log(`pair ${i + 1}: pgbench -S -c 2 -T ${SECONDS}, no health checks:        ${tps.toFixed(0)} TPS`);
      } else {
        const r = await withChecks(SECONDS);
        monitored.push(r);
        console.log(`pair ${i + 1}: pgbench -S -c 2 -T ${SECONDS}, health check every 5 s:  ${r.tps.toFixed(0)} TPS (${r.checks} checks, median ${median(r.durationsMs)} ms, daemon CPU ${r.cpuMs.toFixed(0)} ms)`);
      }
    }
  }
  // 2b: alternate thawed / frozen blocks inside one pgbench run, per-second TPS from -P 1.
  const perSecond = [];
  const bench = spawn(pgbench, ['-S', '-c', '2', '-j', '2', '-T', String(BLOCKS * BLOCK_S + 2), '-n', '-P', '1'], { env: pgEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let progress = '';
  bench.stderr.on('data', (c) => {
    progress += c;
    const parts = progress.split('\n');
    progress = parts.pop();
    for (const line of parts) {
      const m = /^progress: ([0-9.]+) s, ([0-9.]+) tps/.exec(line);
      if (m) perSecond.push({ at: Number(m[1]), tps: Number(m[2]) });
    }
  });
  const benchExit = new Promise((r) => bench.on('exit', r));
  const t0 = Date.now();
  const blockState = [];
  for (let b = 0; b < BLOCKS; b++) {
    const thaw = b % 2 === 1;
    blockState.push(thaw);
    if (thaw) daemon.kill('SIGCONT');
    const end = t0 + (b + 1) * BLOCK_S * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, end - Date.now())));
    if (thaw) daemon.kill('SIGSTOP');
  }
  await benchExit;
  // Seconds 2..9 of each block: the first second may straddle the switch, pgbench's clock starts slightly later than ours.
  const blockTps = blockState.map((_, b) => mean(perSecond.filter((p) => p.at > b * BLOCK_S + 1 && p.at <= (b + 1) * BLOCK_S - 0.5).map((p) => p.tps)));
  const blockRatios = [];
  for (let b = 1; b < BLOCKS - 1; b += 2) blockRatios.push(blockTps[b] / ((blockTps[b - 1] + blockTps[b + 1]) / 2));
  const meanRatio = mean(blockRatios);
  const sd = Math.sqrt(blockRatios.reduce((a, r) => a + (r - meanRatio) ** 2, 0) / Math.max(1, blockRatios.length - 1));
  const ci = 1.96 * sd / Math.sqrt(blockRatios.length);

  const base = mean(baseline);
  const mon = mean(monitored.map((m) => m.tps));
  const cpuShare = mean(monitored.map((m) => m.cpuMs / (SECONDS * 1000 * 2)));

  const servers = () => ['postgres', 'redis', 'chroma'].reduce((n, s) => n + treeCpuSeconds(state[s].pid), 0);
  const idle = async (withDaemon) => {
    const wait = () => new Promise((r) => setTimeout(r, SECONDS * 1000));
    const start = servers();
    const r = withDaemon ? await thawed(wait) : (await wait(), { cpuMs: 0 });
    return { serverCpu: servers() - start, checkerCpu: r.cpuMs / 1000 };
  };
  const quiet = await idle(false);
  const watched = await idle(true);
  const cores = availableParallelism();
  const costShare = (watched.serverCpu + watched.checkerCpu - quiet.serverCpu) / (SECONDS * cores);

  daemon.kill('SIGCONT');
  daemon.kill('SIGTERM');
  if ((await daemonExit) !== 0) throw new Error('the daemon did not exit 0 on SIGTERM');

  const cliWall = [];
  const checkMs = [];
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [BIN, '-c', config, 'health', 'check', '--format', 'json'], { env, encoding: 'utf8' });
    cliWall.push(performance.now() - t0);
    if (r.status === null || r.status > 3) throw new Error(`health check failed: ${r.stderr}`);
    checkMs.push(JSON.parse(r.stdout).durationMs);
  }
  const { loadConfig } = await import(new URL('../dist/config/load.js', import.meta.url).href);
  const { runHealthCheck } = await import(new URL('../dist/health/check.js', import.meta.url).href);
  Object.assign(process.env, sandbox.sandboxEnv(state));
  const desired = await loadConfig(config);
  const warm = [];
  for (let i = 0; i < 15; i++) warm.push((await runHealthCheck(desired)).observation.durationMs);

  console.log('');
  if (PAIRS > 0) {
    console.log(`pgbench TPS, mean of ${PAIRS}: without ${base.toFixed(0)}, with checks every ${INTERVAL} ${mon.toFixed(0)}`);
    console.log(`  ratio with/without ${(mon / base).toFixed(4)} (difference ${(((base - mon) / base) * 100).toFixed(2)}%, target < 1%)`);
    console.log(`  runs without: ${baseline.map((x) => x.toFixed(0)).join(', ')}; with: ${monitored.map((m) => m.tps.toFixed(0)).join(', ')}`);
    console.log(`  CPU used by the daemon: ${(cpuShare * 100).toFixed(3)}% of the machine's 2 cores`);
  }
  console.log(`interleaved, one pgbench of ${BLOCKS * BLOCK_S} s, ${BLOCK_S} s blocks: thawed-block TPS / neighbours' mean = ${meanRatio.toFixed(4)} ± ${ci.toFixed(4)} (95%, ${blockRatios.length} blocks); median ${median(blockRatios).toFixed(4)}`);
  console.log(`  difference ${((1 - meanRatio) * 100).toFixed(2)}% ± ${(ci * 100).toFixed(2)}% (target < 1%); block TPS ${blockTps.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`CPU cost of checking every 5 s, counted over ${SECONDS} s idle: servers ${quiet.serverCpu.toFixed(2)} s without, ${watched.serverCpu.toFixed(2)} s with; daemon ${watched.checkerCpu.toFixed(2)} s`);
  console.log(`  = ${(costShare * 100).toFixed(3)}% of the machine's ${cores} CPUs (target < 1%)`);
  console.log(`one health check of every service: median ${median(checkMs)} ms as the check measures itself (cold process), ${median(warm)} ms in a running process (daemon)`);
  console.log(`  \`jarvis-db health check\` wall time, new process each time (node start, config, check): median ${median(cliWall).toFixed(0)} ms`);
} finally {
  await cleanup();
}
