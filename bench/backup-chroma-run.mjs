// Runs one jarvis-db Chroma backup operation through the code the CLI runs (src/backup/operations),
// with the Desired given as JSON; prints {ms, cpuMs, maxRssKb, ...} as the last line.
// Usage: node bench/backup-chroma-run.mjs create <desired.json>
//        node bench/backup-chroma-run.mjs restore <desired.json> <id>
import { readFileSync } from 'node:fs';
const [, , what, file, id] = process.argv;
const desired = JSON.parse(readFileSync(file, 'utf8'));
const ops = await import(new URL('../dist/backup/operations.js', import.meta.url).href);
const t0 = performance.now();
let result;
if (what === 'create') {
  const e = await ops.createBackup(desired, desired.backups[0], process.env);
  result = { id: e.manifest.id, totalBytes: e.manifest.totalBytes, dir: e.dir };
} else {
  const r = await ops.restoreBackup(desired, id, { force: false, env: process.env });
  result = { records: r.details.records };
}
const usage = process.resourceUsage();
process.stdout.write(JSON.stringify({ ms: performance.now() - t0, cpuMs: Math.round((usage.userCPUTime + usage.systemCPUTime) / 1000), maxRssKb: usage.maxRSS, ...result }) + '\n');
