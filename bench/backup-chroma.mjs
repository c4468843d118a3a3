// Benchmark: jarvis-db's Chroma backups against the raw ways of copying the same data, in the
// same run, on a throwaway Chroma server (the project's sandbox code):
//   - `tar | zstd` of the data directory (the server quiet), the floor for a physical copy;
//   - naive paging: the chromadb JS client's `get` (1,000 a page, embeddings as JSON numbers)
//     written as JSON lines, what a script would do;
//   - jarvis-db backup create, logical and physical (each in a child process: time, size, peak RSS);
//   - restore: jarvis-db restore into a fresh server, against the naive re-insert of the naive
//     file with the JS client (batches of 1,000).
// Prints the figures and ratios; appends nothing by itself (copy the summary into bench/RESULTS.md).
// Usage: node bench/backup-chroma.mjs [RECORDS=50000] [ROUNDS=2] [--no-restore]
// Needs: a built dist/ (npx tsc -p tsconfig.json), tar and zstd on PATH.
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

const RECORDS = Number(process.argv[2] ?? 50000);
const ROUNDS = Number(process.argv[3] ?? 2);
const RESTORE = !process.argv.includes('--no-restore');
const DIM = 384;
const ROOT = new URL('..', import.meta.url).pathname;
const { startChromaServer, stopChromaServer } = await import(new URL('../dist/scratch/servers.js', import.meta.url).href);
const { ChromaClient } = await import('chromadb');

const work = mkdtempSync(join(tmpdir(), 'jarvis-bench-chroma-'));
const servers = [];
process.on('exit', () => { for (const s of servers) try { process.kill(s.pid, 'SIGKILL'); } catch { /* gone */ } rmSync(work, { recursive: true, force: true }); });
const clientOf = (url) => { const u = new URL(url); return new ChromaClient({ host: u.hostname, port: Number(u.port) }); };
const seconds = (t0) => (performance.now() - t0) / 1000;
const mb = (n) => (n / 1e6).toFixed(1);

async function dirBytes(dir) {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += (await stat(join(e.parentPath ?? e.path, e.name))).size;
  return total;
}

/** Runs the jarvis-db side in a child: { ms, maxRssKb, ...result }. */
function child(args) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bench/backup-chroma-run.mjs'), ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`child ${args[0]} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// ---------------------------------------------------------------- data
const source = await startChromaServer({ dir: join(work, 'source') });
servers.push(source);
console.log(`chroma on ${source.url}; loading ${RECORDS} records of ${DIM} dimensions...`);
const words = 'the user asked about weather schedule meeting reminder email project deadline summary coffee tea jarvis memory context backup café naïve 東京'.split(' ');
let seed = 7;
const rnd = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed / 2 ** 32; };
{
  const col = await clientOf(source.url).createCollection({ name: 'memories', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
  const t0 = performance.now();
  for (let i = 0; i < RECORDS; i += 2500) {
    const n = Math.min(2500, RECORDS - i);
    const ids = [], embeddings = [], documents = [], metadatas = [];
    for (let k = i; k < i + n; k++) {
      ids.push(`mem-${k}`);
      const v = Array.from({ length: DIM }, () => rnd() * 2 - 1);
      const norm = Math.hypot(...v);
      embeddings.push(v.map((x) => x / norm));
      documents.push(Array.from({ length: 12 + (k % 10) }, (_, j) => words[(k * 7 + j * 13) % words.length]).join(' '));
      metadatas.push({ user: `u${k % 500}`, conversation: k % 9000, importance: (k % 100) / 100, pinned: k % 11 === 0, source: 'chat' });
    }
    await col.add({ ids, embeddings, documents, metadatas });
  }
  console.log(`loaded in ${seconds(t0).toFixed(1)} s`);
}
// Chroma keeps indexing and persisting for a while after the last add: wait until its CPU time
// stops moving (2 s flat, at most 120 s), so that every method below meets the same idle server.
{
  const cpuOf = () => { const f = readFileSync(`/proc/${source.pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };
  const t0 = performance.now();
  let last = cpuOf();
  let flat = 0;
  while (flat < 4 && seconds(t0) < 120) {
    await new Promise((r) => setTimeout(r, 500));
    const now = cpuOf();
    flat = now - last <= 2 ? flat + 1 : 0;
    last = now;
  }
  console.log(`server idle after ${seconds(t0).toFixed(1)} s`);
}
const rawFloatBytes = RECORDS * DIM * 4;
const desired = (url, name, extra = {}) => ({
  version: 1, project: 'bench', configFile: join(work, 'jarvis-db.yaml'), configHash: 'bench',
  services: { chroma: { url, path: source.dataDir } }, storage: { path: join(work, 'storage') },
  backups: [{ name, service: 'chroma', cron: '30 3 * * *', timezone: 'UTC', keep: { last: 10 }, verify: 'checksum', path: 'backups[0]', ...extra }],
  retention: [], health: { thresholds: {}, intervalSeconds: 60, historySeconds: 3600 },
});
writeFileSync(join(work, 'logical.json'), JSON.stringify(desired(source.url, 'logical', { method: 'logical' })));
writeFileSync(join(work, 'physical.json'), JSON.stringify(desired(source.url, 'physical', { method: 'physical' })));

// ---------------------------------------------------------------- the three backups, alternated
async function tarZstd() {
  const out = join(work, 'data.tar.zst');
  const t0 = performance.now();
  const sh = spawn('sh', ['-c', 'tar -C "$1" -cf - . | zstd -q -T0 -f -o "$2"', 'sh', source.dataDir, out], { stdio: 'inherit' });
  const [code] = await once(sh, 'close');
  if (code !== 0) throw new Error(`tar | zstd failed (${code})`);
  return { s: seconds(t0), bytes: statSync(out).size };
}

async function naivePaging() {
  const out = join(work, 'naive.jsonl');
  const t0 = performance.now();
  const col = await clientOf(source.url).getCollection({ name: 'memories' });
  const file = createWriteStream(out);
  for (let offset = 0; ; offset += 1000) {
    const page = await col.get({ limit: 1000, offset, include: ['embeddings', 'documents', 'metadatas', 'uris'] });
    let text = '';
    for (let i = 0; i < page.ids.length; i++) {
      text += JSON.stringify({ id: page.ids[i], embedding: page.embeddings[i], document: page.documents[i], metadata: page.metadatas[i], uri: page.uris[i] }) + '\n';
    }
    if (!file.write(text)) await once(file, 'drain');
    if (page.ids.length < 1000) break;
  }
  file.end();
  await once(file, 'finish');
  return { s: seconds(t0), bytes: statSync(out).size };
}

const runs = { tar: [], naive: [], logical: [], physical: [] };
let logicalId = null;
for (let round = 0; round < ROUNDS; round++) {
  runs.tar.push(await tarZstd());
  runs.naive.push(await naivePaging());
  const l = child(['create', join(work, 'logical.json')]);
  runs.logical.push({ s: l.ms / 1000, bytes: l.totalBytes, rss: l.maxRssKb, cpu: l.cpuMs });
  logicalId = l.id;
  const p = child(['create', join(work, 'physical.json')]);
  runs.physical.push({ s: p.ms / 1000, bytes: p.totalBytes, rss: p.maxRssKb, cpu: p.cpuMs });
  console.log(`round ${round + 1}: tar|zstd ${runs.tar.at(-1).s.toFixed(2)} s, naive ${runs.naive.at(-1).s.toFixed(2)} s, logical ${runs.logical.at(-1).s.toFixed(2)} s, physical ${runs.physical.at(-1).s.toFixed(2)} s`);
}
const best = (list) => list.reduce((a, b) => (b.s < a.s ? b : a));

// ---------------------------------------------------------------- restores into a fresh server
async function restores() {
  const target = await startChromaServer({ dir: join(work, 'target') });
  servers.push(target);
  writeFileSync(join(work, 'restore.json'), JSON.stringify(desired(target.url, 'logical', { method: 'logical' })));
  const r = child(['restore', join(work, 'restore.json'), logicalId]);
  const jdb = { s: r.ms / 1000, rss: r.maxRssKb };
  const col = await clientOf(target.url).createCollection({ name: 'naive-copy', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
  const t0 = performance.now();
  let batch = [];
  const flush = async () => {
    if (!batch.length) return;
    await col.add({ ids: batch.map((b) => b.id), embeddings: batch.map((b) => b.embedding), documents: batch.map((b) => b.document), metadatas: batch.map((b) => b.metadata) });
    batch = [];
  };
  for await (const line of createInterface({ input: createReadStream(join(work, 'naive.jsonl')) })) {
    if (!line) continue;
    batch.push(JSON.parse(line));
    if (batch.length === 1000) await flush();
  }
  await flush();
  return { jdb, naive: { s: seconds(t0) } };
}
const restored = RESTORE ? await restores() : null;

// ---------------------------------------------------------------- report
const T = best(runs.tar), N = best(runs.naive), L = best(runs.logical), P = best(runs.physical);
const dataDirBytes = await dirBytes(source.dataDir);
const line = (label, s, bytes, note = '') => console.log(`${label.padEnd(44)} ${s.toFixed(2).padStart(7)} s ${bytes === null ? '' : `${mb(bytes).padStart(8)} MB`}${note}`);
console.log(`\n== backup-chroma, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, ${RECORDS} records x ${DIM} dims (cosine), best of ${ROUNDS} ==`);
console.log(`data directory ${mb(dataDirBytes)} MB; raw float32 embeddings ${mb(rawFloatBytes)} MB`);
line('tar | zstd -T0 of the data directory', T.s, T.bytes, `   (runs: ${runs.tar.map((x) => x.s.toFixed(2)).join(' ')})`);
line('naive JSON paging (JS client get, 1000/page)', N.s, N.bytes, `   (runs: ${runs.naive.map((x) => x.s.toFixed(2)).join(' ')})`);
line('jarvis-db backup create (logical)', L.s, L.bytes, `   (runs: ${runs.logical.map((x) => x.s.toFixed(2)).join(' ')}; CPU ${(L.cpu / 1000).toFixed(2)} s; peak RSS ${(L.rss / 1024).toFixed(0)} MB)`);
line('jarvis-db backup create (physical)', P.s, P.bytes, `   (runs: ${runs.physical.map((x) => x.s.toFixed(2)).join(' ')}; peak RSS ${(P.rss / 1024).toFixed(0)} MB)`);
console.log(`logical: ${Math.round(RECORDS / L.s)} records/s (target >= 15000); naive: ${Math.round(RECORDS / N.s)} records/s`);
console.log(`logical archive / raw float32        ${(L.bytes / rawFloatBytes).toFixed(3)} (target <= 1.2)`);
console.log(`ratio time logical / naive           ${(L.s / N.s).toFixed(3)};  size ${(L.bytes / N.bytes).toFixed(3)}`);
console.log(`ratio time logical / tar|zstd        ${(L.s / T.s).toFixed(3)};  size ${(L.bytes / T.bytes).toFixed(3)}`);
console.log(`ratio time physical / tar|zstd       ${(P.s / T.s).toFixed(3)};  size ${(P.bytes / T.bytes).toFixed(3)}`);
if (restored) {
  const { jdb, naive } = restored;
  line('jarvis-db restore (logical, with read-back)', jdb.s, null, `   ${Math.round(RECORDS / jdb.s)} records/s; peak RSS ${(jdb.rss / 1024).toFixed(0)} MB`);
  line('naive re-insert with the JS client', naive.s, null, `   ${Math.round(RECORDS / naive.s)} records/s`);
  console.log(`ratio restore jarvis-db / naive      ${(jdb.s / naive.s).toFixed(3)}`);
}
for (const s of servers) await stopChromaServer(s.pid);
servers.length = 0;
