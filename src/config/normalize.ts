/**
 * From a validated config value to `Desired`: defaults filled in, relative paths resolved
 * against the config file's directory, durations turned into seconds, thresholds parsed,
 * each policy tagged with where it came from. Pure (paths are only computed, not read).
 */
import { relative, resolve } from 'node:path';
import { parseDuration } from './durations.js';
import { formatPath, type Path } from './problems.js';
import { METHODS, parseThreshold } from './semantic.js';
import { SERVICE_NAMES } from './types.js';
import type {
  AnonymizeStrategy, BackupSchedule, Desired, ErasureSettings, HealthSettings, KeepRules, LinkDeclaration, PartitionDeclaration, PointSchedule, RepositoryConfig, RetentionAction, RetentionPolicy, Services, ServiceName, Threshold,
} from './types.js';

export const DEFAULTS = {
  project: 'jarvis',
  pitrSlot: 'jarvis_db',
  pitrRpo: '1m',
  storagePath: './backups',
  migrations: './migrations',
  target: 'latest',
  allowDown: false,
  backupBefore: true,
  timezone: 'UTC',
  verify: 'checksum',
  format: 'directory',
  jobs: 2,
  compression: 1,
  batchSize: 5000,
  anonymizeMarker: 'anonymized_at',
  interval: '60s',
  history: '30d',
  journalKeep: '90d',
  alertRetries: 3,
  s3Region: 'us-east-1',
  premake: 4,
} as const;

/* The value has passed the schema: these shapes hold. */
interface RawBackup {
  name: string; service: ServiceName | 'all'; cron: string; timezone?: string; keep: KeepRules; members?: Partial<Record<ServiceName, string>>; verify?: BackupSchedule['verify'];
  format?: 'directory' | 'custom'; jobs?: number; compression?: number; method?: string; allowPruneLast?: boolean;
}
interface RawPolicy {
  name: string; table: string; age: { column: string; olderThan: string }; action: RetentionAction; batchSize?: number;
  archive?: { deleteAfter?: string }; children?: { table: string; column: string }[]; maxRows?: number;
  anonymize?: { columns: Record<string, AnonymizeStrategy | null>; saltEnv?: string; redaction?: string; marker?: string };
  compress?: { bucket: string; groupBy: string[]; value: string; into: string }; enabled?: boolean;
}
interface RawRepository {
  name: string; path?: string; keep?: KeepRules; enabled?: boolean;
  s3?: { bucket: string; prefix?: string; region?: string; endpoint?: string; forcePathStyle?: boolean };
}
interface RawLink {
  name: string; postgres: LinkDeclaration['postgres'];
  chroma?: { collection: string; metadata: string }; redis?: { pattern: string; database?: number };
}
interface RawConfig {
  version: 1; project?: string; services: Services;
  storage?: { path?: string; encryption?: { passphraseEnv: string } };
  repositories?: RawRepository[];
  schema?: { migrations?: string; target?: string; allowDown?: boolean; backupBefore?: boolean };
  backups?: RawBackup[];
  partitions?: { table: string; column: string; interval: PartitionDeclaration['interval']; premake?: number }[];
  links?: RawLink[];
  erasure?: { users?: { table?: string; key?: string }; tables?: string[]; user?: ErasureSettings['user']; anonymize?: RawPolicy['anonymize']; userMetadata?: string };
  health?: { thresholds?: Record<string, { warning?: number | string; critical?: number | string }>; interval?: string; history?: string; alerts?: { webhook: string; retries?: number } };
  journal?: { keep?: string };
}

function link(raw: RawLink, source: LinkDeclaration['source']): LinkDeclaration {
  const postgres = { ...raw.postgres };
  // The semantic check has made sure exactly one side is there.
  const side: LinkDeclaration['side'] = raw.chroma
    ? { store: 'chroma', collection: raw.chroma.collection, metadata: raw.chroma.metadata }
    : { store: 'redis', pattern: raw.redis!.pattern, ...(raw.redis!.database !== undefined ? { database: raw.redis!.database } : {}) };
  return { name: raw.name, postgres, side, source };
}

/** The erasure settings with their defaults (`erasure:` absent: every default). */
export function erasureSettings(raw: RawConfig['erasure'] = {}): ErasureSettings {
  const out: ErasureSettings = {
    users: { table: raw.users?.table ?? 'users', key: raw.users?.key ?? 'id' },
    user: raw.user ?? 'anonymize',
    userMetadata: raw.userMetadata ?? 'user_id',
  };
  if (raw.tables) out.tables = [...raw.tables];
  if (raw.anonymize) {
    const columns = Object.fromEntries(Object.entries(raw.anonymize.columns).map(([c, s]) => [c, s ?? 'null'])) as Record<string, AnonymizeStrategy>;
    out.anonymize = { ...raw.anonymize, columns, marker: raw.anonymize.marker ?? DEFAULTS.anonymizeMarker };
  }
  return out;
}

export interface PolicyInput { value: unknown; file: string; path: Path }

function backup(raw: RawBackup & { service: ServiceName }, index: number): BackupSchedule {
  const out: BackupSchedule = {
    name: raw.name,
    service: raw.service,
    cron: raw.cron,
    timezone: raw.timezone ?? DEFAULTS.timezone,
    keep: { ...raw.keep },
    verify: raw.verify ?? DEFAULTS.verify,
    path: `backups[${index}]`,
  };
  if (raw.service === 'postgres') {
    out.method = raw.method ?? METHODS.postgres!.default;
    if (out.method !== 'physical') {
      out.format = raw.format ?? DEFAULTS.format;
      out.jobs = raw.jobs ?? DEFAULTS.jobs;
    }
    out.compression = raw.compression ?? DEFAULTS.compression;
  } else {
    if (raw.compression !== undefined) out.compression = raw.compression;
    out.method = raw.method ?? METHODS[raw.service]?.default;
  }
  if (raw.allowPruneLast !== undefined) out.allowPruneLast = raw.allowPruneLast;
  return out;
}

/**
 * A `service: all` entry: its members as given, else for each configured service the first
 * schedule of it (for PostgreSQL the first logical one, else the first), in service order.
 */
function point(raw: RawBackup, index: number, schedules: readonly BackupSchedule[]): PointSchedule {
  const members = SERVICE_NAMES.flatMap((service) => {
    const named = raw.members?.[service];
    if (raw.members) return named ? [{ service, schedule: named }] : [];
    const mine = schedules.filter((s) => s.service === service);
    const first = mine.find((s) => service !== 'postgres' || s.method !== 'physical') ?? mine[0];
    return first ? [{ service, schedule: first.name }] : [];
  });
  return { name: raw.name, cron: raw.cron, timezone: raw.timezone ?? DEFAULTS.timezone, members, path: `backups[${index}]` };
}

/** `/prod//` → `prod/`, `''` stays `''`: keys under it are `<prefix><key>`. */
export function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}

/** The enabled repositories, in order (a disabled one is ignored, as if it were not written). */
function repositories(raw: RawRepository[], base: string): RepositoryConfig[] {
  const out: RepositoryConfig[] = [];
  raw.forEach((r, index) => {
    if (r.enabled === false) return;
    const common = { name: r.name, path: `repositories[${index}]`, ...(r.keep ? { keep: { ...r.keep } } : {}) };
    if (r.s3) {
      const { bucket, prefix, region, endpoint, forcePathStyle } = r.s3;
      out.push({
        ...common, kind: 's3',
        s3: {
          bucket, prefix: normalizePrefix(prefix), region: region ?? DEFAULTS.s3Region, forcePathStyle: forcePathStyle ?? false,
          // An empty endpoint (`${JARVIS_S3_ENDPOINT:-}` unset) means AWS itself.
          ...(endpoint ? { endpoint } : {}),
        },
      });
    } else out.push({ ...common, kind: 'local', dir: resolve(base, r.path!) });
  });
  return out;
}

function policy(raw: RawPolicy, file: string, path: Path): RetentionPolicy {
  const out: RetentionPolicy = {
    name: raw.name,
    table: raw.table,
    age: { column: raw.age.column, olderThan: raw.age.olderThan },
    action: raw.action,
    batchSize: raw.batchSize ?? DEFAULTS.batchSize,
    enabled: raw.enabled ?? true,
    source: { file, path: formatPath(path) },
  };
  if (raw.archive) out.archive = { ...raw.archive };
  if (raw.children) out.children = raw.children.map((c) => ({ ...c }));
  if (raw.maxRows !== undefined) out.maxRows = raw.maxRows;
  if (raw.anonymize) {
    // `email: null` in YAML is a null, not the string: both mean the null strategy.
    const columns = Object.fromEntries(Object.entries(raw.anonymize.columns).map(([c, s]) => [c, s ?? 'null'])) as Record<string, AnonymizeStrategy>;
    out.anonymize = { ...raw.anonymize, columns, marker: raw.anonymize.marker ?? DEFAULTS.anonymizeMarker };
  }
  if (raw.compress) out.compress = { ...raw.compress, groupBy: [...raw.compress.groupBy] };
  return out;
}

function health(raw: RawConfig['health']): HealthSettings {
  const thresholds: Record<string, Threshold> = {};
  for (const [name, t] of Object.entries(raw?.thresholds ?? {})) {
    const parsed = parseThreshold(t);
    if (typeof parsed !== 'string') thresholds[name] = parsed;
  }
  const out: HealthSettings = {
    thresholds,
    intervalSeconds: parseDuration(raw?.interval ?? DEFAULTS.interval),
    historySeconds: parseDuration(raw?.history ?? DEFAULTS.history),
  };
  if (raw?.alerts) out.alerts = { webhook: raw.alerts.webhook, retries: raw.alerts.retries ?? DEFAULTS.alertRetries };
  return out;
}

export function toDesired(value: unknown, configFile: string, configHash: string, policies: PolicyInput[]): Desired {
  const raw = value as RawConfig;
  const base = resolve(configFile, '..');
  const services: Services = {};
  if (raw.services.postgres) {
    const { pitr, ...postgres } = raw.services.postgres as { url: string; pitr?: { enabled?: boolean; slot?: string; rpo?: string } };
    services.postgres = { ...postgres, ...(pitr ? { pitr: { enabled: pitr.enabled ?? false, slot: pitr.slot ?? DEFAULTS.pitrSlot, rpoSeconds: parseDuration(pitr.rpo ?? DEFAULTS.pitrRpo) } } : {}) };
  }
  if (raw.services.redis) services.redis = { ...raw.services.redis, ...(raw.services.redis.databases ? { databases: [...raw.services.redis.databases] } : {}) };
  if (raw.services.chroma) {
    const c = raw.services.chroma;
    services.chroma = { ...c, ...(c.path ? { path: resolve(base, c.path) } : {}), ...(c.collections ? { collections: [...c.collections] } : {}) };
  }
  const indexed = (raw.backups ?? []).map((b, i) => ({ b, i }));
  const schedules = indexed.flatMap(({ b, i }) => (b.service === 'all' ? [] : [backup(b as RawBackup & { service: ServiceName }, i)]));
  const points = indexed.flatMap(({ b, i }) => (b.service === 'all' ? [point(b, i, schedules)] : []));
  const desired: Desired = {
    version: 1,
    project: raw.project ?? DEFAULTS.project,
    configFile,
    configHash,
    services,
    storage: {
      path: resolve(base, raw.storage?.path ?? DEFAULTS.storagePath),
      ...(raw.storage?.encryption ? { encryption: { passphraseEnv: raw.storage.encryption.passphraseEnv } } : {}),
    },
    ...(raw.repositories ? { repositories: repositories(raw.repositories, base) } : {}),
    backups: schedules,
    ...(points.length ? { points } : {}),
    retention: policies.map((p) => policy(p.value as RawPolicy, relative(base, p.file) || p.file, p.path)),
    health: health(raw.health),
    journal: { keepSeconds: parseDuration(raw.journal?.keep ?? DEFAULTS.journalKeep) },
  };
  if (raw.partitions?.length) {
    const file = relative(base, configFile) || configFile;
    desired.partitions = raw.partitions.map((p, i) => ({ table: p.table, column: p.column, interval: p.interval, premake: p.premake ?? DEFAULTS.premake, source: { file, path: `partitions[${i}]` } }));
  }
  if (raw.links?.length) {
    const file = relative(base, configFile) || configFile;
    desired.links = raw.links.map((l, i) => link(l, { file, path: `links[${i}]` }));
  }
  if (raw.erasure) desired.erasure = erasureSettings(raw.erasure);
  if (raw.schema) {
    desired.schema = {
      migrations: resolve(base, raw.schema.migrations ?? DEFAULTS.migrations),
      target: raw.schema.target ?? DEFAULTS.target,
      allowDown: raw.schema.allowDown ?? DEFAULTS.allowDown,
      backupBefore: raw.schema.backupBefore ?? DEFAULTS.backupBefore,
    };
  }
  return desired;
}
