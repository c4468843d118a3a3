/** The params of the erasure's action types (command-only), and their rules for a saved plan. */
import type { ParamRuleTable } from '../engine/action-params.js';
import { RETENTION_PARAM_RULES } from '../retention/action-params.js';

/** `jarvis-db erase --user ID`: the user id as given (a bind parameter, never SQL). */
export interface EraseUserParams {
  user: string;
}

/**
 * After a restore (`restore ID`, `restore --point ID`): the tombstones recorded since the backup
 * was taken, re-applied to what the restore actions (by id, per service) brought back.
 */
export interface ReapplyTombstonesParams {
  /** The backup's (or the point's) start: tombstones recorded from then on. */
  since: string;
  /** The tombstones' ids, as read when the restore was planned. */
  tombstones: string[];
  postgres?: string;
  redis?: string;
  chroma?: string;
}

export const ERASURE_PARAM_RULES: Pick<ParamRuleTable, 'erase_user' | 'reapply_tombstones' | 'retention_erase'> = {
  // A retention policy's run, with the params of the others (src/retention/action-params.ts).
  retention_erase: RETENTION_PARAM_RULES.retention_anonymize,
  erase_user: { fields: { user: { kind: 'string' } } },
  reapply_tombstones: {
    fields: {
      since: { kind: 'timestamp' }, tombstones: { kind: 'string-list' },
      postgres: { kind: 'string', optional: true }, redis: { kind: 'string', optional: true }, chroma: { kind: 'string', optional: true },
    },
  },
};
