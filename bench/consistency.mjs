// Benchmark (issue 19): the health check `consistency` on the seeded JARVIS data, through the
// real CLI (a new process each run: `jarvis-db health check --service consistency`), on a
// sandbox of its own. `init --seed --scale SCALE` fills PostgreSQL, Chroma (memories: 26,000
// records at scale 1) and Redis (the live sessions and cache entries); then RUNS checks, each
// timed and its peak RSS read from /usr/bin/time -v. Also `verify --point` of a point taken then.
// Targets: under 5 s and under 200 MB at scale 1.
// Usage: node bench/consistency.mjs [SCALE=1] [RUNS=5]   (a built dist/: npm run build)
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const SCALE = process.argv[2] ?? '1';
const RUNS = Number(process.argv[3] ?? 5);
const ROOT = new URL('..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/jarvis-db.js');
const sandbox = await import(new URL('../dist/sandbox/index.js', import.meta.url).href);

const dir = await mkdtemp(join(tmpdir(), 'jarvis-bench-consistency-'));
await chmod(dir, 0o755);
const cleanup = async () => { await sandbox.stopSandbox(dir).catch(() => undefined); await rm(dir, { recursive: true, force: true }); };
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

/** One CLI run under /usr/bin/time -v: wall seconds, peak RSS in MB, exit code, stdout. */
async function timed(args, env) {
  const report = join(dir, 'time.txt');
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', '-o', report, process.execPath, BIN, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t0) / 1000;
  const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(await readFile(report, 'utf8'))?.[1] ?? NaN);
  return { seconds, mb: kb / 1024, code: r.status, stdout: r.stdout, stderr: r.stderr };
}

try {
  const state = await sandbox.startSandbox({ dir, services: ['postgres', 'redis', 'chroma'], ownerPid: process.pid });
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: bench', 'services:',
    '  postgres: { url: "${JARVIS_PG_URL}" }', '  redis: { url: "${JARVIS_REDIS_URL}" }', '  chroma: { url: "${JARVIS_CHROMA_URL}" }',
    'storage: { path: ./backups }', `schema: { migrations: ${JSON.stringify(join(ROOT, 'migrations'))} }`,
    'backups:',
    '  - { name: pg, service: postgres, cron: "0 3 * * *", keep: { last: 2 } }',
    '  - { name: rd, service: redis, method: rdb, cron: "0 3 * * *", keep: { last: 2 } }',
    '  - { name: ch, service: chroma, cron: "0 3 * * *", keep: { last: 2 } }',
    'links:',
    '  - { name: memory-vectors, postgres: { table: memory, key: id, user: user_id }, chroma: { collection: memories, metadata: memory_id } }',
    '  - { name: user-sessions, postgres: { table: sessions, key: id, user: user_id, until: expires_at }, redis: { pattern: "session:{key}" } }', '',
  ].join('\n'));
  const env = { ...process.env, ...sandbox.sandboxEnv(state), JARVIS_DB_CONFIG: config, NO_COLOR: '1' };

  const seed = await timed(['--json', 'init', '--seed', '--scale', SCALE], env);
  if (seed.code !== 0) throw new Error(`init --seed failed: ${seed.stderr}`);
  const stores = JSON.parse(seed.stdout).seed.stores;
  console.log(`init --seed --scale ${SCALE}: ${seed.seconds.toFixed(1)} s, peak ${seed.mb.toFixed(0)} MB; ${JSON.stringify(stores)}`);

  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await timed(['--json', 'health', 'check', '--service', 'consistency'], env);
    const report = JSON.parse(r.stdout);
    const compared = report.samples.filter((s) => s.check === 'consistency.keys_compared').map((s) => `${s.labels.link}: ${s.detail}`);
    const orphans = report.samples.filter((s) => s.check === 'consistency.orphans').reduce((n, s) => n + (s.value ?? 0), 0);
    runs.push({ seconds: r.seconds, mb: r.mb, checkMs: report.durationMs, status: report.status, orphans, compared });
    console.log(`check ${i + 1}: ${r.seconds.toFixed(2)} s wall (the check itself ${report.durationMs} ms), peak ${r.mb.toFixed(1)} MB, ${report.status}, ${orphans} orphans; ${compared.join('; ')}`);
  }

  const created = await timed(['--json', 'backup', 'create', '--service', 'all'], env);
  if (created.code !== 0) throw new Error(`backup create --service all failed: ${created.stderr}`);
  const point = JSON.parse(created.stdout).points[0].id;
  const verify = await timed(['verify', '--point', point], env);
  console.log(`verify --point: ${verify.seconds.toFixed(2)} s, peak ${verify.mb.toFixed(1)} MB, exit ${verify.code}\n${verify.stdout}`);

  const wall = median(runs.map((r) => r.seconds));
  const peak = Math.max(...runs.map((r) => r.mb));
  console.log(JSON.stringify({
    scale: Number(SCALE), runs: RUNS, medianWallSeconds: Number(wall.toFixed(3)), maxPeakMb: Number(peak.toFixed(1)),
    medianCheckMs: median(runs.map((r) => r.checkMs)), verifySeconds: Number(verify.seconds.toFixed(3)), verifyPeakMb: Number(verify.mb.toFixed(1)),
    targets: { under5s: wall < 5, under200MB: peak < 200 }, loadavg: loadavg().map((x) => Number(x.toFixed(2))),
  }));
} finally {
  await cleanup();
}
