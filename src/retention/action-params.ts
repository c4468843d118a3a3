/** The params of the retention module's actions, and their rules for a saved plan. */
import type { ParamRuleTable, ParamRules } from '../engine/action-params.js';

/** The params every retention run (delete, archive, anonymize, compress) reads. */
export interface RetentionParams {
  policy: string;
  table: string;
  column: string;
  /** ISO timestamp: only rows older than this are touched. */
  cutoff: string;
  batchSize: number;
  /** delete with maxRows: rows at or before this age (server text) are beyond the cap. */
  capBoundary?: string;
  /** The policies that run before it and may take some of its rows with their parents. */
  overlapsWith?: string[];
}

/** One partition of a retention_drop_partitions action. */
export interface PartitionToDrop {
  /** `schema.name` for people, and its parts (SQL never splits a name at a dot). */
  partition: string;
  schema: string;
  name: string;
  /** The range, as the server's text of its bounds (MINVALUE / MAXVALUE for an open end). */
  from: string;
  to: string;
  /** Archived before the drop: the policy's action, or for a table an interrupted run detached, what its marker says. */
  archiveFirst: boolean;
  /** Planned as already detached by an interrupted run (its marker found). */
  detached: boolean;
  /** The rows it holds when planned (an estimate unless `exact`), null when not counted. */
  rows: number | null;
  exact: boolean;
}

/**
 * retention_drop_partitions: every partition of one policy wholly older than the cut-off, in one
 * action (one session, one detach transaction, one drop transaction for those not archived).
 */
export interface DropPartitionsParams {
  policy: string;
  /** The parent, `schema.name` for people. */
  table: string;
  column: string;
  /** ISO: each partition's upper bound must be at or before it. */
  cutoff: string;
  /** DETACH … CONCURRENTLY (PostgreSQL 14+, no default partition). */
  concurrently: boolean;
  partitions: PartitionToDrop[];
}

/** create_partition: a declared partition still to come. */
export interface CreatePartitionParams {
  /** The parent, `schema.name` for people, and its parts. */
  table: string;
  tableSchema: string;
  tableName: string;
  /** The new partition's name (in the parent's schema). */
  partition: string;
  column: string;
  /** ISO timestamps: FROM (inclusive) TO (exclusive). */
  from: string;
  to: string;
}

export interface PruneArchiveParams {
  archiveId: string;
  policy: string;
  /** Every repository holding it; absent: the first only (a single repository). */
  repositories?: string[];
}

/** copy_archive: a finished archive of the first repository copied to another. */
export interface CopyArchiveParams {
  /** The archive; absent: the one `fromAction` (an archive run of the same apply) wrote, if any. */
  archiveId?: string;
  fromAction?: string;
  policy: string;
  from: string;
  to: string;
}

/** `jarvis-db archive restore ID` (command-only). */
export interface RestoreArchiveParams {
  archiveId: string;
  /** --table: only this table of the archive. */
  table?: string;
}

const run: ParamRules<RetentionParams> = {
  fields: {
    policy: { kind: 'string' }, table: { kind: 'string' }, column: { kind: 'string' }, cutoff: { kind: 'timestamp' },
    batchSize: { kind: 'positive-integer' }, capBoundary: { kind: 'string', optional: true }, overlapsWith: { kind: 'string-list', optional: true },
  },
};

const dropPartitions: ParamRules<DropPartitionsParams> = {
  fields: {
    policy: { kind: 'string' }, table: { kind: 'string' }, column: { kind: 'string' }, cutoff: { kind: 'timestamp' }, concurrently: { kind: 'boolean' },
    partitions: {
      kind: 'records',
      fields: {
        partition: { kind: 'string' }, schema: { kind: 'string' }, name: { kind: 'string' }, from: { kind: 'string' }, to: { kind: 'string' },
        archiveFirst: { kind: 'boolean' }, detached: { kind: 'boolean' }, rows: { kind: 'count-or-null' }, exact: { kind: 'boolean' },
      },
    },
  },
};

const createPartition: ParamRules<CreatePartitionParams> = {
  fields: {
    table: { kind: 'string' }, tableSchema: { kind: 'string' }, tableName: { kind: 'string' }, partition: { kind: 'string' }, column: { kind: 'string' },
    from: { kind: 'timestamp' }, to: { kind: 'timestamp' },
  },
};

export const RETENTION_PARAM_RULES: Pick<ParamRuleTable, 'retention_delete' | 'retention_archive' | 'retention_anonymize' | 'retention_compress' | 'retention_drop_partitions' | 'create_partition' | 'copy_archive' | 'prune_archive' | 'restore_archive'> = {
  retention_delete: run, retention_archive: run, retention_anonymize: run, retention_compress: run,
  retention_drop_partitions: dropPartitions, create_partition: createPartition,
  copy_archive: { fields: { archiveId: { kind: 'string', optional: true }, fromAction: { kind: 'string', optional: true }, policy: { kind: 'string' }, from: { kind: 'string' }, to: { kind: 'string' } } },
  prune_archive: { fields: { archiveId: { kind: 'string' }, policy: { kind: 'string' }, repositories: { kind: 'string-list', optional: true } } },
  restore_archive: { fields: { archiveId: { kind: 'string' }, table: { kind: 'string', optional: true } } },
};
