#!/usr/bin/env node
// Benchmark (issues 3 and 14): `jarvis-db plan` of the root jarvis-db.yaml, run as a user runs it
// (`node bin/jarvis-db.js plan`, a fresh process, config parsing included), on a database seeded
// by `jarvis-db init --seed --scale SCALE`. Target: under 500 ms whole process (issue 14).
//
// One command:   npm run build && node bench/plan.mjs [PAIRS=7] [SCALE=0.5] [BACKUPS_PER_SCHEDULE=0]
//
// It starts its own sandbox (PostgreSQL, Redis, Chroma; never the machine's shared services),
// copies the root config with its policies and migrations into a temporary directory (storage
// there too), seeds through the real CLI, optionally publishes BACKUPS_PER_SCHEDULE backups per
// schedule into the catalog, then times PAIRS rounds, interleaved, of whole processes:
// `node -e 0` (the floor of any Node CLI), `jarvis-db --version` (our start-up) and `jarvis-db
// plan`. It prints the medians, the spread (min–max) and plan / `node -e 0`, and, for reading,
// the phases of one plan inside a process (`--split`, the same functions the CLI calls).
// JARVIS_BENCH_COMPARE=/other/checkout/bin/jarvis-db.js adds that build's plan to every round
// (a before/after in the same run; that checkout needs its own built dist/).
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, rm, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/jarvis-db.js');
const dist = (p) => new URL(`../dist/${p}`, import.meta.url).href;

// Child mode (informative only): the phases of one plan in a fresh process, as JSON.
if (process.argv[2] === '--split') {
  const t0 = performance.now();
  const { loadConfig } = await import(dist('config/load.js'));
  const desired = await loadConfig(process.argv[3]);
  const t1 = performance.now();
  const { defaultParts } = await import(dist('engine/registry.js'));
  const { makePlan } = await import(dist('engine/index.js'));
  const { renderPlanText } = await import(dist('render/text.js'));
  const parts = await defaultParts();
  const t2 = performance.now();
  const { plan, timingsMs } = await makePlan({ desired, parts });
  const text = renderPlanText(plan);
  const t3 = performance.now();
  process.stdout.write(JSON.stringify({ config: t1 - t0, engineImport: t2 - t1, run: t3 - t2, timingsMs, actions: plan.actions.length, errors: plan.errors, bytes: text.length }) + '\n');
  process.exit(0);
}

const pairs = Number(process.argv[2] ?? 7);
const compareBin = process.env.JARVIS_BENCH_COMPARE;
const scale = process.argv[3] ?? '0.5';
const perSchedule = Number(process.argv[4] ?? 0);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const spread = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

const { startSandbox, stopSandbox, sandboxEnv } = await import(dist('sandbox/index.js'));

const work = await mkdtemp(join(tmpdir(), 'jarvis-bench-plan-'));
await chmod(work, 0o755);
const sandboxDir = join(work, 'sandbox');
try {
  process.stderr.write('starting the sandbox (postgres, redis, chroma)...\n');
  const state = await startSandbox({ dir: sandboxDir, services: ['postgres', 'redis', 'chroma'], ownerPid: process.pid });
  const project = join(work, 'project');
  const env = { ...process.env, ...sandboxEnv(state), JARVIS_STORAGE: join(project, 'backups'), NO_COLOR: '1' };
  delete env.JARVIS_DB_TEST_MODULE;
  delete env.JARVIS_DB_CONFIG;
  await cp(join(ROOT, 'jarvis-db.yaml'), join(project, 'jarvis-db.yaml'));
  for (const dir of ['policies', 'migrations']) if (existsSync(join(ROOT, dir))) await cp(join(ROOT, dir), join(project, dir), { recursive: true });
  const config = join(project, 'jarvis-db.yaml');
  const cli = (args) => spawnSync(process.execPath, [BIN, ...args], { env, cwd: project, encoding: 'utf8' });

  process.stderr.write(`jarvis-db init --seed --scale ${scale}...\n`);
  const init = cli(['init', '--seed', '--scale', scale]);
  if (init.status !== 0) throw new Error(`init --seed failed: ${init.stderr}`);
  process.stderr.write(init.stdout.split('\n').filter((l) => l.includes('seeded')).join('\n') + '\n');

  if (perSchedule > 0) {
    const { loadConfig } = await import(dist('config/load.js'));
    const { BackupWriter } = await import(dist('backup/storage.js'));
    const desired = await loadConfig(config, env);
    process.stderr.write(`publishing ${perSchedule} backups for each of ${desired.backups.length} schedules...\n`);
    const now = Date.now();
    for (const schedule of desired.backups) {
      for (let i = 0; i < perSchedule; i++) {
        // One an hour back from an hour ago: the keep rules have something to prune.
        const writer = await BackupWriter.begin({ storagePath: desired.storage.path, service: schedule.service, schedule: schedule.name, now: new Date(now - (i + 1) * 3_600_000) });
        await writer.writeStream('data.bin', Readable.from([Buffer.alloc(1024, i)]));
        await writer.publish({ method: 'bench', extra: {} });
      }
    }
  }

  const timed = (args) => {
    const t = performance.now();
    const r = spawnSync(process.execPath, args, { env, cwd: project, encoding: 'utf8' });
    const ms = performance.now() - t;
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return { ms, out: r.stdout };
  };
  cli(['plan']); // once untimed: the server's caches as in a user's second plan
  const loadBefore = load();
  const floor = [];
  const version = [];
  const plan = [];
  const compared = [];
  let summary = '';
  for (let i = 0; i < pairs; i++) {
    floor.push(timed(['-e', '0']).ms);
    version.push(timed([BIN, '--version']).ms);
    const p = timed([BIN, 'plan']);
    plan.push(p.ms);
    summary = /^(Plan: .*|No changes\..*)$/m.exec(p.out)?.[1] ?? '';
    if (compareBin) compared.push(timed([compareBin, 'plan']).ms);
    process.stderr.write(`round ${i + 1}: node -e 0 ${floor.at(-1).toFixed(0)} ms, --version ${version.at(-1).toFixed(0)} ms, plan ${plan.at(-1).toFixed(0)} ms${compareBin ? `, compared build's plan ${compared.at(-1).toFixed(0)} ms` : ''}\n`);
  }
  const loadAfter = load();
  const splits = [];
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--split', config], { env, cwd: project, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    splits.push(JSON.parse(r.stdout));
  }
  const mid = (f) => median(splits.map(f)).toFixed(0);
  const modules = Object.keys(splits[0].timingsMs.modules).map((m) => `${m} ${mid((s) => s.timingsMs.modules[m])}`).join(', ');

  console.log(`\n== plan, ${new Date().toISOString().slice(0, 10)}, ${pairs} interleaved rounds, scale ${scale}, ${perSchedule} catalog backups per schedule ==`);
  console.log(`load average (1/5/15 min) before ${loadBefore}, after ${loadAfter}`);
  console.log(`plan: ${summary}; plan errors: ${splits[0].errors.length}`);
  console.log('| whole process | median | spread |');
  console.log('|---|---|---|');
  console.log(`| \`node -e 0\` | ${median(floor).toFixed(0)} ms | ${spread(floor)} ms |`);
  console.log(`| \`jarvis-db --version\` | ${median(version).toFixed(0)} ms | ${spread(version)} ms |`);
  console.log(`| **\`jarvis-db plan\`** | **${median(plan).toFixed(0)} ms** (target < 500 ms) | ${spread(plan)} ms |`);
  if (compareBin) console.log(`| \`plan\` of ${compareBin} | ${median(compared).toFixed(0)} ms | ${spread(compared)} ms |`);
  console.log(`ratio plan / node -e 0 (medians): ${(median(plan) / median(floor)).toFixed(2)}${compareBin ? `; plan / compared build's plan: ${(median(plan) / median(compared)).toFixed(3)}` : ''}`);
  console.log(`in process (median of 3, informative): config ${mid((s) => s.config)} ms, engine import ${mid((s) => s.engineImport)} ms, observe ${mid((s) => s.timingsMs.observe)} ms (${modules}), plan + render ${mid((s) => s.timingsMs.plan)} ms`);
  await stopSandbox(sandboxDir);
} finally {
  await stopSandbox(sandboxDir).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
}
