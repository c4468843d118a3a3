/** The record format of logical Redis backups (pure): round trip, streaming, damage detection. */
import t from 'tap';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { LogicalDecoder, LogicalEncoder, readLogical, type KeyRecord } from '../../../src/backup/redis/logical.js';

const RECORDS: KeyRecord[] = [
  { db: 0, key: Buffer.from('plain'), expireAt: -1, payload: Buffer.from('payload-1') },
  { db: 0, key: Buffer.from([0, 255, 13, 10]), expireAt: 1795590503123, payload: Buffer.from([1, 2, 3]) },
  { db: 15, key: Buffer.from('big'), expireAt: -1, payload: Buffer.alloc(3_000_000, 7) },
  { db: 1, key: Buffer.alloc(0), expireAt: 4102444800000, payload: Buffer.alloc(0) },
];

function encode(records: KeyRecord[]): Buffer {
  const e = new LogicalEncoder();
  const chunks: Buffer[] = [];
  for (const r of records) { e.add(r); chunks.push(...e.take()); }
  chunks.push(...e.finish());
  return Buffer.concat(chunks);
}

/** Comparable form: tap's deep equality on multi-megabyte Buffers is slow. */
function view(records: KeyRecord[]) {
  return records.map((r) => ({ db: r.db, key: r.key.toString('hex'), expireAt: r.expireAt, payload: createHash('sha256').update(r.payload).digest('hex'), bytes: r.payload.length }));
}

async function decode(data: Buffer, chunk: number): Promise<KeyRecord[]> {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
  const out: KeyRecord[] = [];
  for await (const batch of readLogical(Readable.from(parts), undefined, 2)) out.push(...batch);
  return out;
}

t.test('records round-trip with their database, binary key, absolute expiry and payload', async (t) => {
  const data = encode(RECORDS);
  for (const size of [1 << 20, 65536, 1000, 17]) t.same(view(await decode(data, size)), view(RECORDS), `chunks of ${size}`);
});

t.test('the end record counts keys per database', async (t) => {
  const e = new LogicalEncoder();
  for (const r of RECORDS) e.add(r);
  t.same(e.trailer(), { keys: 4, databases: { 0: 2, 1: 1, 15: 1 } });
});

t.test('a truncated file is an error, never a smaller backup', async (t) => {
  const data = encode(RECORDS);
  for (const len of [0, 10, 30, 1000, data.length - 200, data.length - 1]) {
    await t.rejects(decode(data.subarray(0, len), 4096), { code: 'BACKUP_INVALID' }, `cut at ${len}`);
  }
});

t.test('a damaged record or end record is an error', async (t) => {
  const data = encode(RECORDS.slice(0, 2));
  const badType = Buffer.from(data);
  badType[23] = 0x58; // the first record's type byte, right after the 23-byte magic
  await t.rejects(decode(badType, 4096), { code: 'BACKUP_INVALID', message: /unknown record type/ });
  const e = new LogicalEncoder();
  e.add(RECORDS[0]!);
  const lying = Buffer.concat([...e.take(), ...e.finish()]).toString('latin1').replace('"keys":1', '"keys":2');
  await t.rejects(decode(Buffer.from(lying, 'latin1'), 4096), { message: /counts 2 keys but it holds 1/ });
  t.throws(() => new LogicalDecoder().push(Buffer.from('not a jarvis-db backup at all')), { message: /does not start like/ });
  await t.rejects(decode(Buffer.concat([data, Buffer.from('x')]), 4096), { message: /after the end record/ });
});
