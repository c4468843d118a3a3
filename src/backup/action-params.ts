/** The params of the backup module's actions, and their rules for a saved plan (src/engine/action-params.ts). */
import type { ServiceName } from '../config/types.js';
import type { FieldRule, ParamRuleTable } from '../engine/action-params.js';

export interface CreateBackupParams {
  schedule: string;
  service: ServiceName;
  /** Added by the engine planner: this backup runs before the migrations (schema.backupBefore). */
  preChange?: boolean;
}

export interface PruneBackupParams {
  /** The backup to delete. */
  id: string;
  schedule: string;
  service: ServiceName;
  /** It is the last valid backup of its schedule (allowPruneLast). */
  lastValid?: boolean;
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

export const BACKUP_PARAM_RULES: Pick<ParamRuleTable, 'create_backup' | 'prune_backup' | 'verify_backup' | 'restore_backup'> = {
  create_backup: { fields: { schedule: { kind: 'string' }, service, preChange: { kind: 'boolean', optional: true } } },
  prune_backup: { fields: { id: { kind: 'string' }, schedule: { kind: 'string' }, service, lastValid: { kind: 'boolean', optional: true } } },
  verify_backup: {
    fields: { schedule: { kind: 'string' }, restoreTest: { kind: 'boolean' }, id: { kind: 'string', optional: true }, fromAction: { kind: 'string', optional: true } },
    exactlyOne: ['id', 'fromAction'],
  },
  restore_backup: {
    fields: {
      id: { kind: 'string' }, service, force: { kind: 'boolean' }, target: { kind: 'string', optional: true }, flush: { kind: 'boolean', optional: true },
      collection: { kind: 'string', optional: true }, as: { kind: 'string', optional: true }, targetDir: { kind: 'string', optional: true },
    },
  },
};
