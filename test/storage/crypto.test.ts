import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { CHUNK_BYTES, EncryptionSession, KeyRing, decryptor } from '../../src/storage/crypto.js';
import { redact } from '../../src/services/redact.js';

async function run(input: Buffer, ...stages: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await (pipeline as (...s: unknown[]) => Promise<void>)(Readable.from([input]), ...stages, new Writable({ write(c, _e, cb) { out.push(c); cb(); } }));
  return Buffer.concat(out);
}

const ring = new KeyRing('correct horse battery staple', '$JARVIS_BACKUP_KEY');
const session = new EncryptionSession(ring);

t.test('encrypted data round-trips through chunks of every size', async (t) => {
  for (const size of [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 17]) {
    const plain = randomBytes(size);
    const sealed = await run(plain, session.encryptor());
    t.notOk(sealed.includes(plain.subarray(0, Math.min(64, size))) && size >= 16, `ciphertext does not contain the plaintext (${size})`);
    const back = await run(sealed, decryptor(ring, 'f'));
    t.ok(back.equals(plain), `round trip of ${size} bytes`);
  }
});

t.test('the wrong passphrase gives a clear DECRYPT_FAILED error', async (t) => {
  const sealed = await run(Buffer.from('secret rows'), session.encryptor());
  const wrong = new KeyRing('not the key', '$JARVIS_BACKUP_KEY');
  await t.rejects(run(sealed, decryptor(wrong, 'data/toc.dat')), { code: 'DECRYPT_FAILED', message: /wrong passphrase for data\/toc\.dat/ });
});

t.test('a flipped byte, a truncation and a dropped chunk are each detected', async (t) => {
  const plain = randomBytes(3 * CHUNK_BYTES);
  const sealed = await run(plain, session.encryptor());
  const flipped = Buffer.from(sealed); flipped[flipped.length - 100]! ^= 1;
  await t.rejects(run(flipped, decryptor(ring, 'f')), { code: 'DECRYPT_FAILED', message: /damaged/ });
  // cut exactly at a record boundary: only the final flag can tell
  const header = 48; const record = 5 + CHUNK_BYTES + 16;
  await t.rejects(run(sealed.subarray(0, header + record), decryptor(ring, 'f')), { code: 'DECRYPT_FAILED', message: /truncated/ });
  const dropped = Buffer.concat([sealed.subarray(0, header), sealed.subarray(header + record)]);
  await t.rejects(run(dropped, decryptor(ring, 'f')), { code: 'DECRYPT_FAILED' });
});

t.test('the passphrase is registered as a secret and never printed', async (t) => {
  t.notMatch(redact('key is correct horse battery staple', {}), /correct horse/);
});
