/**
 * Starting one throwaway server of each kind on a free local port, in a directory of its own,
 * and waiting until it answers. The sandbox (index.ts) composes them; the Redis backup driver
 * also starts a lone redis-server here to load an RDB file.
 *
 * Every server is a real one from the machine's packages: PostgreSQL through initdb + pg_ctl
 * (as the `postgres` user when we are root, since initdb refuses root), redis-server, and
 * Chroma's Rust server through the chromadb package's `chroma run`. They listen on 127.0.0.1
 * only, and never on the machine's shared ports (a free port is never one already in use).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { JarvisError, messageOf } from '../errors.js';
import { isAlive, sleep, stopProcess } from '../platform/processes.js';
import { formatDuration } from '../render/format.js';
import { S3RVER_UPLOADS_EXTENSION } from './s3rver-uploads.js';

const run = promisify(execFile);

/** A port nobody listens on right now (the kernel's choice). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export function newPassword(): string {
  return randomBytes(18).toString('hex');
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, alive: () => boolean, log: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    if (!alive()) throw new JarvisError('SANDBOX', `${what} exited while starting: ${lastLogLines(log)}`);
    await sleep(100);
  }
  throw new JarvisError('SANDBOX', `${what} did not answer within ${formatDuration(timeoutMs)}: ${lastLogLines(log)}`);
}

function lastLogLines(file: string, n = 3): string {
  try {
    const lines = readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
    return lines.slice(-n).join(' | ') || '(no log output)';
  } catch {
    return '(no log)';
  }
}

/** Starts a detached child whose output goes to `log`; it outlives this process until stopped. */
function spawnDetached(command: string, args: string[], log: string, env: NodeJS.ProcessEnv = process.env): number {
  const fd = openSync(log, 'a', 0o600);
  try {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env });
    child.on('error', () => undefined);
    child.unref();
    if (!child.pid) throw new JarvisError('TOOL_MISSING', `cannot start ${command}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/**
 * A detached watcher that kills `pid` once `ownerPid` is gone, and exits by itself once `pid`
 * is: a throwaway server cannot outlive the process that needed it, even after kill -9.
 */
export function guardProcess(ownerPid: number, pid: number): void {
  const script = `
    const [owner, pid] = process.argv.slice(1).map(Number);
    const alive = (p) => { try { process.kill(p, 0); return true; } catch (e) { return e.code === 'EPERM'; } };
    setInterval(() => {
      if (!alive(pid)) process.exit(0);
      if (!alive(owner)) { try { process.kill(pid, 'SIGKILL'); } catch {} process.exit(0); }
    }, 500);
  `;
  const child = spawn(process.execPath, ['-e', script, String(ownerPid), String(pid)], { detached: true, stdio: 'ignore' });
  child.unref();
}

// ---------------------------------------------------------------- PostgreSQL

export interface PostgresServer {
  url: string;
  port: number;
  pid: number;
  dataDir: string;
  binDir: string;
  user: string;
  password: string;
  database: string;
}

/** The directory of the newest PostgreSQL server binaries: $JARVIS_PG_BINDIR, Debian's layout, or PATH's pg_config. */
export async function postgresBinDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.JARVIS_PG_BINDIR && existsSync(join(env.JARVIS_PG_BINDIR, 'initdb'))) return env.JARVIS_PG_BINDIR;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const majors = readdirSync(root).filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => b - a);
    for (const major of majors) {
      const bin = join(root, String(major), 'bin');
      if (existsSync(join(bin, 'initdb'))) return bin;
    }
  }
  try {
    const { stdout } = await run('pg_config', ['--bindir']);
    const bin = stdout.trim();
    if (existsSync(join(bin, 'initdb'))) return bin;
  } catch {
    // no pg_config on PATH
  }
  throw new JarvisError('TOOL_MISSING', 'no PostgreSQL server binaries (initdb, pg_ctl) found', {
    hint: 'install them (Debian: apt-get install postgresql) or set JARVIS_PG_BINDIR',
  });
}

export const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** initdb refuses to run as root: then every server command runs as `postgres`. */
export async function asServerUser(command: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return isRoot() ? await run('runuser', ['-u', 'postgres', '--', command, ...args]) : await run(command, args);
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string };
    const detail = (err.stderr || err.stdout || messageOf(e)).trim().split('\n').slice(-3).join(' | ');
    throw new JarvisError('SANDBOX', `${command.split('/').pop()} failed: ${detail}`, { cause: e });
  }
}

export async function serverUserIds(): Promise<{ uid: number; gid: number } | null> {
  if (!isRoot()) return null;
  const { stdout: uid } = await run('id', ['-u', 'postgres']).catch(() => {
    throw new JarvisError('SANDBOX', 'running as root, and there is no `postgres` user to run PostgreSQL as', { hint: 'install Debian\'s postgresql package, or run as an ordinary user' });
  });
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** A directory the server user can write into: `preferred`, or a private temporary one when an ancestor is closed to it (a 0700 home). */
export async function serverDataParent(preferred: string): Promise<{ dir: string; temporary: boolean }> {
  const ids = await serverUserIds();
  await mkdir(preferred, { recursive: true, mode: 0o700 });
  if (!ids) return { dir: preferred, temporary: false };
  await chown(preferred, ids.uid, ids.gid);
  const reachable = await run('runuser', ['-u', 'postgres', '--', 'test', '-w', preferred]).then(() => true, () => false);
  if (reachable) return { dir: preferred, temporary: false };
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const temp = await mkdtemp(join(tmpdir(), 'jarvis-db-pg-'));
  await chown(temp, ids.uid, ids.gid);
  return { dir: temp, temporary: true };
}

export interface PostgresStartOptions {
  /** Where the cluster lives (created). */
  dir: string;
  port?: number;
  /** An existing cluster to start again (startService), instead of initdb. */
  existing?: PostgresServer;
}

/**
 * Extra server settings: pg_stat_statements when its library is installed (health reads it);
 * WAL and replication settings that physical base backups (pg_basebackup) need, set explicitly
 * rather than trusting the defaults of one major version.
 */
function serverSettings(binDir: string, port: number): string {
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: "''",
    max_connections: '100',
    logging_collector: 'off',
    wal_level: 'replica',
    max_wal_senders: '8',
    max_replication_slots: '8',
  };
  if (existsSync(join(binDir, '..', 'lib', 'pg_stat_statements.so'))) settings.shared_preload_libraries = "'pg_stat_statements'";
  return '\n# jarvis-db sandbox\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

/**
 * The sandbox's whole pg_hba.conf: TCP on the loopback only (there is no socket), scram for
 * every database and for replication connections (pg_basebackup), nothing else.
 */
const SANDBOX_HBA = `# jarvis-db sandbox: loopback TCP only, scram-sha-256
# TYPE  DATABASE     USER  ADDRESS       METHOD
host    all          all   127.0.0.1/32  scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
`;

export function postmasterPid(dataDir: string): number {
  const first = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0];
  return Number(first);
}

export async function startPostgresServer(options: PostgresStartOptions): Promise<PostgresServer & { temporaryDir: boolean }> {
  const binDir = options.existing?.binDir ?? (await postgresBinDir());
  const { dir: parent, temporary } = options.existing
    ? { dir: dirname(options.existing.dataDir), temporary: false }
    : await serverDataParent(options.dir);
  const dataDir = options.existing?.dataDir ?? join(parent, 'data');
  const port = options.port ?? options.existing?.port ?? (await freePort());
  const user = options.existing?.user ?? 'jarvis';
  const password = options.existing?.password ?? newPassword();
  const database = options.existing?.database ?? 'jarvis';
  const log = join(parent, 'server.log');
  if (!options.existing) {
    const pwfile = join(parent, 'initdb.pw');
    await writeFile(pwfile, password + '\n', { mode: 0o600 });
    const ids = await serverUserIds();
    if (ids) await chown(pwfile, ids.uid, ids.gid);
    try {
      await asServerUser(join(binDir, 'initdb'), ['-D', dataDir, '-U', user, '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C.UTF-8', '--no-instructions']);
    } finally {
      await rm(pwfile, { force: true });
    }
    await appendFile(join(dataDir, 'postgresql.conf'), serverSettings(binDir, port));
    await writeFile(join(dataDir, 'pg_hba.conf'), SANDBOX_HBA);
  } else {
    const conf = join(dataDir, 'postgresql.conf');
    await writeFile(conf, (await readFile(conf, 'utf8')).replace(/^port = \d+$/m, `port = ${port}`));
  }
  await asServerUser(join(binDir, 'pg_ctl'), ['-D', dataDir, '-l', log, '-w', '-t', '60', 'start']);
  const pid = postmasterPid(dataDir);
  const serverUrl = `postgres://${user}:${password}@127.0.0.1:${port}`;
  if (!options.existing) {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: `${serverUrl}/postgres` });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
    } finally {
      await client.end();
    }
  }
  return { url: `${serverUrl}/${database}`, port, pid, dataDir, binDir, user, password, database, temporaryDir: temporary };
}

/** Fast shutdown (SIGINT: disconnect clients, checkpoint), then immediate, then kill. */
export async function stopPostgresServer(pid: number): Promise<void> {
  await stopProcess(pid, ['SIGINT', 'SIGQUIT'], 15_000);
}

// ---------------------------------------------------------------- Redis

export interface RedisServer {
  url: string;
  port: number;
  pid: number;
  password: string;
  dataDir: string;
}

export interface RedisStartOptions {
  dir: string;
  port?: number;
  /** The RDB file name in `dir` to load at start (and to write on SAVE). */
  dbfilename?: string;
  /** More `directive value` lines for redis.conf. */
  config?: Record<string, string>;
  existing?: RedisServer;
  /** Stop the server when this process dies (a restore's throwaway server). */
  ownerPid?: number;
  /** How long loading may take before the server must answer (default 60 s; a large RDB takes longer). */
  startTimeoutMs?: number;
}

async function redisAnswers(port: number, password: string): Promise<boolean> {
  const { Socket } = await import('node:net');
  return new Promise((resolve) => {
    const socket = new Socket();
    let reply = '';
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (d) => {
      reply += d.toString('latin1');
      if (reply.includes('+PONG')) done(true);
      else if (/-(LOADING|ERR|WRONGPASS|NOAUTH)/.test(reply)) done(false);
    });
    socket.connect(port, '127.0.0.1', () => socket.write(`AUTH ${password}\r\nPING\r\n`));
  });
}

export async function startRedisServer(options: RedisStartOptions): Promise<RedisServer> {
  const dataDir = options.existing?.dataDir ?? options.dir;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const port = options.port ?? options.existing?.port ?? (await freePort());
  const password = options.existing?.password ?? newPassword();
  const conf = join(dataDir, 'redis.conf');
  const log = join(dataDir, 'redis.log');
  // The password lives in a 0600 file, not on the command line where ps would show it.
  const directives: Record<string, string> = {
    bind: '127.0.0.1',
    port: String(port),
    dir: dataDir,
    dbfilename: options.dbfilename ?? 'dump.rdb',
    save: '""',
    appendonly: 'no',
    requirepass: password,
    'repl-diskless-sync-delay': '0',
    daemonize: 'no',
    logfile: log,
    ...options.config,
  };
  await writeFile(conf, Object.entries(directives).map(([k, v]) => `${k} ${v}`).join('\n') + '\n', { mode: 0o600 });
  const pid = spawnDetached('redis-server', [conf], log);
  if (options.ownerPid !== undefined) guardProcess(options.ownerPid, pid);
  await waitUntil('redis-server', () => redisAnswers(port, password), options.startTimeoutMs ?? 60_000, () => isAlive(pid), log);
  return { url: `redis://default:${password}@127.0.0.1:${port}/0`, port, pid, password, dataDir };
}

export async function stopRedisServer(pid: number): Promise<void> {
  await stopProcess(pid, ['SIGTERM'], 10_000);
}

// ---------------------------------------------------------------- Chroma

export interface ChromaServer {
  url: string;
  port: number;
  pid: number;
  dataDir: string;
}

/** `node_modules/.bin/chroma` of the chromadb package this project depends on. */
export function chromaCommand(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('chromadb');
  } catch (e) {
    throw new JarvisError('TOOL_MISSING', 'the chromadb package is not installed', { cause: e, hint: 'run npm ci in the jarvis-db folder' });
  }
  // entry: …/node_modules/chromadb/dist/…; the bin link sits in …/node_modules/.bin.
  let dir = dirname(entry);
  while (dir !== dirname(dir) && !dir.endsWith(`${'/'}node_modules`)) dir = dirname(dir);
  const bin = join(dir, '.bin', 'chroma');
  if (existsSync(bin)) return bin;
  throw new JarvisError('TOOL_MISSING', `no chroma command at ${bin}`, { hint: 'run npm ci in the jarvis-db folder' });
}

async function chromaAnswers(port: number): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${port}/api/v2/heartbeat`, { signal: AbortSignal.timeout(1000) });
  return response.ok;
}

/** A Chroma server keeping its data in `dir/data` (its log beside it, out of the data). */
export async function startChromaServer(options: { dir: string; port?: number; existing?: ChromaServer }): Promise<ChromaServer> {
  const dir = options.existing ? dirname(options.existing.dataDir) : options.dir;
  const dataDir = join(dir, 'data');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const port = options.port ?? options.existing?.port ?? (await freePort());
  const log = join(dir, 'server.log');
  const pid = spawnDetached(process.execPath, [chromaCommand(), 'run', '--path', dataDir, '--port', String(port), '--host', '127.0.0.1'], log, { ...process.env, NO_COLOR: '1' });
  await waitUntil('chroma', () => chromaAnswers(port), 90_000, () => isAlive(pid), log);
  return { url: `http://127.0.0.1:${port}`, port, pid, dataDir };
}

export async function stopChromaServer(pid: number): Promise<void> {
  await stopProcess(pid, ['SIGTERM'], 10_000);
}

// ---------------------------------------------------------------- S3 (s3rver)

export interface S3Server {
  /** The endpoint URL (path-style addressing). */
  url: string;
  port: number;
  pid: number;
  dataDir: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** The s3rver package's directory (it is a dependency: the sandbox is part of the product). */
function s3rverDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(dirname(require.resolve('s3rver')));
  } catch (e) {
    throw new JarvisError('TOOL_MISSING', 'the s3rver package is not installed', { cause: e, hint: 'run npm ci in the jarvis-db folder' });
  }
}

async function s3Answers(port: number): Promise<boolean> {
  // Any HTTP answer (an anonymous request is refused with 403) means it is listening.
  const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
  await response.arrayBuffer();
  return response.status > 0;
}

/**
 * An S3-compatible server (s3rver) keeping its objects in `dir/data`, with one bucket. s3rver
 * knows one fixed key pair; the launcher replaces it with a fresh one, so that a secret key is
 * a real secret (the tests grep every output for it) and an unknown key id is refused. The
 * secret reaches the child through its environment, never its command line. What s3rver lacks of
 * S3 (listing and aborting multipart uploads, deep and untruncated listings) is added (s3rver-uploads.ts).
 */
export async function startS3Server(options: { dir: string; bucket?: string; port?: number; existing?: S3Server; ownerPid?: number }): Promise<S3Server> {
  const dir = options.existing ? dirname(options.existing.dataDir) : options.dir;
  const dataDir = join(dir, 'data');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const port = options.port ?? options.existing?.port ?? (await freePort());
  const bucket = options.existing?.bucket ?? options.bucket ?? 'jarvis-backups';
  const accessKeyId = options.existing?.accessKeyId ?? `JARVIS${randomBytes(7).toString('hex').toUpperCase()}`;
  const secretAccessKey = options.existing?.secretAccessKey ?? randomBytes(20).toString('base64url');
  const log = join(dir, 'server.log');
  const script = `
    const { join } = require('node:path');
    const [root, dataDir, port, bucket, keyId] = process.argv.slice(1);
    const S3rver = require(join(root, 'lib', 's3rver.js'));
    const account = require(join(root, 'lib', 'models', 'account.js')).DUMMY_ACCOUNT;
    account.revokeAccessKey('S3RVER');
    account.createKeyPair(keyId, process.env.S3_SECRET);
    delete process.env.S3_SECRET;
    const server = new S3rver({ directory: dataDir, address: '127.0.0.1', port: Number(port), silent: true, vhostBuckets: false, configureBuckets: [{ name: bucket }] });
    ${S3RVER_UPLOADS_EXTENSION}(server, join(root, 'lib'), dataDir, keyId);
    server.run().catch((e) => { console.error(e && e.message); process.exit(1); });
  `;
  const pid = spawnDetached(process.execPath, ['-e', script, s3rverDir(), dataDir, String(port), bucket, accessKeyId], log, { ...process.env, S3_SECRET: secretAccessKey });
  if (options.ownerPid !== undefined) guardProcess(options.ownerPid, pid);
  await waitUntil('s3rver', () => s3Answers(port), 30_000, () => isAlive(pid), log);
  return { url: `http://127.0.0.1:${port}`, port, pid, dataDir, bucket, region: 'us-east-1', accessKeyId, secretAccessKey };
}

export async function stopS3Server(pid: number): Promise<void> {
  await stopProcess(pid, ['SIGTERM'], 10_000);
}
