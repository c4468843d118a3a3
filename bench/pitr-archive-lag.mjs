// Benchmark (issue 16): the archive lag of `jarvis-db wal stream` under pgbench at full speed.
//  For each run: a fresh sandbox PostgreSQL (never the machine's 5432), `pgbench -i -s SCALE`, a
//  physical base backup (`jarvis-db backup create`), then `jarvis-db wal stream` (the real CLI, in
//  the background) while `pgbench -c 2 -j 2 -T SECONDS` (TPC-B, full speed) writes. A sampler reads
//  the server's WAL position every 100 ms: a segment is complete on the server when the position
//  first passes its end; it is archived when the stream logs `archived NAME` (the push into the
//  repository returned). The lag of a segment is the difference. After pgbench: pg_switch_wal, the
//  stream catches up and is stopped, and the chain is checked (`wal status --json`: no gap, every
//  segment from the first archived to the last the server completed is there).
//  The same pgbench without the stream, same data, same run: the TPS ratio (the stream's cost);
//  each pgbench starts right after a CHECKPOINT.
// Targets: archive lag p99 < 10 s, no segment lost.
// Usage: npm run build && node bench/pitr-archive-lag.mjs [RUNS=3] [SECONDS=60] [SCALE=10]
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const RUNS = Number(process.argv[2] ?? 3);
const SECONDS = Number(process.argv[3] ?? 60);
const SCALE = Number(process.argv[4] ?? 10);
const ROOT = new URL('..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/jarvis-db.js');
const sandbox = await import(new URL('../dist/sandbox/index.js', import.meta.url).href);
const { libpqEnv, connectPostgres } = await import(new URL('../dist/services/postgres.js', import.meta.url).href);
const { parseLsn, segmentOfLsn, segmentNumber, segmentName } = await import(new URL('../dist/wal/segments.js', import.meta.url).href);

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};

function cli(args, env) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`jarvis-db ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

// A checkpoint first, so that both pgbench runs start as far from one (the full-page images after
// a checkpoint make more WAL per transaction, and the base backup's --checkpoint=fast is one).
async function pgbench(bin, env, client) {
  await client.query('CHECKPOINT');
  // Not spawnSync: the sampler and the stream's log are read while pgbench runs.
  const child = spawn(bin, ['-c', '2', '-j', '2', '-T', String(SECONDS), '-n'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const code = await new Promise((r) => child.once('close', r));
  if (code !== 0) throw new Error(`pgbench failed: ${err}`);
  return Number(/tps = ([\d.]+)/.exec(out)?.[1]);
}

async function run(index) {
  const dir = await mkdtemp(join(tmpdir(), 'jarvis-bench-walstream-'));
  await chmod(dir, 0o755);
  let stream = null;
  try {
    const state = await sandbox.startSandbox({ dir, services: ['postgres'], ownerPid: process.pid });
    const url = state.postgres.url;
    const pgEnv = { ...process.env, ...libpqEnv(url) };
    const bench = join(state.postgres.binDir, 'pgbench');
    const config = join(dir, 'jarvis-db.yaml');
    await writeFile(config, [
      'version: 1', 'services:', '  postgres:', '    url: "${JARVIS_PG_URL}"', '    pitr: { enabled: true, slot: jarvis_db, rpo: 1m }',
      'storage:', `  path: ${join(dir, 'storage')}`,
      'backups:', '  - { name: base, service: postgres, method: physical, cron: "0 3 * * *", keep: { last: 3 } }', '',
    ].join('\n'));
    const env = { ...process.env, JARVIS_PG_URL: url, JARVIS_DB_CONFIG: config };
    const init = spawnSync(bench, ['-i', '-q', '-s', String(SCALE)], { env: pgEnv, encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    const client = await connectPostgres(url, { applicationName: 'bench sampler' });
    const segmentBytes = Number((await client.query(`SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'`)).rows[0].setting);

    // The same pgbench without the stream first: the baseline TPS.
    const baseTps = await pgbench(bench, pgEnv, client);

    // The stream, then a base backup (the window's start; the slot holds the WAL from the stream's start).
    const archivedAt = new Map();
    stream = spawn(process.execPath, [BIN, 'wal', 'stream'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    stream.stderr.on('data', (d) => {
      const now = Date.now();
      log = (log + d.toString('utf8')).slice(-20000);
      for (const m of d.toString('utf8').matchAll(/archived ([0-9A-F]{24}) /g)) if (!archivedAt.has(m[1])) archivedAt.set(m[1], now);
    });
    for (let i = 0; !/pg_receivewal on slot/.test(log); i++) {
      if (i > 200) throw new Error(`wal stream did not start: ${log}`);
      await sleep(100);
    }
    cli(['backup', 'create', '--service', 'postgres'], env);
    const startLsn = parseLsn((await client.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);

    // The sampler: when the server's write position first passed each segment's end.
    const completedAt = new Map();
    let sampling = true;
    let lastSegNo = BigInt(startLsn) / BigInt(segmentBytes);
    const sampler = (async () => {
      while (sampling) {
        const lsn = parseLsn((await client.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
        const now = Date.now();
        const segNo = lsn / BigInt(segmentBytes);
        for (let n = lastSegNo; n < segNo; n++) { const name = segmentName(1, n, segmentBytes); if (!completedAt.has(name)) completedAt.set(name, now); }
        lastSegNo = segNo;
        await sleep(100);
      }
    })();
    const loadBefore = load();
    const streamTps = await pgbench(bench, pgEnv, client);
    const loadAfter = load();
    // The segment being written is completed (as more WAL would), and archived.
    const last = (await client.query('SELECT pg_walfile_name(pg_switch_wal()) AS n')).rows[0].n;
    for (let i = 0; !archivedAt.has(last); i++) {
      if (i > 600) throw new Error(`${last} was not archived within 60 s: ${log.slice(-2000)}`);
      await sleep(100);
    }
    sampling = false;
    await sampler;
    if (!completedAt.has(last)) completedAt.set(last, Date.now());
    stream.kill('SIGTERM');
    await new Promise((r) => stream.once('close', r));
    stream = null;

    // No segment lost: the chain in the repository, from the first segment of the stream to the last.
    const status = JSON.parse(cli(['wal', 'status', '--json'], env));
    const tl = status.repositories[0].timelines.find((t) => t.timeline === 1);
    const first = segmentOfLsn(1, startLsn, segmentBytes);
    const missing = [];
    for (let n = segmentNumber(first, segmentBytes); n <= segmentNumber(last, segmentBytes); n++) {
      const name = segmentName(1, n, segmentBytes);
      if (!archivedAt.has(name)) missing.push(name);
    }
    const lags = [];
    for (const [name, at] of completedAt) if (archivedAt.has(name) && name >= first) lags.push(Math.max(0, (archivedAt.get(name) - at) / 1000));
    await client.end();
    return {
      index, segments: lags.length, walMb: (lags.length * segmentBytes) / 1e6, baseTps, streamTps,
      p50: percentile(lags, 50), p95: percentile(lags, 95), p99: percentile(lags, 99), max: Math.max(...lags),
      gaps: tl.gaps.length, window: Boolean(tl.window), missing, loadBefore, loadAfter,
    };
  } finally {
    if (stream) { stream.kill('SIGTERM'); await new Promise((r) => stream.once('close', r)); }
    await sandbox.stopSandbox(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(`== pitr-archive-lag, ${new Date().toISOString().slice(0, 10)}, ${availableParallelism()} cores, pgbench -c 2 -j 2 -T ${SECONDS} at scale ${SCALE}, ${RUNS} runs ==`);
const results = [];
for (let i = 1; i <= RUNS; i++) {
  const r = await run(i);
  results.push(r);
  console.log(`run ${i}: ${r.segments} segments (${r.walMb.toFixed(0)} MB of WAL) archived; lag p50 ${r.p50.toFixed(2)} s, p95 ${r.p95.toFixed(2)} s, p99 ${r.p99.toFixed(2)} s, max ${r.max.toFixed(2)} s; `
    + `missing ${r.missing.length}${r.missing.length ? ` (${r.missing.slice(0, 3).join(', ')})` : ''}, gaps in wal status ${r.gaps}, window ${r.window ? 'yes' : 'NO'}; `
    + `pgbench ${r.baseTps.toFixed(0)} tps alone, ${r.streamTps.toFixed(0)} tps with the stream (ratio ${(r.streamTps / r.baseTps).toFixed(3)}); load ${r.loadBefore} → ${r.loadAfter}`);
}
const worst = Math.max(...results.map((r) => r.p99));
const lost = results.reduce((n, r) => n + r.missing.length + r.gaps, 0);
console.log(`archive lag p99, worst run: ${worst.toFixed(2)} s (target < 10 s: ${worst < 10 ? 'met' : 'MISSED'}); segments lost: ${lost} (target 0: ${lost === 0 ? 'met' : 'MISSED'})`);
