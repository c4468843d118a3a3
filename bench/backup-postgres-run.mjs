// Runs one jarvis-db backup operation through the same code the CLI runs (src/backup/operations),
// with the Desired given as JSON (the config loader is not needed for the measurement).
// Usage: node bench/backup-postgres-run.mjs create <desired.json>
//        node bench/backup-postgres-run.mjs restore <desired.json> <id> <target-db>
import { readFileSync } from 'node:fs';
const [, , what, file, id, target] = process.argv;
const desired = JSON.parse(readFileSync(file, 'utf8'));
const ops = await import(new URL('../dist/backup/operations.js', import.meta.url).href);
if (what === 'create') {
  const e = await ops.createBackup(desired, desired.backups[0], process.env);
  process.stdout.write(JSON.stringify({ id: e.manifest.id, totalBytes: e.manifest.totalBytes, sourceBytes: e.manifest.sourceBytes, dir: e.dir }) + '\n');
} else {
  const r = await ops.restoreBackup(desired, id, { target, force: false, env: process.env });
  process.stdout.write(JSON.stringify(r.details) + '\n');
}
