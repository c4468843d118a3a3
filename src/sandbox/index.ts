/**
 * The sandbox: throwaway PostgreSQL, Redis, Chroma and S3 (s3rver) servers in one directory, for the demo
 * and for every integration test. `startSandbox` records what it started in `DIR/sandbox.json`
 * (0600: the URLs carry passwords) as each server comes up, so that `stopSandbox` (or the
 * watchdog, when the owning process dies without stopping them) always knows what to stop.
 * `stopSandbox` leaves no process and no data behind. It never touches the machine's own
 * services: every server listens on a fresh port of 127.0.0.1 with its own data.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { JarvisError, messageOf } from '../errors.js';
import { isAlive, stopProcess } from '../platform/processes.js';
import {
  startChromaServer, startPostgresServer, startRedisServer, startS3Server, stopChromaServer, stopPostgresServer, stopRedisServer, stopS3Server,
  type ChromaServer, type PostgresServer, type RedisServer, type S3Server,
} from '../scratch/servers.js';

export { startRedisServer, startPostgresServer, startChromaServer, startS3Server, freePort } from '../scratch/servers.js';
export type { ChromaServer, PostgresServer, RedisServer, S3Server } from '../scratch/servers.js';

export type SandboxService = 'postgres' | 'redis' | 'chroma' | 's3';
export const SANDBOX_SERVICES: readonly SandboxService[] = ['postgres', 'redis', 'chroma', 's3'];

export interface SandboxState {
  formatVersion: 1;
  dir: string;
  createdAt: string;
  /** The process whose death makes the watchdog stop everything (tests); absent for `sandbox up`. */
  ownerPid?: number;
  watchdogPid?: number;
  postgres?: PostgresServer & { temporaryDir: boolean };
  redis?: RedisServer;
  chroma?: ChromaServer;
  s3?: S3Server;
  /** Services stopped with stopService (their data kept for startService). */
  stopped: SandboxService[];
}

const STATE_FILE = 'sandbox.json';
const SECRETS_DIR = 'env';
/** Where the demo (and anyone following it) keeps the storage of the sandbox's servers: their backups mean nothing once the servers are gone. */
export const SANDBOX_STORAGE_DIR = 'storage';

export const ENV_NAMES: Record<Exclude<SandboxService, 's3'>, string> = {
  postgres: 'JARVIS_PG_URL',
  redis: 'JARVIS_REDIS_URL',
  chroma: 'JARVIS_CHROMA_URL',
};

export async function readSandbox(dir: string): Promise<SandboxState | null> {
  try {
    return JSON.parse(await readFile(join(resolve(dir), STATE_FILE), 'utf8')) as SandboxState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new JarvisError('SANDBOX', `cannot read ${join(dir, STATE_FILE)}: ${messageOf(e)}`, { cause: e });
  }
}

async function writeState(state: SandboxState): Promise<void> {
  await writeFile(join(state.dir, STATE_FILE), JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
}

/** The pid of each service that is meant to be running. */
function runningPids(state: SandboxState): { service: SandboxService; pid: number }[] {
  return SANDBOX_SERVICES
    .filter((s) => state[s] && !state.stopped.includes(s))
    .map((s) => ({ service: s, pid: state[s]!.pid }));
}

/**
 * A detached process that polls the owner and, once it is gone, kills every server recorded
 * in the state file. Plain JavaScript in `node -e`, so it runs from sources and from dist alike.
 */
function startWatchdog(ownerPid: number, dir: string): number {
  const script = `
    const fs = require('node:fs');
    const [owner, file] = process.argv.slice(1);
    const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; } };
    const tick = () => {
      let state;
      try { state = JSON.parse(fs.readFileSync(file, 'utf8')); } catch { process.exit(0); }
      if (state.watchdogPid !== undefined && state.watchdogPid !== process.pid) process.exit(0);
      if (alive(Number(owner))) return;
      for (const s of ['postgres', 'redis', 'chroma', 's3']) {
        if (state[s] && alive(state[s].pid)) { try { process.kill(state[s].pid, s === 'postgres' ? 'SIGQUIT' : 'SIGKILL'); } catch {} }
      }
      setTimeout(() => {
        for (const s of ['postgres', 'redis', 'chroma', 's3']) if (state[s] && alive(state[s].pid)) { try { process.kill(state[s].pid, 'SIGKILL'); } catch {} }
        process.exit(0);
      }, 3000);
      clearInterval(timer);
    };
    const timer = setInterval(tick, 500);
  `;
  const child = spawn(process.execPath, ['-e', script, String(ownerPid), join(dir, STATE_FILE)], { detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid!;
}

async function writeSecrets(state: SandboxState): Promise<void> {
  const secrets = join(state.dir, SECRETS_DIR);
  await mkdir(secrets, { recursive: true, mode: 0o700 });
  const env = sandboxEnv(state);
  for (const [name, value] of Object.entries(env)) await writeFile(join(secrets, name), value, { mode: 0o600 });
}

export interface StartOptions {
  dir: string;
  services?: readonly SandboxService[];
  /** Stop everything when this process dies (tests pass their own pid). */
  ownerPid?: number;
}

/** Retries a start on a new port: another process may take the free port before the server binds it. */
async function withPortRetry<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await start();
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

export async function startSandbox(options: StartOptions): Promise<SandboxState> {
  const dir = resolve(options.dir);
  const services = options.services ?? SANDBOX_SERVICES;
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const existing = await readSandbox(dir);
  if (existing && runningPids(existing).some(({ pid }) => isAlive(pid))) {
    throw new JarvisError('SANDBOX', `a sandbox is already running in ${dir}`, { hint: `jarvis-db sandbox down --dir ${dir}` });
  }
  if (existing) {
    await stopSandbox(dir);
    await mkdir(dir, { recursive: true, mode: 0o755 });
  }
  const state: SandboxState = { formatVersion: 1, dir, createdAt: new Date().toISOString(), stopped: [] };
  if (options.ownerPid !== undefined) state.ownerPid = options.ownerPid;
  await writeState(state);
  if (options.ownerPid !== undefined) {
    state.watchdogPid = startWatchdog(options.ownerPid, dir);
    await writeState(state);
  }
  // Each server is recorded the moment it answers, so a failure of another leaves nothing unknown.
  let writes = Promise.resolve();
  const record = (update: (s: SandboxState) => void) => {
    update(state);
    writes = writes.then(() => writeState(state));
    return writes;
  };
  const starts: Promise<unknown>[] = [];
  if (services.includes('postgres')) {
    starts.push(withPortRetry(async () => {
      await rm(join(dir, 'postgres'), { recursive: true, force: true });
      return startPostgresServer({ dir: join(dir, 'postgres') });
    }).then((pg) => record((s) => { s.postgres = pg; })));
  }
  if (services.includes('redis')) {
    starts.push(withPortRetry(() => startRedisServer({ dir: join(dir, 'redis') })).then((r) => record((s) => { s.redis = r; })));
  }
  if (services.includes('chroma')) {
    starts.push(withPortRetry(async () => {
      await rm(join(dir, 'chroma'), { recursive: true, force: true });
      return startChromaServer({ dir: join(dir, 'chroma') });
    }).then((c) => record((s) => { s.chroma = c; })));
  }
  if (services.includes('s3')) {
    starts.push(withPortRetry(async () => {
      await rm(join(dir, 's3'), { recursive: true, force: true });
      return startS3Server({ dir: join(dir, 's3') });
    }).then((s3) => record((s) => { s.s3 = s3; })));
  }
  const results = await Promise.allSettled(starts);
  await writes;
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    await stopSandbox(dir).catch(() => undefined);
    const reason = failure.reason as unknown;
    if (reason instanceof JarvisError) throw reason;
    throw new JarvisError('SANDBOX', `the sandbox could not start: ${messageOf(reason)}`, { cause: reason });
  }
  await writeSecrets(state);
  return state;
}

async function stopOne(service: SandboxService, pid: number): Promise<void> {
  if (service === 'postgres') await stopPostgresServer(pid);
  else if (service === 'redis') await stopRedisServer(pid);
  else if (service === 'chroma') await stopChromaServer(pid);
  else await stopS3Server(pid);
}

/** Stops every server of the sandbox in `dir` and removes their data and `storage/`. Nothing running is not an error. */
export async function stopSandbox(dir: string): Promise<SandboxState | null> {
  const state = await readSandbox(dir);
  if (!state) return null;
  if (state.watchdogPid !== undefined) await stopProcess(state.watchdogPid, ['SIGKILL'], 2_000);
  await Promise.all(runningPids(state).map(({ service, pid }) => stopOne(service, pid)));
  const root = resolve(dir);
  await Promise.all([
    rm(join(root, 'postgres'), { recursive: true, force: true }),
    state.postgres?.temporaryDir ? rm(resolve(state.postgres.dataDir, '..'), { recursive: true, force: true }) : undefined,
    rm(join(root, 'redis'), { recursive: true, force: true }),
    rm(join(root, 'chroma'), { recursive: true, force: true }),
    rm(join(root, 's3'), { recursive: true, force: true }),
    rm(join(root, SECRETS_DIR), { recursive: true, force: true }),
    rm(join(root, SANDBOX_STORAGE_DIR), { recursive: true, force: true }),
  ]);
  await rm(join(root, STATE_FILE), { force: true });
  // The directory goes too when nothing else is in it (sandbox up made it); what is not ours stays.
  await rmdir(root).catch(() => undefined);
  return state;
}

/** What `sandbox down` left in `dir`: entries the sandbox did not make (empty when the directory is gone). */
export async function sandboxLeftovers(dir: string): Promise<string[]> {
  return (await readdir(resolve(dir)).catch(() => [] as string[])).sort();
}

/** Stops one service and keeps its data, so that `startService` brings it back as it was. */
export async function stopService(dir: string, service: SandboxService): Promise<void> {
  const state = await readSandbox(dir);
  const server = state?.[service];
  if (!state || !server) throw new JarvisError('SANDBOX', `the sandbox in ${dir} has no ${service}`);
  if (!state.stopped.includes(service)) {
    await stopOne(service, server.pid);
    state.stopped.push(service);
    await writeState(state);
  }
}

/** Starts a service stopped by `stopService` again, on the same port with the same data. */
export async function startService(dir: string, service: SandboxService): Promise<SandboxState> {
  const state = await readSandbox(dir);
  if (!state || !state[service]) throw new JarvisError('SANDBOX', `the sandbox in ${dir} has no ${service}`);
  if (!state.stopped.includes(service)) return state;
  if (service === 'postgres') {
    const previous = state.postgres!;
    state.postgres = { ...(await startPostgresServer({ dir: resolve(previous.dataDir, '..'), existing: previous })), temporaryDir: previous.temporaryDir };
  } else if (service === 'redis') {
    state.redis = await startRedisServer({ dir: state.redis!.dataDir, existing: state.redis! });
  } else if (service === 'chroma') {
    state.chroma = await startChromaServer({ dir: resolve(state.chroma!.dataDir, '..'), existing: state.chroma! });
  } else {
    state.s3 = await startS3Server({ dir: resolve(state.s3!.dataDir, '..'), existing: state.s3! });
  }
  state.stopped = state.stopped.filter((s) => s !== service);
  await writeState(state);
  return state;
}

/**
 * The environment the config (jarvis-db.yaml) reads: JARVIS_PG_URL and friends, with credentials;
 * for S3 the endpoint and bucket, and the standard AWS variables the SDK's credential chain reads.
 */
export function sandboxEnv(state: SandboxState): Record<string, string> {
  const env: Record<string, string> = {};
  for (const service of ['postgres', 'redis', 'chroma'] as const) {
    const server = state[service];
    if (server) env[ENV_NAMES[service]] = server.url;
  }
  if (state.s3) {
    env.JARVIS_S3_ENDPOINT = state.s3.url;
    env.JARVIS_S3_BUCKET = state.s3.bucket;
    env.AWS_ACCESS_KEY_ID = state.s3.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = state.s3.secretAccessKey;
    env.AWS_REGION = state.s3.region;
  }
  return env;
}

/**
 * Shell lines for `eval "$(jarvis-db sandbox env --dir DIR)"`. The credentials stay in 0600
 * files under DIR/env and are read by the shell, so no password is ever printed.
 */
export function sandboxEnvScript(state: SandboxState): string {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return Object.keys(sandboxEnv(state))
    .map((name) => `export ${name}="$(cat ${quote(join(state.dir, SECRETS_DIR, name))})"`)
    .join('\n');
}

/** Per service: whether its server process is alive. */
export function sandboxHealth(state: SandboxState): Record<SandboxService, 'running' | 'stopped' | 'dead' | 'absent'> {
  const out = {} as Record<SandboxService, 'running' | 'stopped' | 'dead' | 'absent'>;
  for (const s of SANDBOX_SERVICES) {
    const server = state[s];
    out[s] = !server ? 'absent' : state.stopped.includes(s) ? 'stopped' : isAlive(server.pid) ? 'running' : 'dead';
  }
  return out;
}
