/** The params of a migration step (migrate_up, migrate_down), and their rules for a saved plan. */
import type { FieldRule, ParamRuleTable } from '../engine/action-params.js';

export type MigrationDirection = 'up' | 'down';

export interface MigrateStepParams<D extends MigrationDirection = MigrationDirection> {
  name: string;
  file: string;
  direction: D;
  /** up: the file's SHA-256 when planned; down: the one recorded when it was applied. */
  sha256: string | null;
  /** The version before and after this step: a migration name, or `0` for none. */
  from: string;
  to: string;
  /** `migrate up --lock-timeout`: how long the handler waits for node-pg-migrate's lock. */
  lockTimeoutMs?: number;
  /** `migrate up --rehearse`: the marked steps run in one transaction that is rolled back. */
  rehearse?: boolean;
}

/** `jarvis-db init --seed` (command-only): the generated JARVIS dataset (src/dataset/seed.ts). */
export interface SeedDatasetParams {
  /** 1 ≈ 700 MB, 0.1 ≈ 70 MB */
  scale: number;
}

const step = (direction: MigrationDirection) => ({
  fields: {
    name: { kind: 'string' }, file: { kind: 'string' }, direction: { kind: 'one-of', values: [direction] },
    sha256: { kind: 'sha256-or-null' }, from: { kind: 'string' }, to: { kind: 'string' },
    lockTimeoutMs: { kind: 'count', optional: true }, rehearse: { kind: 'boolean', optional: true },
  } satisfies Record<keyof MigrateStepParams, FieldRule>,
});

export const MIGRATE_PARAM_RULES: Pick<ParamRuleTable, 'migrate_up' | 'migrate_down' | 'seed_dataset'> = {
  migrate_up: step('up'), migrate_down: step('down'),
  seed_dataset: { fields: { scale: { kind: 'positive-number' } } },
};
