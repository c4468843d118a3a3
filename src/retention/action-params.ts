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

export interface PruneArchiveParams {
  archiveId: string;
  policy: string;
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

export const RETENTION_PARAM_RULES: Pick<ParamRuleTable, 'retention_delete' | 'retention_archive' | 'retention_anonymize' | 'retention_compress' | 'prune_archive' | 'restore_archive'> = {
  retention_delete: run, retention_archive: run, retention_anonymize: run, retention_compress: run,
  prune_archive: { fields: { archiveId: { kind: 'string' }, policy: { kind: 'string' } } },
  restore_archive: { fields: { archiveId: { kind: 'string' }, table: { kind: 'string', optional: true } } },
};
