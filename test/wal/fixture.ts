/**
 * A local repository with archived WAL and base backups, without a server (test/wal/prune-run,
 * test/wal/verify): base backups are catalog entries whose manifests carry a WAL start as
 * physical backups' do; the WAL is fake 1 MiB segments pushed as `wal push` does (the segment
 * size is read from the archive).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadConfig } from '../../src/config/load.js';
import type { Desired } from '../../src/config/types.js';
import { BackupWriter } from '../../src/backup/storage.js';
import { openRepositories } from '../../src/storage/repositories.js';
import { listArchive, pushWalFile, walStore } from '../../src/wal/archive.js';
import { segmentName } from '../../src/wal/segments.js';

export const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
export const MB1 = 1024 * 1024;
export const seg = (n: number) => segmentName(1, BigInt(n), MB1);
/** The start LSN of a base backup that starts in segment `n` (1 MiB segments). */
export const lsnIn = (n: number) => `0/${(n * MB1 + 0x28).toString(16).toUpperCase()}`;
export const LAST = 0x0c;

export function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A base backup of `base` starting in segment `start`, taken on day `day` of November 2026. */
export async function fakeBase(desired: Desired, day: number, start: number, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const writer = await BackupWriter.begin({ repository: openRepositories(desired, env)[0]!, service: 'postgres', schedule: 'base', now: new Date(Date.UTC(2026, 10, day, 3, 0, 1)) });
  await writer.writeStream('base.tar', Readable.from([Buffer.from(`base backup of day ${day}`)]));
  const entry = await writer.publish({ method: 'pg_basebackup', extra: { timeline: 1, startLsn: lsnIn(start), stopLsn: lsnIn(start + 1) } }, new Date(Date.UTC(2026, 10, day, 3, 0, 5)));
  return entry.manifest.id;
}

/**
 * A config (keep last 1 of a physical schedule, pitr on), segments 0x01–LAST, a backup label in 0x03, a history file, and bases in 0x03, 0x06, 0x09.
 * `repositories` (YAML lines) puts them there instead of the storage path; `env` then carries what they need.
 */
export async function setup(dir: string, options: { repositories?: string[]; env?: Record<string, string> } = {}): Promise<{ env: Record<string, string>; desired: Desired; bases: string[] }> {
  const config = join(dir, 'jarvis-db.yaml');
  await writeFile(config, [
    'version: 1', 'project: jarvis', 'services:', '  postgres: { url: "postgres://jarvis@127.0.0.1:1/jarvis", pitr: { enabled: true } }', 'storage:', '  path: ./backups',
    ...(options.repositories ?? []),
    'backups:', '  - { name: base, service: postgres, method: physical, cron: "0 3 1 1 *", keep: { last: 1 } }', '',
  ].join('\n'));
  const env = { ...options.env, JARVIS_DB_CONFIG: config };
  const desired = await loadConfig(config, { ...process.env, ...env });
  const pgWal = join(dir, 'pg_wal');
  await mkdir(pgWal);
  const files = [...Array.from({ length: LAST }, (_, i) => seg(i + 1)), `${seg(3)}.00000028.backup`, '00000002.history'];
  for (const name of files) {
    const data = name.endsWith('.backup') || name.endsWith('.history') ? Buffer.from(`${name}\n`) : Buffer.concat([randomBytes(MB1 / 4), Buffer.alloc(MB1 - MB1 / 4)]);
    await writeFile(join(pgWal, name), data);
    await pushWalFile(desired, join(pgWal, name), { env: { ...process.env, ...env } });
  }
  const all = { ...process.env, ...env };
  const bases = [await fakeBase(desired, 22, 3, all), await fakeBase(desired, 23, 6, all), await fakeBase(desired, 24, 9, all)];
  return { env, desired, bases };
}

export async function archived(desired: Desired, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  return (await listArchive(walStore(openRepositories(desired, env)[0]!))).flatMap((tl) => tl.names).sort();
}
