/**
 * The checks a JSON Schema cannot make: cron expressions parse in their timezone, timezones
 * exist, names are unique (policies across files), a backup's service is configured and its
 * method fits the service, keep rules keep something, settings fit a policy's action, URLs
 * have the right scheme, thresholds are ordered. Pure: values in, problems out. Values may
 * still be of the wrong type (the schema errors are reported too), so everything is guarded.
 */
import { dirname, resolve } from 'node:path';
import { checkSpec, similarChecks } from '../health/checks.js';
import { redactUrl } from '../services/redact.js';
import { urlSyntaxMessage } from '../services/url-syntax.js';
import { cronProblem, isValidTimezone } from './cron.js';
import type { Path, Position, Problems } from './problems.js';
import type { SourceFile } from './yaml-source.js';

export interface Located { value: unknown; source: SourceFile; path: Path }

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export const METHODS: Record<string, { allowed: string[]; default?: string }> = {
  postgres: { allowed: ['logical', 'physical'], default: 'logical' },
  redis: { allowed: ['rdb', 'logical'], default: 'rdb' },
  chroma: { allowed: ['logical', 'physical'], default: 'logical' },
};

const URL_SCHEMES: Record<string, string[]> = {
  postgres: ['postgres:', 'postgresql:'],
  redis: ['redis:', 'rediss:'],
  chroma: ['http:', 'https:'],
};

const KEEP_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly', 'within'] as const;

/** Keys that name a secret (compared without `_` and `-`): they never belong in the file. */
const CREDENTIAL_KEY = /(password|passwd|secret|token|credential|accesskey|apikey|privatekey)/i;
export const CREDENTIALS_MESSAGE = 'credentials never go in the file: they come from the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity)';

/** Where another value is, for "already defined at ..." messages: `line 12` in the same file. */
function where(source: SourceFile, pos: Position | undefined, from?: SourceFile): string {
  if (from && from.file === source.file) return pos ? `line ${pos.line}` : 'this file';
  return pos ? `${source.display}:${pos.line}:${pos.col}` : source.display;
}

export class SemanticChecker {
  constructor(private readonly problems: Problems) {}

  private report(source: SourceFile, path: Path, message: string, atKey = false): void {
    if (this.problems.covers(source.fileIndex, path)) return;
    this.problems.add({ file: source.display, fileIndex: source.fileIndex, position: source.locate(path, atKey), path, message });
  }

  checkServices(config: Obj, source: SourceFile): void {
    const services = isObj(config.services) ? config.services : {};
    for (const [name, schemes] of Object.entries(URL_SCHEMES)) {
      const service = services[name];
      if (!isObj(service) || typeof service.url !== 'string' || service.url === '') continue;
      const path = ['services', name, 'url'];
      if (this.checkUrlSyntax(source, path, service.url)) continue;
      const expected = schemes.map((s) => `${s}//`).join(' or ');
      let url: URL;
      try {
        url = new URL(service.url);
      } catch {
        this.report(source, path, `${JSON.stringify(redactUrl(service.url))} is not a valid URL (expected ${schemes.map((s) => `${s}//…`).join(' or ')})`);
        continue;
      }
      if (!schemes.includes(url.protocol) || !service.url.slice(url.protocol.length).startsWith('//')) {
        this.report(source, path, `a ${name} URL must start with ${expected} (got ${url.protocol}${service.url.slice(url.protocol.length).startsWith('//') ? '//' : ''}…)`);
        continue;
      }
      if (name === 'redis' && url.pathname.length > 1) {
        // The path is not echoed: in a URL that is not what it seems it may be part of a password.
        const db = url.pathname.slice(1);
        if (!/^(0|[1-9][0-9]?)$/.test(db) || Number(db) > 15) this.report(source, path, 'the database in a redis URL is a number from 0 to 15 (the path after the host is not one)');
      }
    }
    const health = isObj(config.health) ? config.health : {};
    const alerts = isObj(health.alerts) ? health.alerts : {};
    if (typeof alerts.webhook === 'string') this.checkUrlSyntax(source, ['health', 'alerts', 'webhook'], alerts.webhook);
  }

  /**
   * Reports a URL whose userinfo, host or port a client would read otherwise than written
   * (an unencoded `@ / # ?` in a password), naming no part of it. True when it reported.
   */
  private checkUrlSyntax(source: SourceFile, path: Path, url: string): boolean {
    const message = urlSyntaxMessage(url);
    if (message === undefined) return false;
    this.report(source, path, message);
    return true;
  }

  /**
   * A `service: all` entry (a recovery point, src/backup/points.ts): no settings of a single
   * service's backups, and members naming schedules of their service (or, without members, at
   * least one schedule to take).
   */
  checkPointSchedule(backup: Obj, schedules: unknown[], source: SourceFile, at: (key: string) => Path): void {
    for (const key of ['keep', 'verify', 'format', 'jobs', 'compression', 'method', 'allowPruneLast']) {
      if (backup[key] === undefined) continue;
      this.report(source, at(key), key === 'keep'
        ? 'keep does not apply to service: all: a recovery point is kept while its PostgreSQL member is kept by its own schedule\'s keep rules; remove keep'
        : `${key} does not apply to service: all: set it on the member schedule; remove ${key}`);
    }
    const others = schedules.filter((b): b is Obj => isObj(b) && typeof b.name === 'string' && b.service !== 'all');
    if (isObj(backup.members)) {
      for (const [service, name] of Object.entries(backup.members)) {
        if (typeof name !== 'string') continue;
        const found = others.find((b) => b.name === name);
        if (!found) {
          const mine = others.filter((b) => b.service === service).map((b) => String(b.name));
          this.report(source, [...at('members'), service], `no backup schedule named "${name}" (${service} schedules: ${mine.join(', ') || 'none'})`);
        } else if (found.service !== service) {
          this.report(source, [...at('members'), service], `schedule "${name}" backs up ${String(found.service)}, not ${service}`);
        }
      }
    } else if (backup.members === undefined && others.length === 0) {
      this.report(source, at('service'), 'a recovery point (service: all) takes one backup of each service\'s schedule: add a backup schedule for postgres, redis or chroma');
    }
  }

  checkBackups(config: Obj, source: SourceFile): void {
    const services = isObj(config.services) ? config.services : {};
    const seen = new Map<string, Path>();
    list(config.backups).forEach((backup, index) => {
      if (!isObj(backup)) return;
      const at = (key: string): Path => ['backups', index, key];
      if (typeof backup.name === 'string') {
        const first = seen.get(backup.name);
        if (first) this.report(source, at('name'), `"${backup.name}" is already the name of ${fmt(first.slice(0, -1))} (${where(source, source.locate(first), source)}); schedule names must be unique`);
        else seen.set(backup.name, at('name'));
      }
      const service = typeof backup.service === 'string' ? backup.service : undefined;
      if (service && service in URL_SCHEMES && !isObj(services[service])) {
        const configured = Object.keys(URL_SCHEMES).filter((s) => isObj(services[s]));
        this.report(source, at('service'), `service "${service}" is not configured under services (configured: ${configured.join(', ') || 'none'})`);
      }
      const timezone = backup.timezone === undefined ? 'UTC' : backup.timezone;
      let timezoneOk = typeof timezone === 'string';
      if (typeof timezone === 'string' && !isValidTimezone(timezone)) {
        timezoneOk = false;
        this.report(source, at('timezone'), `"${timezone}" is not a valid IANA timezone (such as UTC, Europe/Berlin or America/New_York)`);
      }
      if (typeof backup.cron === 'string' && timezoneOk) {
        const problem = cronProblem(backup.cron, timezone as string);
        if (problem) this.report(source, at('cron'), `"${backup.cron}" is not a valid cron expression (${problem})`);
      }
      if (service === 'all') {
        this.checkPointSchedule(backup, list(config.backups), source, at);
        return;
      }
      if (backup.members !== undefined) this.report(source, at('members'), 'members applies to service: all (a recovery point) only');
      if (isObj(backup.keep)) this.checkKeepsSomething(backup.keep, source, at('keep'));
      if (service && service in METHODS) {
        const methods = METHODS[service]!;
        if (typeof backup.method === 'string' && !methods.allowed.includes(backup.method)) {
          this.report(source, at('method'), methods.allowed.length === 0
            ? `${service} backups have no method setting (they use pg_dump; choose format instead)`
            : `method "${backup.method}" is not available for ${service} (expected one of: ${methods.allowed.join(', ')})`);
        }
        if (service !== 'postgres') {
          for (const key of ['format', 'jobs'] as const) {
            if (backup[key] !== undefined) this.report(source, at(key), `${key} applies to postgres backups only`, true);
          }
        }
        if (service === 'postgres' && backup.method === 'physical') {
          // pg_basebackup writes tar files of the whole cluster: pg_dump's settings do not apply.
          for (const key of ['format', 'jobs'] as const) {
            if (backup[key] !== undefined) this.report(source, at(key), `${key} applies to method logical (pg_dump) only; a physical backup (pg_basebackup) is always tar files of the whole cluster: remove ${key}`);
          }
        }
        if (service === 'chroma' && backup.method === 'physical') {
          const chroma = services.chroma;
          if (isObj(chroma) && typeof chroma.path !== 'string') this.report(source, at('method'), 'the physical method archives the data directory: set services.chroma.path');
        }
      }
    });
    // Point-in-time recovery replays archived WAL onto a physical base backup (src/wal).
    const pg = services.postgres;
    if (isObj(pg) && isObj(pg.pitr) && pg.pitr.enabled === true
      && !list(config.backups).some((b) => isObj(b) && b.service === 'postgres' && b.method === 'physical')) {
      this.report(source, ['services', 'postgres', 'pitr', 'enabled'], 'point-in-time recovery replays WAL onto a physical base backup: add a backups schedule with service: postgres and method: physical');
    }
  }

  /**
   * Credentials under a repository (accessKeyId, secretAccessKey, password, ...) are refused
   * before the schema speaks (its "unknown key" would be less clear), and their value is never
   * quoted: they come from the AWS chain.
   */
  checkRepositoryCredentials(config: Obj, source: SourceFile): void {
    const walk = (value: unknown, path: Path): void => {
      if (!isObj(value)) return;
      for (const [key, child] of Object.entries(value)) {
        if (CREDENTIAL_KEY.test(key.replace(/[_-]/g, ''))) this.report(source, [...path, key], CREDENTIALS_MESSAGE, true);
        else walk(child, [...path, key]);
      }
    };
    list(config.repositories).forEach((repository, index) => walk(repository, ['repositories', index]));
  }

  checkRepositories(config: Obj, source: SourceFile): void {
    if (!Array.isArray(config.repositories)) return;
    const names = new Map<string, Path>();
    const places = new Map<string, Path>();
    let enabled = 0;
    config.repositories.forEach((repository, index) => {
      if (!isObj(repository)) return;
      const at = (...keys: string[]): Path => ['repositories', index, ...keys];
      if (repository.enabled !== false) enabled++;
      if (typeof repository.name === 'string') {
        const first = names.get(repository.name);
        if (first) this.report(source, at('name'), `"${repository.name}" is already the name of ${fmt(first.slice(0, -1))} (${where(source, source.locate(first), source)}); repository names must be unique`);
        else names.set(repository.name, at('name'));
      }
      const s3 = isObj(repository.s3) ? repository.s3 : undefined;
      if ((repository.path === undefined) === (repository.s3 === undefined)) {
        this.report(source, at(), repository.path === undefined
          ? 'a repository needs one of path (a local directory) or s3 (a bucket)'
          : 'a repository is either a local directory (path) or a bucket (s3), not both: make two repositories');
      }
      let place: string | undefined;
      if (typeof repository.path === 'string') place = `path ${resolve(dirname(source.file), repository.path)}`;
      if (s3 && typeof s3.bucket === 'string') {
        place = `s3 ${typeof s3.endpoint === 'string' ? s3.endpoint : ''} ${s3.bucket}/${typeof s3.prefix === 'string' ? s3.prefix.replace(/^\/+|\/+$/g, '') : ''}`;
      }
      if (place !== undefined && repository.enabled !== false) {
        const first = places.get(place);
        if (first) this.report(source, at(), `is the same place as ${fmt(first)} (${where(source, source.locate(first), source)}): two repositories must not share a directory or bucket prefix`);
        else places.set(place, at());
      }
      if (s3 && typeof s3.endpoint === 'string' && s3.endpoint !== '') {
        const path = at('s3', 'endpoint');
        if (this.checkUrlSyntax(source, path, s3.endpoint)) return;
        let url: URL | undefined;
        try { url = new URL(s3.endpoint); } catch { url = undefined; }
        if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !s3.endpoint.slice(url.protocol.length).startsWith('//')) {
          this.report(source, path, `${JSON.stringify(redactUrl(s3.endpoint))} is not an http:// or https:// URL (an S3-compatible server such as http://127.0.0.1:9000; leave it empty for AWS itself)`);
        }
      }
      if (isObj(repository.keep)) this.checkKeepsSomething(repository.keep, source, at('keep'));
    });
    if (config.repositories.length > 0 && enabled === 0) {
      this.report(source, ['repositories'], 'every repository is disabled (enabled: false): backups would have nowhere to go; enable at least one', true);
    }
  }

  private checkKeepsSomething(keep: Obj, source: SourceFile, path: Path): void {
    const wellTyped = Object.entries(keep).every(([k, v]) => (k === 'within' ? typeof v === 'string' : typeof v === 'number'));
    const keepsSomething = KEEP_RULES.some((rule) => (rule === 'within' ? typeof keep.within === 'string' : typeof keep[rule] === 'number' && (keep[rule] as number) > 0));
    if (wellTyped && !keepsSomething && Object.keys(keep).every((k) => (KEEP_RULES as readonly string[]).includes(k))) {
      this.report(source, path, `keep rules keep nothing: set at least one of ${KEEP_RULES.join(', ')} above zero`);
    }
  }

  /** `partitions:`: PostgreSQL tables, each declared once. */
  checkPartitions(config: Obj, source: SourceFile): void {
    if (!Array.isArray(config.partitions)) return;
    const services = isObj(config.services) ? config.services : {};
    if (config.partitions.length > 0 && !isObj(services.postgres)) this.report(source, ['partitions'], 'declared partitions are PostgreSQL tables, but services.postgres is not configured');
    const seen = new Map<string, Path>();
    config.partitions.forEach((entry, index) => {
      if (!isObj(entry) || typeof entry.table !== 'string') return;
      const at: Path = ['partitions', index, 'table'];
      const key = entry.table.includes('.') ? entry.table : `public.${entry.table}`;
      const first = seen.get(key);
      if (first) this.report(source, at, `table "${entry.table}" is already declared at ${fmt(first.slice(0, -1))} (${where(source, source.locate(first), source)}); declare each table once`);
      else seen.set(key, at);
    });
  }

  /** `links:`: unique names, one other side whose service is configured, a Redis pattern with one `{key}`. */
  checkLinks(config: Obj, source: SourceFile): void {
    if (!Array.isArray(config.links)) return;
    const services = isObj(config.services) ? config.services : {};
    const seen = new Map<string, Path>();
    config.links.forEach((entry, index) => {
      if (!isObj(entry)) return;
      const at = (...rest: (string | number)[]): Path => ['links', index, ...rest];
      if (typeof entry.name === 'string') {
        const first = seen.get(entry.name);
        if (first) this.report(source, at('name'), `link "${entry.name}" is already defined at ${fmt(first.slice(0, -1))} (${where(source, source.locate(first), source)}); link names must be unique`);
        else seen.set(entry.name, at('name'));
      }
      const sides = (['chroma', 'redis'] as const).filter((side) => entry[side] !== undefined);
      if (sides.length === 0) this.report(source, at(), 'a link joins a postgres table to chroma or to redis: add chroma: { collection, metadata } or redis: { pattern }');
      if (sides.length === 2) this.report(source, at('redis'), 'a link has one other side: split it into one link to chroma and one to redis', true);
      for (const service of ['postgres', ...sides]) {
        if (entry[service] !== undefined && !isObj(services[service])) this.report(source, at(service), `this link reaches ${service}, but services.${service} is not configured`, true);
      }
      const redis = isObj(entry.redis) ? entry.redis : undefined;
      if (redis && typeof redis.pattern === 'string') {
        const holes = redis.pattern.split('{key}').length - 1;
        if (holes !== 1) this.report(source, at('redis', 'pattern'), `the pattern must hold {key} exactly once, where the row's key goes (got ${JSON.stringify(redis.pattern)}; for example "session:{key}")`);
        else if (/[*?[\]\\]/.test(redis.pattern)) this.report(source, at('redis', 'pattern'), `the pattern is literal apart from {key}: remove the glob characters * ? [ ] \\ (got ${JSON.stringify(redis.pattern)})`);
      }
      const postgres = isObj(entry.postgres) ? entry.postgres : undefined;
      if (postgres && postgres.until !== undefined && postgres.until === postgres.key) this.report(source, at('postgres', 'until'), 'until is a timestamp column, not the key column');
    });
  }

  /** `erasure:`: it erases PostgreSQL rows (services.postgres), and anonymize only when the users row is anonymized. */
  checkErasure(config: Obj, source: SourceFile): void {
    if (!isObj(config.erasure)) return;
    const services = isObj(config.services) ? config.services : {};
    if (!isObj(services.postgres)) this.report(source, ['erasure'], 'erasure removes a user\'s PostgreSQL rows, but services.postgres is not configured', true);
    if (config.erasure.user === 'delete' && config.erasure.anonymize !== undefined) {
      this.report(source, ['erasure', 'anonymize'], 'anonymize applies when the users row stays (user: anonymize); with user: delete the row goes: remove one of the two', true);
    }
  }

  checkPolicies(config: Obj, configSource: SourceFile, policies: Located[]): void {
    const services = isObj(config.services) ? config.services : {};
    if (policies.length > 0 && !isObj(services.postgres)) {
      const retention = ['retention'];
      this.report(configSource, retention, 'retention policies apply to PostgreSQL tables, but services.postgres is not configured', true);
    }
    const seen = new Map<string, Located>();
    for (const policy of policies) {
      const { value, source, path } = policy;
      if (!isObj(value)) continue;
      const at = (key: string): Path => [...path, key];
      if (typeof value.name === 'string') {
        const first = seen.get(value.name);
        if (first) {
          this.report(source, at('name'), `policy "${value.name}" is already defined as ${fmt([...first.path])} (${where(first.source, first.source.locate([...first.path, 'name']), source)}); policy names must be unique across all policy files`);
        } else seen.set(value.name, policy);
      }
      const action = typeof value.action === 'string' ? value.action : undefined;
      if (!action) continue;
      const onlyFor: Record<string, string[]> = { archive: ['archive'], maxRows: ['delete'], anonymize: ['anonymize'], compress: ['compress'], children: ['archive'] };
      for (const [key, actions] of Object.entries(onlyFor)) {
        if (value[key] !== undefined && !actions.includes(action)) {
          this.report(source, at(key), `${key} applies to ${actions.join(' and ')} policies only (this policy's action is ${action})`, true);
        }
      }
      if (action === 'anonymize' && value.anonymize === undefined) this.report(source, path, 'an anonymize policy needs anonymize.columns (column → null, redact, hash or email)');
      if (action === 'compress' && value.compress === undefined) this.report(source, path, 'a compress policy needs compress: { bucket, groupBy, value }');
      if (isObj(value.anonymize) && isObj(value.anonymize.columns) && isObj(value.age) && typeof value.age.column === 'string' && value.age.column in value.anonymize.columns) {
        this.report(source, [...path, 'anonymize', 'columns', value.age.column], `the age column ${value.age.column} cannot also be anonymized`, true);
      }
      if (isObj(value.anonymize) && isObj(value.anonymize.columns)) {
        const columns = value.anonymize.columns;
        const marker = typeof value.anonymize.marker === 'string' ? value.anonymize.marker : 'anonymized_at';
        if (marker in columns) this.report(source, [...path, 'anonymize', 'columns', marker], `the marker column ${marker} cannot also be anonymized (it records when a row was anonymized)`, true);
        const hashed = Object.entries(columns).find(([, strategy]) => strategy === 'hash');
        if (hashed && value.anonymize.saltEnv === undefined) {
          this.report(source, [...path, 'anonymize', 'columns', hashed[0]], 'the hash strategy needs anonymize.saltEnv (an unsalted hash of personal data can be reversed by guessing)', true);
        }
      }
      if (isObj(value.compress) && typeof value.compress.into === 'string' && value.compress.into === value.table) {
        this.report(source, [...path, 'compress', 'into'], `the rollup table cannot be the policy's own table (${String(value.table)})`, true);
      }
      const table = typeof value.table === 'string' ? value.table : undefined;
      list(value.children).forEach((child, i) => {
        if (isObj(child) && child.table === table) this.report(source, [...path, 'children', i, 'table'], `a table cannot be its own child (${String(table)})`);
      });
    }
  }

  checkSchema(config: Obj, source: SourceFile): void {
    if (!isObj(config.schema)) return;
    const services = isObj(config.services) ? config.services : {};
    if (!isObj(services.postgres)) this.report(source, ['schema'], 'schema migrations need services.postgres', true);
    const target = config.schema.target;
    if (typeof target === 'string' && target !== 'latest' && target !== '0' && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(target)) {
      this.report(source, ['schema', 'target'], `"${target}" is not a migration target (expected latest, 0, or a migration file name such as 001_init)`);
    }
  }

  checkThresholds(config: Obj, source: SourceFile): void {
    const health = isObj(config.health) ? config.health : {};
    const thresholds = isObj(health.thresholds) ? health.thresholds : {};
    for (const [name, threshold] of Object.entries(thresholds)) {
      if (!checkSpec(name) && /^[a-z]+\.[a-z][a-z0-9_]*$/.test(name)) {
        const similar = similarChecks(name);
        this.report(source, ['health', 'thresholds', name], `there is no health check named ${name}${similar.length ? ` (did you mean ${similar.join(', ')}?)` : ''}; \`jarvis-db health checks\` lists them`, true);
        continue;
      }
      if (!isObj(threshold)) continue;
      if ([threshold.warning, threshold.critical].some((l) => l !== undefined && !parseLevel(l))) continue; // the schema says why
      const parsed = parseThreshold(threshold);
      if (typeof parsed === 'string') this.report(source, ['health', 'thresholds', name], parsed);
    }
  }
}

function fmt(path: Path): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

export interface ParsedLevel { value: number; direction: '<' | '>' | undefined }

export function parseLevel(level: unknown): ParsedLevel | undefined {
  if (typeof level === 'number' && Number.isFinite(level)) return { value: level, direction: undefined };
  if (typeof level !== 'string') return undefined;
  const m = /^\s*([<>])\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$/.exec(level);
  return m ? { value: Number(m[2]), direction: m[1] as '<' | '>' } : undefined;
}

/** `{ warning: "< 0.98", critical: "< 0.9" }` → levels and direction, or what is wrong. */
export function parseThreshold(threshold: Obj): { warning?: number; critical?: number; lowerIsWorse: boolean } | string {
  const warning = threshold.warning === undefined ? undefined : parseLevel(threshold.warning);
  const critical = threshold.critical === undefined ? undefined : parseLevel(threshold.critical);
  if ((threshold.warning !== undefined && !warning) || (threshold.critical !== undefined && !critical)) return 'levels are numbers or comparisons such as "< 0.9"';
  const directions = new Set([warning, critical].filter((l) => l !== undefined).map((l) => l!.direction ?? '>'));
  if (directions.size > 1) return 'warning and critical must compare the same way (both "< x" when lower is worse, both numbers or "> x" when higher is worse)';
  const lowerIsWorse = directions.has('<');
  if (warning && critical) {
    if (lowerIsWorse && warning.value < critical.value) return `when lower is worse, warning (${warning.value}) must not be below critical (${critical.value})`;
    if (!lowerIsWorse && warning.value > critical.value) return `warning (${warning.value}) must not be above critical (${critical.value})`;
  }
  return { ...(warning ? { warning: warning.value } : {}), ...(critical ? { critical: critical.value } : {}), lowerIsWorse };
}
