// The Redis backup benchmark's helper: runs one jarvis-db operation through the code the CLI
// runs (src/backup/operations, from dist/), or writes the benchmark's data set as RESP.
// Usage: node bench/backup-redis-run.mjs create <desired.json> [schedule-index]
//        node bench/backup-redis-run.mjs restore <desired.json> <id> [flush]
//        node bench/backup-redis-run.mjs gen <scale>    (RESP on stdout, for redis-cli --pipe)
import { readFileSync } from 'node:fs';
const [, , what, ...args] = process.argv;

if (what === 'gen') {
  // 500k strings of 100 B, 100k hashes, 100k keys with a TTL (times the scale).
  const scale = Number(args[0] ?? 1);
  const cmd = (...a) => `*${a.length}\r\n` + a.map((x) => `$${Buffer.byteLength(String(x))}\r\n${x}\r\n`).join('');
  let out = [];
  const flush = () => { if (out.length) { process.stdout.write(out.join('')); out = []; } };
  const value = (i) => (`v${i}-` + 'x'.repeat(100)).slice(0, 100);
  for (let i = 0; i < 500_000 * scale; i++) { out.push(cmd('SET', `cache:str:${i}`, value(i))); if (out.length >= 5000) flush(); }
  for (let i = 0; i < 100_000 * scale; i++) { out.push(cmd('HSET', `user:${i}`, 'name', `User ${i}`, 'email', `user${i}@example.com`, 'plan', i % 3 ? 'free' : 'pro', 'visits', String(i % 977))); if (out.length >= 5000) flush(); }
  for (let i = 0; i < 100_000 * scale; i++) { out.push(cmd('SET', `session:${i}`, `token-${i}-${'s'.repeat(40)}`, 'EX', String(3600 + (i % 86400)))); if (out.length >= 5000) flush(); }
  flush();
} else {
  const desired = JSON.parse(readFileSync(args[0], 'utf8'));
  const ops = await import(new URL('../dist/backup/operations.js', import.meta.url).href);
  if (what === 'create') {
    const e = await ops.createBackup(desired, desired.backups[Number(args[1] ?? 0)], process.env);
    process.stdout.write(JSON.stringify({ id: e.manifest.id, totalBytes: e.manifest.totalBytes, keys: e.manifest.extra.keys }) + '\n');
  } else {
    const r = await ops.restoreBackup(desired, args[1], { force: false, flush: args[2] === 'flush', env: process.env });
    process.stdout.write(JSON.stringify(r.details) + '\n');
  }
}
