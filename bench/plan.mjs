#!/usr/bin/env node
// Benchmark (issue 3): `jarvis-db plan` of the root jarvis-db.yaml against a sandbox, wall time
// split into config, observation and planning. Target: under 1 s in total.
//
// Usage: npm run build && node bench/plan.mjs [BACKUPS_PER_SCHEDULE=60] [RUNS=7]
//
// The root config and its policy files are copied into a temporary directory (so that its
// relative storage path holds a catalog of our own: BACKUPS_PER_SCHEDULE published backups for
// each schedule), and pointed at a sandbox (PostgreSQL, Redis, Chroma) through JARVIS_*_URL,
// never at the machine's shared services. Baselines in the same run: `node -e 0` (the floor of
// any Node CLI) and `jarvis-db --version` (our start-up). Each figure is the median of RUNS
// fresh processes.
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, rm, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dist = (p) => new URL(`../dist/${p}`, import.meta.url).href;

// Child mode: one plan in this fresh process, timed by phase, printed as JSON.
if (process.argv[2] === '--split') {
  const t0 = performance.now();
  const { loadConfig } = await import(dist('config/load.js'));
  const desired = await loadConfig(process.argv[3]);
  const t1 = performance.now();
  const { defaultParts } = await import(dist('engine/registry.js'));
  const { observeAll } = await import(dist('engine/index.js'));
  const parts = await defaultParts();
  const now = new Date();
  const { observation, timingsMs } = await observeAll(desired, parts, now);
  const t2 = performance.now();
  const { buildPlan } = await import(dist('engine/planner.js'));
  const { renderPlanText } = await import(dist('render/text.js'));
  const plan = buildPlan(desired, parts.modules, observation);
  const text = renderPlanText(plan);
  const t3 = performance.now();
  process.stdout.write(JSON.stringify({ config: t1 - t0, observe: t2 - t1, plan: t3 - t2, modules: timingsMs, actions: plan.actions.length, errors: plan.errors, bytes: text.length }) + '\n');
  process.exit(0);
}

const perSchedule = Number(process.argv[2] ?? 60);
const runs = Number(process.argv[3] ?? 7);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms) => `${ms.toFixed(0)} ms`;

const { startSandbox, stopSandbox, sandboxEnv } = await import(dist('sandbox/index.js'));
const { loadConfig } = await import(dist('config/load.js'));
const { BackupWriter } = await import(dist('backup/storage.js'));

const work = await mkdtemp(join(tmpdir(), 'jarvis-bench-plan-'));
await chmod(work, 0o755);
const sandboxDir = join(work, 'sandbox');
try {
  process.stderr.write('starting the sandbox (postgres, redis, chroma)...\n');
  const state = await startSandbox({ dir: sandboxDir, services: ['postgres', 'redis', 'chroma'], ownerPid: process.pid });
  const env = { ...process.env, ...sandboxEnv(state), NO_COLOR: '1' };
  delete env.JARVIS_DB_TEST_MODULE;

  const project = join(work, 'project');
  await cp(join(ROOT, 'jarvis-db.yaml'), join(project, 'jarvis-db.yaml'));
  for (const dir of ['policies', 'migrations']) if (existsSync(join(ROOT, dir))) await cp(join(ROOT, dir), join(project, dir), { recursive: true });
  const config = join(project, 'jarvis-db.yaml');
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

  const wall = (args) => {
    const times = [];
    let last;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      last = spawnSync(process.execPath, args, { env, cwd: project, encoding: 'utf8' });
      times.push(performance.now() - t);
      if (last.status !== 0) throw new Error(`${args.join(' ')} exited ${last.status}: ${last.stderr}`);
    }
    return { ms: median(times), out: last.stdout };
  };
  const nodeFloor = wall(['-e', '0']);
  const version = wall([join(ROOT, 'bin/jarvis-db.js'), '--version']);
  const plan = wall([join(ROOT, 'bin/jarvis-db.js'), 'plan', '-c', config]);
  const splits = [];
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--split', config], { env, cwd: project, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    splits.push(JSON.parse(r.stdout));
  }
  const split = { config: median(splits.map((s) => s.config)), observe: median(splits.map((s) => s.observe)), plan: median(splits.map((s) => s.plan)) };
  const summary = /^(Plan: .*|No changes\..*)$/m.exec(plan.out)?.[1];

  console.log(`\nplan of the root jarvis-db.yaml: ${desired.backups.length} schedules, ${desired.retention.length} policies, ${perSchedule * desired.backups.length} backups in the catalog; median of ${runs} runs`);
  console.log(`modules observed: ${Object.keys(splits[0].modules).join(', ')}; ${splits[0].actions} actions (${summary}); plan errors: ${splits[0].errors.length}`);
  console.log('| what | wall time |');
  console.log('|---|---|');
  console.log(`| baseline: \`node -e 0\` | ${fmt(nodeFloor.ms)} |`);
  console.log(`| baseline: \`jarvis-db --version\` | ${fmt(version.ms)} |`);
  console.log(`| **\`jarvis-db plan\` (whole process)** | **${fmt(plan.ms)}** (target < 1000 ms) |`);
  console.log(`| in process: config (load, interpolate, validate, policies) | ${fmt(split.config)} |`);
  console.log(`| in process: observation (all modules, in parallel) | ${fmt(split.observe)} |`);
  console.log(`| in process: planning and rendering | ${fmt(split.plan)} |`);
  console.log(`ratio plan / node -e 0: ${(plan.ms / nodeFloor.ms).toFixed(2)}; plan / --version: ${(plan.ms / version.ms).toFixed(2)}`);
  await stopSandbox(sandboxDir);
} finally {
  await stopSandbox(sandboxDir).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
}
