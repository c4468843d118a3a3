/**
 * The archive chunk format: rows go in as PostgreSQL text and come back exactly; a damaged,
 * truncated or wrongly decrypted file is detected, never read as fewer rows.
 */
import t from 'tap';
import { createReadStream } from 'node:fs';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createRequire } from 'node:module';
import { gunzipSync } from 'node:zlib';
import type { ChunkCompression } from '../../src/retention/compression.js';
import { chunkData, CopyTextLines, keyRange, readChunk, rowLine, sealChunkManifest, type ChunkManifest, type ChunkPart, type Row } from '../../src/retention/chunk.js';
import { EncryptionSession, KeyRing } from '../../src/storage/crypto.js';
import { HashingFileSink } from '../../src/storage/durable.js';

/** The chunk's data as the store would hold it, written to a plain file. */
async function writeChunkData(path: string, parts: ChunkPart[], options: { compression: ChunkCompression; encryption: EncryptionSession | null }): Promise<{ bytes: number; sha256: string }> {
  const { source, transforms } = chunkData(parts, options);
  const sink = new HashingFileSink(path);
  await (pipeline as (...s: unknown[]) => Promise<void>)(source, ...transforms, sink);
  return { bytes: sink.bytes, sha256: sink.hash.digest('hex') };
}

const PARENT_ROWS: Row[] = [['9', 'Line\nbreak, "quotes", \\ and été ☃', '2025-01-02 03:04:05.123456+00'], ['10', null, '2025-01-02 03:04:05+00']];
const CHILD_ROWS: Row[] = Array.from({ length: 3000 }, (_, i) => [String(i + 1), i % 2 ? '9' : '10', JSON.stringify({ n: i, s: 'x'.repeat(i % 50) })]);
const PARENT: ChunkPart = { table: 'public.conversations', columns: ['id', 'title', 'updated_at'], lines: PARENT_ROWS.map(rowLine) };
const CHILD: ChunkPart = { table: 'public.messages', columns: ['id', 'conversation_id', 'metadata'], lines: CHILD_ROWS.map(rowLine) };

function manifestFor(name: string, parts: ChunkPart[], file: { bytes: number; sha256: string }, encrypted = false, compression: ChunkCompression = 'gzip'): ChunkManifest {
  return sealChunkManifest({
    formatVersion: 1, kind: 'jarvis-db-archive-chunk', archiveId: '20261124T030000Z-abcd', policy: 'p', chunk: 1, xid: '42',
    createdAt: '2026-11-24T03:00:00.000Z', cutoff: '2026-08-26T03:00:00.000Z', ageColumn: 'updated_at',
    tables: parts.map((p) => ({ table: p.table, columns: p.columns.map((c) => ({ name: c, type: 'text' })), primaryKey: ['id'], rows: p.lines.length, keyRange: null })),
    rows: parts.reduce((n, p) => n + p.lines.length, 0),
    file: { name, ...file, compression, encrypted },
  });
}

async function readAll(path: string, m: ChunkManifest, ring: KeyRing | null = null) {
  const rows: Record<string, Row[]> = {};
  const headers: string[] = [];
  const result = await readChunk(createReadStream(path), m, ring, { header: (table) => { headers.push(table); }, row: (table, row) => { (rows[table] ??= []).push(row); } });
  return { result, rows, headers };
}

const zstdBinding = (() => { try { return createRequire(import.meta.url)('zstd-napi') as { decompress(b: Buffer): Buffer }; } catch { return null; } })();
const decompressFile = (c: ChunkCompression, b: Buffer) => (c === 'gzip' ? gunzipSync(b) : zstdBinding!.decompress(b));

for (const c of ['gzip', 'zstd'] as const) {
  const ext = `.jsonl${c === 'gzip' ? '.gz' : '.zst'}`;
  // zstd needs the optional zstd-napi binding (npm ci builds it); gzip archives need nothing.
  const why = c === 'zstd' && !zstdBinding ? ' (skipped: the zstd-napi binding does not load here)' : '';
  const skip = { skip: why !== '' };
  t.test(`${c}: rows come back exactly (quotes, backslashes, newlines, unicode, nulls), parents before children, as readable JSON lines${why}`, skip, async (t) => {
    const dir = t.testdir();
    const path = join(dir, `chunk-000001${ext}`);
    const file = await writeChunkData(path, [PARENT, CHILD], { compression: c, encryption: null });
    const m = manifestFor(`chunk-000001${ext}`, [PARENT, CHILD], file, false, c);
    const { result, rows, headers } = await readAll(path, m);
    t.ok(result.ok, String(result.problem));
    t.same(headers, ['public.conversations', 'public.messages']);
    t.same(rows['public.conversations'], PARENT_ROWS);
    t.same(rows['public.messages'], CHILD_ROWS);
    t.same(result.rowsByTable, { 'public.conversations': 2, 'public.messages': 3000 });
    const text = decompressFile(c, await readFile(path)).toString('utf8').split('\n');
    t.same(JSON.parse(text[0]!), { table: 'public.conversations', columns: ['id', 'title', 'updated_at'] }, 'the first line says which table and columns follow');
    t.same(JSON.parse(text[1]!), PARENT_ROWS[0]);
  });

  t.test(`${c}: a changed byte, a truncated file or a manifest that claims other counts is detected${why}`, skip, async (t) => {
    const dir = t.testdir();
    const path = join(dir, `c${ext}`);
    const file = await writeChunkData(path, [PARENT, CHILD], { compression: c, encryption: null });
    const m = manifestFor(`c${ext}`, [PARENT, CHILD], file, false, c);
    const wrongCount = sealChunkManifest({ ...m, tables: m.tables.map((x) => ({ ...x, rows: x.rows + 1 })) });
    t.match((await readAll(path, wrongCount)).result, { ok: false, problem: /public\.conversations: 2 rows, the manifest says 3/ });
    const bytes = await readFile(path);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    await writeFile(path, bytes);
    const flipped = (await readAll(path, m)).result;
    t.equal(flipped.ok, false, 'a flipped byte fails');
    t.ok(flipped.problem, String(flipped.problem));
    await writeChunkData(join(dir, `d${ext}`), [PARENT, CHILD], { compression: c, encryption: null }).then(async (f) => {
      await truncate(join(dir, `d${ext}`), f.bytes - 100);
      const cut = (await readAll(join(dir, `d${ext}`), manifestFor(`d${ext}`, [PARENT, CHILD], f, false, c))).result;
      t.equal(cut.ok, false, 'a truncated file fails');
    });
  });

  t.test(`${c}: with storage encryption, a chunk is encrypted at rest and reads back only with the passphrase${why}`, skip, async (t) => {
    const dir = t.testdir();
    const path = join(dir, `e${ext}.enc`);
    const ring = new KeyRing('correct horse battery staple', '$TEST_KEY');
    const file = await writeChunkData(path, [PARENT], { compression: c, encryption: new EncryptionSession(ring) });
    const m = manifestFor(`e${ext}.enc`, [PARENT], file, true, c);
    t.notMatch((await readFile(path)).toString('latin1'), /été|quotes/, 'no plain text on disk');
    const ok = await readAll(path, m, ring);
    t.ok(ok.result.ok, String(ok.result.problem));
    t.same(ok.rows['public.conversations'], PARENT_ROWS);
    t.match((await readAll(path, m, new KeyRing('wrong', '$TEST_KEY'))).result, { ok: false, problem: /wrong passphrase/ });
    t.match((await readAll(path, m, null)).result, { ok: false, problem: /encrypted and no passphrase/ });
  });
}

t.test('the key range compares integer keys as numbers', async (t) => {
  t.same(keyRange([['9'], ['10'], ['100'], ['2']], [0], ['bigint']), { min: ['2'], max: ['100'] });
  t.same(keyRange([['b'], ['a'], ['c']], [0], ['text']), { min: ['a'], max: ['c'] });
  t.same(keyRange([['1', 'b'], ['1', 'a'], ['0', 'z']], [0, 1], ['integer', 'text']), { min: ['0', 'z'], max: ['1', 'b'] });
  t.equal(keyRange([], [0], ['bigint']), null);
});

t.test('COPY text output becomes chunk lines: doubled backslashes undone across buffer edges, lines counted, any other escape refused', async (t) => {
  const run = async (parts: string[]) => {
    const lines = new CopyTextLines();
    const out: Buffer[] = [];
    lines.on('data', (b: Buffer) => out.push(b));
    const done = new Promise<void>((resolve, reject) => { lines.on('end', resolve); lines.on('error', reject); });
    for (const p of parts) lines.write(Buffer.from(p, 'latin1'));
    lines.end();
    await done;
    return { text: Buffer.concat(out).toString('latin1'), count: lines.lines };
  };
  t.same(await run(['["a\\\\\\\\b","\\\\"q\\\\""]\n', '["plain"]\n']), { text: '["a\\\\b","\\"q\\""]\n["plain"]\n', count: 2 });
  t.same(await run(['["x\\', '\\n"]\n']), { text: '["x\\n"]\n', count: 1 }, 'a doubled backslash split between two buffers');
  await t.rejects(run(['["x\\n"]\n']), /unexpected COPY escape/, 'a raw control character escape is not a chunk line');
  await t.rejects(run(['["x"]\\']), /cut short/);
});
