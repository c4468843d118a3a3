/**
 * Optional encryption at rest for backups and retention archives: AES-256-GCM in authenticated
 * chunks, so that a file of any size streams through a fixed amount of memory.
 *
 * File layout:
 *   header  = MAGIC (8) | salt (16) | file nonce (8) | key check (16)
 *   record* = flag (1: 0 more, 1 final) | length (4, BE) | ciphertext (length) | tag (16)
 * Chunk i is sealed with IV = file nonce | uint32 BE i and AAD = header | flag, so records
 * cannot be reordered, dropped or moved between files, and the `final` flag (authenticated)
 * makes a truncated file an error rather than a shorter plaintext.
 * The key comes from scrypt(passphrase, salt). The key check (HMAC of the salt under the key)
 * tells a wrong passphrase apart from a damaged file.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { JarvisError } from '../errors.js';
import { registerSecret } from '../services/redact.js';

const MAGIC = Buffer.from('JDBENC1\n', 'latin1');
const SALT_BYTES = 16;
const NONCE_BYTES = 8;
const CHECK_BYTES = 16;
const TAG_BYTES = 16;
export const HEADER_BYTES = MAGIC.length + SALT_BYTES + NONCE_BYTES + CHECK_BYTES;
export const CHUNK_BYTES = 64 * 1024;
const RECORD_HEAD = 5;

/** A passphrase with the keys derived from it, cached by salt. */
export class KeyRing {
  private readonly keys = new Map<string, Buffer>();
  constructor(private readonly passphrase: string, readonly source: string) {
    registerSecret(passphrase);
  }
  keyFor(salt: Buffer): Buffer {
    const hex = salt.toString('hex');
    let key = this.keys.get(hex);
    if (!key) {
      key = scryptSync(this.passphrase, salt, 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
      this.keys.set(hex, key);
    }
    return key;
  }
}

/** The key ring named by the config (`storage.encryption.passphraseEnv`), or a clear error. */
export function keyRingFromEnv(passphraseEnv: string, env: NodeJS.ProcessEnv): KeyRing {
  const value = env[passphraseEnv];
  if (!value) {
    throw new JarvisError('DECRYPT_FAILED', `encryption is configured but $${passphraseEnv} is not set`, {
      hint: `export ${passphraseEnv}=<passphrase> (the one the backups were written with)`,
    });
  }
  return new KeyRing(value, `$${passphraseEnv}`);
}

function keyCheck(key: Buffer, salt: Buffer): Buffer {
  return createHmac('sha256', key).update('jarvis-db key check').update(salt).digest().subarray(0, CHECK_BYTES);
}

function iv(nonce: Buffer, counter: number): Buffer {
  const out = Buffer.alloc(12);
  nonce.copy(out, 0);
  out.writeUInt32BE(counter, NONCE_BYTES);
  return out;
}

/**
 * One salt per backup (so scrypt runs once), a fresh random nonce per file.
 */
export class EncryptionSession {
  readonly salt = randomBytes(SALT_BYTES);
  constructor(private readonly ring: KeyRing) {}
  encryptor(): Transform {
    return new EncryptStream(this.ring.keyFor(this.salt), this.salt);
  }
}

class EncryptStream extends Transform {
  private readonly header: Buffer;
  private readonly nonce = randomBytes(NONCE_BYTES);
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private counter = 0;
  constructor(private readonly key: Buffer, salt: Buffer) {
    super();
    this.header = Buffer.concat([MAGIC, salt, this.nonce, keyCheck(key, salt)]);
    this.push(this.header);
  }
  private seal(plain: Buffer, final: boolean): void {
    if (this.counter === 0xffffffff) throw new JarvisError('BACKUP_FAILED', 'file too large for one encryption stream');
    const flag = Buffer.from([final ? 1 : 0]);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv(this.nonce, this.counter++));
    cipher.setAAD(Buffer.concat([this.header, flag]));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    const head = Buffer.alloc(RECORD_HEAD);
    head[0] = flag[0]!;
    head.writeUInt32BE(body.length, 1);
    this.push(Buffer.concat([head, body, cipher.getAuthTag()]));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      // Keep at least one byte back: the last record must carry the final flag. Joined once
      // per input chunk, then sealed by views, so a large chunk costs linear time.
      if (this.pendingBytes > CHUNK_BYTES) {
        const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
        let offset = 0;
        while (all.length - offset > CHUNK_BYTES) {
          this.seal(all.subarray(offset, offset + CHUNK_BYTES), false);
          offset += CHUNK_BYTES;
        }
        const rest = all.subarray(offset);
        this.pending = [rest];
        this.pendingBytes = rest.length;
      }
      done();
    } catch (e) {
      done(e as Error);
    }
  }
  override _flush(done: TransformCallback): void {
    try {
      this.seal(Buffer.concat(this.pending), true);
      done();
    } catch (e) {
      done(e as Error);
    }
  }
}

/** A stream that decrypts one file written by `EncryptionSession.encryptor()`. */
export function decryptor(ring: KeyRing, fileName: string): Transform {
  return new DecryptStream(ring, fileName);
}

class DecryptStream extends Transform {
  private buffer: Buffer = Buffer.alloc(0);
  private header: Buffer | null = null;
  private key: Buffer | null = null;
  private nonce: Buffer | null = null;
  private counter = 0;
  private finished = false;
  constructor(private readonly ring: KeyRing, private readonly fileName: string) {
    super();
  }
  private fail(message: string, hint?: string): JarvisError {
    return new JarvisError('DECRYPT_FAILED', message, hint ? { hint } : {});
  }
  private step(): void {
    if (!this.header) {
      if (this.buffer.length < HEADER_BYTES) return;
      const header = this.buffer.subarray(0, HEADER_BYTES);
      if (!header.subarray(0, MAGIC.length).equals(MAGIC)) throw this.fail(`${this.fileName} is not a jarvis-db encrypted file`);
      const salt = header.subarray(MAGIC.length, MAGIC.length + SALT_BYTES);
      this.nonce = Buffer.from(header.subarray(MAGIC.length + SALT_BYTES, MAGIC.length + SALT_BYTES + NONCE_BYTES));
      const check = header.subarray(HEADER_BYTES - CHECK_BYTES);
      const key = this.ring.keyFor(Buffer.from(salt));
      if (!timingSafeEqual(check, keyCheck(key, salt))) {
        throw this.fail(`wrong passphrase for ${this.fileName} (key from ${this.ring.source})`, 'use the passphrase the backup was written with');
      }
      this.key = key;
      this.header = Buffer.from(header);
      this.buffer = this.buffer.subarray(HEADER_BYTES);
    }
    for (;;) {
      if (this.buffer.length < RECORD_HEAD) return;
      if (this.finished) throw this.fail(`${this.fileName} is damaged: data after the final chunk`);
      const flag = this.buffer[0]!;
      const length = this.buffer.readUInt32BE(1);
      if (flag > 1 || length > CHUNK_BYTES) throw this.fail(`${this.fileName} is damaged: bad chunk header at chunk ${this.counter}`);
      const total = RECORD_HEAD + length + TAG_BYTES;
      if (this.buffer.length < total) return;
      const body = this.buffer.subarray(RECORD_HEAD, RECORD_HEAD + length);
      const tag = this.buffer.subarray(RECORD_HEAD + length, total);
      const decipher = createDecipheriv('aes-256-gcm', this.key!, iv(this.nonce!, this.counter));
      decipher.setAAD(Buffer.concat([this.header, Buffer.from([flag])]));
      decipher.setAuthTag(tag);
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(body), decipher.final()]);
      } catch (e) {
        throw new JarvisError('DECRYPT_FAILED', `${this.fileName} is damaged: chunk ${this.counter} fails authentication`, { cause: e });
      }
      this.counter++;
      if (flag === 1) this.finished = true;
      this.buffer = this.buffer.subarray(total);
      if (plain.length) this.push(plain);
    }
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    try {
      this.step();
      done();
    } catch (e) {
      done(e as Error);
    }
  }
  override _flush(done: TransformCallback): void {
    if (!this.header) return done(this.fail(`${this.fileName} is truncated: no encryption header`));
    if (!this.finished || this.buffer.length) return done(this.fail(`${this.fileName} is truncated: the final chunk is missing`));
    done();
  }
}
