/**
 * How archive chunks are compressed: zstd level 1 where the zstd-napi binding loads (an
 * optional dependency, a Node-API build of libzstd: Node 20 has no zstd of its own), gzip
 * level 1 otherwise. On the archive's own data (JSON lines of messages) zstd-1 took a quarter
 * of gzip-1's CPU for half its size (bench/RESULTS.md, issue 17). Each chunk's manifest
 * records its compression (file.compression), and reading takes either: archives written with
 * gzip restore wherever jarvis-db runs; zstd ones need the binding where they are read.
 */
import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { JarvisError } from '../errors.js';

export type ChunkCompression = 'gzip' | 'zstd';

/** Fast levels: an archive must keep pace with the batches it empties. */
const LEVEL = { gzip: 1, zstd: 1 } as const;

/** The file name's suffix for a compression (before `.enc`). */
export const SUFFIX: Record<ChunkCompression, string> = { gzip: '.gz', zstd: '.zst' };

interface ZstdBinding {
  CompressStream: new (p?: { compressionLevel?: number }) => Transform;
  DecompressStream: new () => Transform;
}

let loaded: ZstdBinding | null | undefined;

function zstd(): ZstdBinding | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('zstd-napi') as ZstdBinding;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/**
 * What new chunks use: zstd when the binding loads, unless JARVIS_DB_ARCHIVE_COMPRESSION says
 * gzip (an archive to be read where the binding may be missing).
 */
export function chunkCompression(env: NodeJS.ProcessEnv = process.env): ChunkCompression {
  const wanted = env.JARVIS_DB_ARCHIVE_COMPRESSION;
  if (wanted === 'gzip') return 'gzip';
  if (wanted === 'zstd' && !zstd()) {
    throw new JarvisError('USAGE', 'JARVIS_DB_ARCHIVE_COMPRESSION is zstd but the zstd-napi binding does not load', { hint: 'install jarvis-db with its optional dependencies (npm ci builds zstd-napi), or unset the variable' });
  }
  return zstd() ? 'zstd' : 'gzip';
}

export function compressor(kind: ChunkCompression): Transform {
  if (kind === 'gzip') return createGzip({ level: LEVEL.gzip, chunkSize: 1 << 18 });
  return new (zstd() as ZstdBinding).CompressStream({ compressionLevel: LEVEL.zstd });
}

export function decompressor(kind: ChunkCompression): Transform {
  if (kind === 'gzip') return createGunzip();
  const z = zstd();
  if (!z) {
    throw new JarvisError('RESTORE_FAILED', 'the chunk is compressed with zstd and the zstd-napi binding does not load here', {
      hint: 'install jarvis-db with its optional dependencies (npm ci builds zstd-napi) to read this archive',
    });
  }
  return new z.DecompressStream();
}
