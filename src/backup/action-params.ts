/** The params of the backup module's actions, and their rules for a saved plan (src/engine/action-params.ts). */
import type { ServiceName } from '../config/types.js';
import type { FieldRule, ParamRuleTable } from '../engine/action-params.js';

export interface CreateBackupParams {
  schedule: string;
  service: ServiceName;
  /** The repository written to, when not the first (the first could not be read when planned). */
  repository?: string;
  /** Added by the engine planner: this backup runs before the migrations (schema.backupBefore). */
  preChange?: boolean;
  /** A member of a recovery point: with PITR, the WAL position and time are read as it starts. */
  point?: boolean;
}

/**
 * A recovery point (src/backup/points.ts): the backups the create_backup actions `members` of
 * this apply wrote, recorded once they (and their copies) are published, in every repository that
 * holds them all.
 */
export interface CreatePointParams {
  /** The `service: all` schedule, or `all`. */
  schedule: string;
  /** Ids of create_backup actions of this apply, in service order. */
  members: string[];
}

/** A point whose anchor (its PostgreSQL member) the keep rules prune, deleted before it. */
export interface PrunePointParams {
  id: string;
  /** The repository it is deleted from (absent: the first). */
  repository?: string;
}

/**
 * A copy of a backup from one repository to another: of `id`, or of the backup `fromAction` (a
 * create_backup of this apply) makes.
 */
export interface CopyBackupParams {
  schedule: string;
  service: ServiceName;
  id?: string;
  fromAction?: string;
  /** Repository names. */
  from: string;
  to: string;
}

export interface PruneBackupParams {
  /** The backup to delete. */
  id: string;
  schedule: string;
  service: ServiceName;
  /** The repository it is deleted from (absent: the first). Each repository prunes by its own keep rules. */
  repository?: string;
  /** It is the last valid backup of its schedule (allowPruneLast; `backup delete --force`). */
  lastValid?: boolean;
  /**
   * Asked for by id (`backup delete`), not by the keep rules: the newest valid backup may go, the
   * last valid one only with `lastValid`.
   */
  byId?: boolean;
}

/**
 * The archived WAL of one repository that no kept base backup needs (src/wal/prune.ts): every
 * segment and backup label below `before`, oldest first. `files` and `bytes` (uncompressed) are
 * what the plan counted; the handler never deletes at or past `before`, nor past what a base
 * backup in the repository needs when it runs.
 */
export interface PruneWalParams {
  repository: string;
  /** The cut-off segment: the one holding the start LSN of the oldest base backup kept there. */
  before: string;
  files: number;
  bytes: number;
}

/** The backup to verify: `id`, or the one `fromAction` (a create_backup of this apply) makes. */
export interface VerifyBackupParams {
  schedule: string;
  restoreTest: boolean;
  id?: string;
  fromAction?: string;
}

/** `jarvis-db restore ID` (command-only): the backup, and the flags of the command line. */
export interface RestoreBackupParams {
  /** The backup's full id (the command line may give a prefix). */
  id: string;
  service: ServiceName;
  /** --force: onto a non-empty target, or a backup whose checksums fail. */
  force: boolean;
  /** --repository: read from this one only (absent: the first whose copy passes its checksums). */
  repository?: string;
  /** postgres --target-db */
  target?: string;
  /** redis --flush */
  flush?: boolean;
  /** chroma --collection, --as; --target-dir (absolute): chroma or postgres physical backups */
  collection?: string;
  as?: string;
  targetDir?: string;
}

const service: FieldRule = { kind: 'one-of', values: ['postgres', 'redis', 'chroma'] };

export const BACKUP_PARAM_RULES: Pick<ParamRuleTable, 'create_backup' | 'copy_backup' | 'prune_backup' | 'prune_wal' | 'verify_backup' | 'restore_backup' | 'create_point' | 'prune_point'> = {
  create_backup: { fields: { schedule: { kind: 'string' }, service, repository: { kind: 'string', optional: true }, preChange: { kind: 'boolean', optional: true }, point: { kind: 'boolean', optional: true } } },
  create_point: { fields: { schedule: { kind: 'string' }, members: { kind: 'string-list' } } },
  prune_point: { fields: { id: { kind: 'string' }, repository: { kind: 'string', optional: true } } },
  copy_backup: {
    fields: { schedule: { kind: 'string' }, service, id: { kind: 'string', optional: true }, fromAction: { kind: 'string', optional: true }, from: { kind: 'string' }, to: { kind: 'string' } },
    exactlyOne: ['id', 'fromAction'],
  },
  prune_backup: { fields: { id: { kind: 'string' }, schedule: { kind: 'string' }, service, repository: { kind: 'string', optional: true }, lastValid: { kind: 'boolean', optional: true }, byId: { kind: 'boolean', optional: true } } },
  prune_wal: { fields: { repository: { kind: 'string' }, before: { kind: 'wal-segment' }, files: { kind: 'count' }, bytes: { kind: 'count' } } },
  verify_backup: {
    fields: { schedule: { kind: 'string' }, restoreTest: { kind: 'boolean' }, id: { kind: 'string', optional: true }, fromAction: { kind: 'string', optional: true } },
    exactlyOne: ['id', 'fromAction'],
  },
  restore_backup: {
    fields: {
      id: { kind: 'string' }, service, force: { kind: 'boolean' }, repository: { kind: 'string', optional: true }, target: { kind: 'string', optional: true }, flush: { kind: 'boolean', optional: true },
      collection: { kind: 'string', optional: true }, as: { kind: 'string', optional: true }, targetDir: { kind: 'string', optional: true },
    },
  },
};
