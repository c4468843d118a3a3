// The jarvis-db side of bench/retention.mjs, in its own process (so that its peak RSS is its own):
// observe → plan → execute the retention actions of DESIRED.json at NOW, printing figures as JSON.
// Usage: node bench/retention-run.mjs DESIRED.json NOW_ISO   (needs a built dist/)
import { readFileSync } from 'node:fs';
import { observeRetention } from '../dist/retention/observe.js';
import { planRetention } from '../dist/retention/plan.js';
import { retentionHandlers } from '../dist/retention/module.js';

const desired = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const now = new Date(process.argv[3]);
const t0 = performance.now();
const observed = await observeRetention(desired, process.env, now);
const observeMs = performance.now() - t0;
const plan = planRetention(desired, observed, now);
if (plan.errors.length) throw new Error(plan.errors.map((e) => e.message).join('\n'));
const t1 = performance.now();
const results = [];
for (const action of plan.actions) {
  const out = await retentionHandlers[action.type](action, { desired, env: process.env, signal: new AbortController().signal, runId: 'bench', log: () => {}, plan: { ...plan } }, { note() {}, update() {} });
  results.push({ id: action.id, cutoff: action.params.cutoff, estimate: action.estimate, ...out.details });
}
const runMs = performance.now() - t1;
process.stdout.write(JSON.stringify({
  observeMs, policyObserveMs: observed.policies.map((p) => p.ms), runMs, results, maxRssKB: process.resourceUsage().maxRSS,
  cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
}) + '\n');
