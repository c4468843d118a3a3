/**
 * The plan is plain data (docs/architecture.md §2). Everything here is JSON-serialisable.
 */
import type { CopyBackupParams, CreateBackupParams, CreatePointParams, PruneBackupParams, PrunePointParams, PruneWalParams, RestoreBackupParams, VerifyBackupParams } from '../backup/action-params.js';
import type { FieldChange } from '../config/changes.js';
import type { EraseUserParams, ReapplyTombstonesParams } from '../erasure/action-params.js';
import type { Desired, ServiceName } from '../config/types.js';
import type { MigrateStepParams, SeedDatasetParams } from '../migrate/action-params.js';
import type { CopyArchiveParams, CreatePartitionParams, DropPartitionsParams, PruneArchiveParams, RestoreArchiveParams, RetentionParams } from '../retention/action-params.js';

export type { ServiceName } from '../config/types.js';

export const PLAN_FORMAT_VERSION = 1;

export const ACTION_TYPES = [
  'create_backup',
  'copy_backup',
  'verify_backup',
  'prune_backup',
  'prune_wal',
  'create_point',
  'prune_point',
  'migrate_up',
  'migrate_down',
  'retention_delete',
  'retention_archive',
  'retention_anonymize',
  'retention_compress',
  'retention_erase',
  'retention_drop_partitions',
  'create_partition',
  'copy_archive',
  'prune_archive',
  // Command-only: `plan` never makes these; `restore`, `archive restore` and `init --seed` do.
  'restore_backup',
  'restore_archive',
  'seed_dataset',
  // Command-only: `erase --user` makes the first, a restore the second (src/erasure).
  'erase_user',
  'reapply_tombstones',
] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

/** How an action shows in a plan: `+` create, `~` change in place, `-` destroy (docs/architecture.md §2). */
export type ActionKind = 'create' | 'change' | 'destroy';

export const ACTION_KIND: Record<ActionType, ActionKind> = {
  create_backup: 'create',
  copy_backup: 'create',
  verify_backup: 'change',
  prune_backup: 'destroy',
  prune_wal: 'destroy',
  create_point: 'create',
  prune_point: 'destroy',
  migrate_up: 'change',
  migrate_down: 'change',
  retention_delete: 'destroy',
  retention_archive: 'change',
  retention_anonymize: 'change',
  retention_compress: 'change',
  retention_erase: 'destroy',
  retention_drop_partitions: 'destroy',
  create_partition: 'create',
  copy_archive: 'create',
  prune_archive: 'destroy',
  restore_backup: 'change',
  restore_archive: 'change',
  seed_dataset: 'create',
  erase_user: 'destroy',
  reapply_tombstones: 'destroy',
};

export type ModuleName = 'backup' | 'migrate' | 'retention' | 'health' | 'erasure' | (string & {});

export type Risk = 'safe' | 'destructive';

export interface Estimate {
  rows?: number;
  bytes?: number;
  backups?: number;
  seconds?: number;
}

/** What every action has, whatever its type. */
export interface ActionBase {
  /** Stable within a plan and across re-plans of the same state: `backup.create.postgres-nightly`. */
  id: string;
  module: ModuleName;
  /** What it acts on: a schedule name, a backup id, a table, a migration name. */
  target: string;
  /** Why now, in words. */
  reason: string;
  risk: Risk;
  estimate: Estimate | null;
  /**
   * Ids of actions that must have run before this one (a verification of the backup that an
   * earlier action creates, a migration of the backup before it): the planner orders it after
   * them, an error that holds one back holds this one back, `--target` keeps them with it.
   */
  requires?: string[];
  /**
   * The services the action reaches (`postgres` for a PostgreSQL backup). When observation
   * finds one unreachable, the action is not executed and the rest of the plan still runs.
   */
  services?: ServiceName[];
  /**
   * The repositories the action reads or writes (a copy: both): when one cannot be read, the
   * action is held back and the rest of the plan still runs.
   */
  repositories?: string[];
}

/**
 * An action of one type with the plain-JSON params its handler reads (each domain declares
 * them, with their saved-plan rules, in `src/<domain>/action-params.ts`). By convention
 * `schedule` (backups) or `policy` (retention) names the config entry the action comes from;
 * `plan --base` groups its impact by them.
 */
export interface ActionOf<T extends ActionType, P> extends ActionBase {
  type: T;
  params: P;
}

export type CreateBackup = ActionOf<'create_backup', CreateBackupParams>;
export type CopyBackup = ActionOf<'copy_backup', CopyBackupParams>;
export type VerifyBackup = ActionOf<'verify_backup', VerifyBackupParams>;
export type PruneBackup = ActionOf<'prune_backup', PruneBackupParams>;
export type PruneWal = ActionOf<'prune_wal', PruneWalParams>;
export type CreatePoint = ActionOf<'create_point', CreatePointParams>;
export type PrunePoint = ActionOf<'prune_point', PrunePointParams>;
export type MigrateUp = ActionOf<'migrate_up', MigrateStepParams<'up'>>;
export type MigrateDown = ActionOf<'migrate_down', MigrateStepParams<'down'>>;
export type RetentionDelete = ActionOf<'retention_delete', RetentionParams>;
export type RetentionArchive = ActionOf<'retention_archive', RetentionParams>;
export type RetentionAnonymize = ActionOf<'retention_anonymize', RetentionParams>;
export type RetentionCompress = ActionOf<'retention_compress', RetentionParams>;
export type RetentionErase = ActionOf<'retention_erase', RetentionParams>;
export type RetentionDropPartitions = ActionOf<'retention_drop_partitions', DropPartitionsParams>;
export type CreatePartition = ActionOf<'create_partition', CreatePartitionParams>;
export type CopyArchive = ActionOf<'copy_archive', CopyArchiveParams>;
export type PruneArchive = ActionOf<'prune_archive', PruneArchiveParams>;
export type RestoreBackup = ActionOf<'restore_backup', RestoreBackupParams>;
export type RestoreArchive = ActionOf<'restore_archive', RestoreArchiveParams>;
export type SeedDataset = ActionOf<'seed_dataset', SeedDatasetParams>;
export type EraseUser = ActionOf<'erase_user', EraseUserParams>;
export type ReapplyTombstones = ActionOf<'reapply_tombstones', ReapplyTombstonesParams>;

export type Action =
  | CreateBackup | CopyBackup | VerifyBackup | PruneBackup | PruneWal | CreatePoint | PrunePoint
  | MigrateUp | MigrateDown
  | RetentionDelete | RetentionArchive | RetentionAnonymize | RetentionCompress | RetentionErase | RetentionDropPartitions | CreatePartition | CopyArchive | PruneArchive
  | RestoreBackup | RestoreArchive | SeedDataset
  | EraseUser | ReapplyTombstones;

/** The action variant of one type: `ActionFor<'create_backup'>` is `CreateBackup`. */
export type ActionFor<K extends ActionType> = Extract<Action, { type: K }>;

export type Status = 'HEALTHY' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';

export interface Finding {
  /** `postgres.connections_used_ratio`, `backup.age.postgres-nightly`, `retention.index.messages` */
  check: string;
  service: string;
  status: Status;
  value: number | string | null;
  threshold: string | null;
  message: string;
}

export interface PlanError {
  module: ModuleName;
  message: string;
  /** The config path the error is about, where there is one: `policies[2]`. */
  path?: string;
  /**
   * What the error stops (see `blockedActions` in planner.ts): with a service, the actions that
   * reach that service; without, the actions of its module.
   */
  service?: ServiceName;
  /** A repository that cannot be read: the error stops the actions that reach it (`repositories`). */
  repository?: string;
}

/**
 * What the actions of a plan depend on: the config hash and each module's `fingerprint`.
 * Saved in the plan so that a stale plan can be refused naming what changed.
 */
export interface PlanBasis {
  configHash: string;
  modules: Record<string, unknown>;
}

export interface Plan {
  formatVersion: typeof PLAN_FORMAT_VERSION;
  createdAt: string;
  configFile: string;
  configHash: string;
  /** SHA-256 of the canonical JSON of `basis`. */
  fingerprint: string;
  basis: PlanBasis;
  /** `--target` the plan was narrowed to, if any. */
  target?: string;
  actions: Action[];
  findings: Finding[];
  errors: PlanError[];
}

/** What one module saw, by module name. Plain JSON. */
export type Observed = Record<string, unknown>;

export interface ModulePlan {
  actions: Action[];
  findings: Finding[];
  errors: PlanError[];
}

export interface Progress {
  /** A line of progress for the current action ("dumping messages"). */
  note(message: string): void;
  /** Fractional progress, for a bar on a terminal. */
  update(done: number, total?: number): void;
}

export interface ActionOutcome {
  /** What was done, one line: "backup 20261124T030000Z written, 193 MB". */
  summary: string;
  details?: Record<string, unknown>;
}

export interface ExecuteContext {
  desired: Desired;
  plan: Plan;
  runId: string;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** Outcomes of the actions already done in this run, by action id (see `Action.requires`). */
  outcomes: ReadonlyMap<string, ActionOutcome>;
  /** Structured log line (goes to the journal/daemon log, redacted). */
  log(event: string, fields?: Record<string, unknown>): void;
}

/** What `beforeApply` may do: tidy up under the lock before anything is observed. */
export interface PrepareContext {
  desired: Desired;
  env: NodeJS.ProcessEnv;
  runId: string;
}

export interface ObserveContext {
  desired: Desired;
  env: NodeJS.ProcessEnv;
  /** The clock the observation is taken at; plan gets the same value. */
  now: Date;
}

export type Handler<A = Action> = (action: A, ctx: ExecuteContext, progress: Progress) => Promise<ActionOutcome>;

/**
 * One handler per action type, each given its own variant: a type without a handler, or a
 * handler of another variant, is a compile error.
 */
export type HandlerMap = { [K in ActionType]: Handler<ActionFor<K>> };

/**
 * A domain: observe (read-only I/O), plan (pure), execute (I/O).
 * `plan` receives every module's observation so cross-domain decisions
 * (a backup before migrations) stay in pure code.
 */
export interface DomainModule<O = unknown> {
  name: ModuleName;
  /** Whether this module has anything to do for this config (skip observation otherwise). */
  appliesTo(desired: Desired): boolean;
  observe(ctx: ObserveContext): Promise<O>;
  plan(desired: Desired, observed: O, now: Date, all: Observed): ModulePlan;
  /**
   * The part of the observation that the actions depend on; it goes into the plan's
   * fingerprint so that `apply plan.json` refuses a plan whose basis has changed.
   * Keep out what merely ages (row counts, sizes).
   */
  fingerprint(observed: O): unknown;
  /**
   * Optional housekeeping at the start of an apply, under the lock and before observation
   * (the backup module removes the debris of killed backups). Returns one line per thing done.
   */
  beforeApply?(ctx: PrepareContext): Promise<string[]>;
  /**
   * Pure, for `plan --base`: the changes of this module's config entries from `base` to `head`
   * (the backup module's schedules, the retention module's policies), in words. The engine adds
   * what they do, from comparing the two plans.
   */
  describeChange?(base: Desired, head: Desired): ConfigChange[];
}

/**
 * One change of a config entry between two desired states, in the words of the module that owns
 * the entry (`plan --base`, docs/architecture.md §1): `keep daily 14 → 7` of `postgres-nightly`.
 */
export interface ConfigChange extends FieldChange {
  /** The config entry: a schedule or policy name, `schema`, `health`. */
  subject: string;
}

export type ActionStatus = 'done' | 'failed' | 'not_executed';

export interface ActionResult {
  id: string;
  type: ActionType;
  target: string;
  status: ActionStatus;
  startedAt?: string;
  durationMs?: number;
  summary?: string;
  error?: { code: string; message: string; hint?: string };
  /** Why a `not_executed` action did not run: a plan error it depends on, an earlier failure, a stop. */
  reason?: string;
}

export interface RunResult {
  runId: string;
  /** `nothing_to_do` when the plan had no actions; `cancelled` when a signal stopped it between actions. */
  status: 'succeeded' | 'failed' | 'cancelled' | 'nothing_to_do';
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Lines of housekeeping done before the plan (debris removed). */
  prepared: string[];
  plan: Plan;
  /**
   * The errors of the observation the run was made from (for a saved plan: the fresh one).
   * Each stops only what depends on it; any error makes the run `failed`.
   */
  errors: PlanError[];
  results: ActionResult[];
  journalFile: string;
}
