/**
 * The desired state, as `config/load.ts` returns it: validated, interpolated, with relative
 * paths resolved against the config file's directory and policies merged from includes.
 * `schemas/jarvis-db.schema.json` is the contract for the YAML; these types mirror it.
 */

export type ServiceName = 'postgres' | 'redis' | 'chroma';
export const SERVICE_NAMES: readonly ServiceName[] = ['postgres', 'redis', 'chroma'];

/** Continuous WAL archiving for point-in-time recovery (src/wal). */
export interface PitrConfig { enabled: boolean; slot: string; rpoSeconds: number }
export interface PostgresService { url: string; pitr?: PitrConfig }
export interface RedisService { url: string; databases?: number[] }
export interface ChromaService { url: string; tenant?: string; database?: string; path?: string; collections?: string[] }

export interface Services {
  postgres?: PostgresService;
  redis?: RedisService;
  chroma?: ChromaService;
}

export interface Storage {
  /** Absolute path where backups, archives, the catalog, the journal and health history live. */
  path: string;
  encryption?: { passphraseEnv: string };
}

/**
 * Where backups and archives are kept (docs/architecture.md §6): a directory or an S3-compatible
 * bucket. Without `repositories:` in the file, `storage.path` is the only one, named `local`.
 * Credentials are never here: an S3 repository uses the standard AWS chain.
 */
export type RepositoryConfig = {
  name: string;
  /** This repository's own keep rules; absent: each schedule's. */
  keep?: KeepRules;
  /** Where it came from in the YAML: `repositories[1]` (`storage.path` for the implicit one). */
  path: string;
} & (
  | { kind: 'local'; /** Absolute path. */ dir: string }
  | { kind: 's3'; s3: { bucket: string; /** '' or ending in '/'. */ prefix: string; region: string; endpoint?: string; forcePathStyle: boolean } }
);

export interface SchemaSettings {
  /** Absolute path of the migrations folder. */
  migrations: string;
  /** `latest`, `0` (nothing applied) or a migration name. */
  target: string;
  allowDown: boolean;
  backupBefore: boolean;
}

export interface KeepRules {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** A duration such as `7d`: keep everything newer than this. */
  within?: string;
}

export interface BackupSchedule {
  name: string;
  service: ServiceName;
  cron: string;
  timezone: string;
  keep: KeepRules;
  verify: 'checksum' | 'restore' | 'none';
  /** postgres, method logical only */
  format?: 'directory' | 'custom';
  jobs?: number;
  /** gzip level 0-9 */
  compression?: number;
  /** postgres: logical (pg_dump, default) | physical (pg_basebackup); redis: rdb | logical; chroma: logical | physical */
  method?: string;
  /** Allow pruning the last valid backup of this schedule (docs/architecture.md §4 rule 4). */
  allowPruneLast?: boolean;
  /** Where the value came from in the YAML: `backups[1]`. */
  path: string;
}

/**
 * A schedule with `service: all` (src/backup/points.ts): at its cron, one backup of each member
 * schedule taken together and recorded as one recovery point. It has no keep rules of its own: a
 * point is kept while its PostgreSQL member (else its first) is kept by that schedule's rules.
 */
export interface PointSchedule {
  name: string;
  cron: string;
  timezone: string;
  /** The member schedule of each service, in the order postgres, redis, chroma. */
  members: { service: ServiceName; schedule: string }[];
  /** Where it came from in the YAML: `backups[3]`. */
  path: string;
}

/** `erase`: each row is a user erased from every store (src/erasure), as `erase --user` does. */
export type RetentionAction = 'delete' | 'archive' | 'anonymize' | 'compress' | 'erase';

export type AnonymizeStrategy = 'null' | 'redact' | 'hash' | 'email';

export interface RetentionPolicy {
  name: string;
  table: string;
  age: { column: string; olderThan: string };
  action: RetentionAction;
  batchSize: number;
  /** archive: archives expire after this duration. */
  archive?: { deleteAfter?: string };
  /** archive: child tables archived (and deleted) with each batch of parents. */
  children?: { table: string; column: string }[];
  /** delete: keep at most this many rows, oldest deleted first. */
  maxRows?: number;
  /** anonymize: column → strategy; `marker` is the timestamp column set on anonymized rows (default anonymized_at). */
  anonymize?: { columns: Record<string, AnonymizeStrategy>; saltEnv?: string; redaction?: string; marker: string };
  /** compress: roll detail rows up into buckets of the rollup table `into`. */
  compress?: { bucket: string; groupBy: string[]; value: string; into: string };
  enabled: boolean;
  /** Where the policy came from: `policies/messages.yaml` and its path in it. */
  source: { file: string; path: string };
}

/** `partitions:` one table whose partitions are created ahead of time. */
export interface PartitionDeclaration {
  table: string;
  column: string;
  interval: '1d' | '1w' | '1mo';
  /** Intervals after the current one made ahead of time. */
  premake: number;
  /** Where it is written: `jarvis-db.yaml partitions[0]`. */
  source: { file: string; path: string };
}

/**
 * `links:` a PostgreSQL table whose rows another store describes (src/links): Chroma records
 * carrying the row's key in a metadata field, or one Redis key per row.
 */
export interface LinkDeclaration {
  name: string;
  postgres: { table: string; key: string; user?: string; until?: string };
  side: { store: 'chroma'; collection: string; metadata: string } | { store: 'redis'; pattern: string; database?: number };
  /** Where it is written, for errors found against the services: `jarvis-db.yaml:42 links[0]`. */
  source: { file: string; path: string; line?: number };
}

/**
 * `erasure:` what `erase --user ID` does in PostgreSQL besides following the links (src/erasure).
 * Absent fields take their defaults when the erasure is resolved against the catalog.
 */
export interface ErasureSettings {
  /** The users table and the column `--user` names. */
  users: { table: string; key: string };
  /** The tables whose rows of the user are deleted (absent: every table with a foreign key to the users table). */
  tables?: string[];
  /** What happens to the users row. */
  user: 'anonymize' | 'delete';
  /** The strategies for the users row (absent: those of the retention policy on the users table). */
  anonymize?: { columns: Record<string, AnonymizeStrategy>; saltEnv?: string; redaction?: string; marker: string };
  /** The Chroma metadata field holding the user id. */
  userMetadata: string;
}

export interface Threshold {
  warning?: number;
  critical?: number;
  /** true when lower values are worse (`"< 0.9"`). */
  lowerIsWorse: boolean;
}

export interface HealthSettings {
  thresholds: Record<string, Threshold>;
  /** Seconds between checks in the daemon. */
  intervalSeconds: number;
  /** Seconds of history kept. */
  historySeconds: number;
  alerts?: { webhook: string; retries: number };
}

export interface Desired {
  version: 1;
  project: string;
  /** Absolute path of the config file. */
  configFile: string;
  /** SHA-256 of the config file and the policy files it includes, in order. */
  configHash: string;
  services: Services;
  storage: Storage;
  /** In order: backups are written to the first and copied to the others. Absent: `storage.path` alone. */
  repositories?: RepositoryConfig[];
  schema?: SchemaSettings;
  backups: BackupSchedule[];
  /** The `service: all` entries of `backups:` (recovery points); absent: none. */
  points?: PointSchedule[];
  retention: RetentionPolicy[];
  /** Declared partitions (absent: none). */
  partitions?: PartitionDeclaration[];
  /** Links between the stores (absent: none). */
  links?: LinkDeclaration[];
  /** Erasure settings (absent: the defaults, see ErasureSettings). */
  erasure?: ErasureSettings;
  health: HealthSettings;
  journal: { keepSeconds: number };
}
