/**
 * The domain modules the engine knows, and the handler of every action type.
 *
 * How a domain plugs in (the engine itself does not change):
 * 1. `src/<domain>/module.ts` exports a `DomainModule` (observe: read-only I/O returning plain
 *    JSON; plan: pure; fingerprint: what its actions depend on, nothing that merely ages) and
 *    one `Handler` per action type it plans.
 * 2. One line in MODULE_LOADERS below (loaded lazily, so that start-up stays fast).
 * 3. Its action types: in ACTION_TYPES and the `Action` union (src/engine/types.ts), their
 *    params and saved-plan rules in `src/<domain>/action-params.ts` (PARAM_RULES).
 * 4. Its lines in HANDLERS, `lazy(...)` ones. HANDLERS is a HandlerMap: an action type without
 *    a handler, or with the handler of another variant, does not compile.
 * 5. Its case in test/engine/convergence.test.ts.
 * 6. Optionally `describeChange` (plan --base words for its config entries), in a small pure
 *    file listed in CHANGE_DESCRIBERS too.
 * Conventions for actions: ids `<module>.<verb>.<target>`, the same for the same decision on
 * every re-plan; `params.schedule` or `params.policy` names the config entry (plan --base groups
 * its impact by it); `estimate.rows` for row counts (plan --base words them); `requires` for
 * an action that needs an earlier one of the same apply. Ordering across domains is the
 * planner's (src/engine/planner.ts), by action type and then `requires`.
 *
 * Test hook: JARVIS_DB_TEST_MODULE names an ES module file exporting `module` (a DomainModule)
 * and `handlers` (handlers of its own action types). Only tests set it (test/engine/*.test.ts,
 * test/cli/*.test.ts); it lets them prove the engine end to end through the real CLI with a
 * module of their own.
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { describeScheduleChanges } from '../backup/describe.js';
import { describeHealthChanges } from '../health/describe.js';
import { describeSchemaChanges } from '../migrate/describe.js';
import { describePolicyChanges } from '../retention/describe.js';
import type { Action, DomainModule, Handler, HandlerMap } from './types.js';

type AnyModule = DomainModule<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** One line per domain, in the order their findings and errors are listed. */
export const MODULE_LOADERS: Record<string, () => Promise<AnyModule>> = {
  backup: async () => (await import('../backup/module.js')).backupModule,
  // PITR findings only (no actions): the backup module's WAL listing, the server's side.
  wal: async () => (await import('../wal/module.js')).walModule,
  migrate: async () => (await import('../migrate/module.js')).migrateModule,
  retention: async () => (await import('../retention/module.js')).retentionModule,
  health: async () => (await import('../health/module.js')).healthModule,
};

/**
 * Each domain's `describeChange`, in MODULE_LOADERS order, without loading the modules: what
 * `plan --base` uses when it is not given the modules (pure tests of the impact).
 */
export const CHANGE_DESCRIBERS: readonly Pick<DomainModule, 'describeChange'>[] = [
  { describeChange: describeScheduleChanges },
  { describeChange: describeSchemaChanges },
  { describeChange: describePolicyChanges },
  { describeChange: describeHealthChanges },
];

/** A handler whose code is imported only when an action of its type runs. */
function lazy<M, A extends Action>(load: () => Promise<M>, pick: (m: M) => Handler<A>): Handler<A> {
  return async (action, ctx, progress) => pick(await load())(action, ctx, progress);
}

const backup = () => import('../backup/handlers.js');
const migrate = () => import('../migrate/module.js');
const retention = () => import('../retention/module.js');

export const HANDLERS: HandlerMap = {
  create_backup: lazy(backup, (m) => m.createBackupHandler),
  copy_backup: lazy(backup, (m) => m.copyBackupHandler),
  verify_backup: lazy(backup, (m) => m.verifyBackupHandler),
  prune_backup: lazy(backup, (m) => m.pruneBackupHandler),
  prune_wal: lazy(backup, (m) => m.pruneWalHandler),
  create_point: lazy(() => import('../backup/point-actions.js'), (m) => m.createPointHandler),
  prune_point: lazy(() => import('../backup/point-actions.js'), (m) => m.prunePointHandler),
  migrate_up: lazy(migrate, (m) => m.migrateUpHandler),
  migrate_down: lazy(migrate, (m) => m.migrateDownHandler),
  retention_delete: lazy(retention, (m) => m.retentionDeleteHandler),
  retention_archive: lazy(retention, (m) => m.retentionArchiveHandler),
  retention_anonymize: lazy(retention, (m) => m.retentionAnonymizeHandler),
  retention_compress: lazy(retention, (m) => m.retentionCompressHandler),
  retention_drop_partitions: lazy(() => import('../retention/partition-run.js'), (m) => m.dropPartitionsHandler),
  create_partition: lazy(() => import('../retention/partition-run.js'), (m) => m.createPartitionHandler),
  copy_archive: lazy(() => import('../retention/archive-copy.js'), (m) => m.copyArchiveHandler),
  prune_archive: lazy(retention, (m) => m.pruneArchiveHandler),
  restore_backup: lazy(backup, (m) => m.restoreBackupHandler),
  restore_archive: lazy(() => import('../retention/archives.js'), (m) => m.restoreArchiveHandler),
  seed_dataset: lazy(() => import('../migrate/init.js'), (m) => m.seedDatasetHandler),
  retention_erase: lazy(() => import('../erasure/retention.js'), (m) => m.retentionEraseHandler),
  erase_user: lazy(() => import('../erasure/handlers.js'), (m) => m.eraseUserHandler),
  reapply_tombstones: lazy(() => import('../erasure/handlers.js'), (m) => m.reapplyTombstonesHandler),
};

/** What the engine works with: modules to observe and plan, handlers to execute. */
export interface EngineParts {
  modules: AnyModule[];
  /**
   * HANDLERS, plus the handlers of a test module's own action types (whose actions are outside
   * the `Action` union: `Handler<never>` accepts a handler of any variant).
   */
  handlers: HandlerMap & Record<string, Handler<never>>;
}

interface TestModuleFile { module: AnyModule; handlers?: Record<string, Handler<never>> }

/** The registered modules (all of them, loaded now) and handlers; the test hook adds its own. */
export async function defaultParts(env: NodeJS.ProcessEnv = process.env): Promise<EngineParts> {
  const modules = await Promise.all(Object.values(MODULE_LOADERS).map((load) => load()));
  let handlers: EngineParts['handlers'] = HANDLERS;
  const testModule = env.JARVIS_DB_TEST_MODULE;
  if (testModule) {
    const loaded = (await import(pathToFileURL(resolve(testModule)).href)) as TestModuleFile;
    modules.push(loaded.module);
    handlers = { ...HANDLERS, ...loaded.handlers };
  }
  return { modules, handlers };
}
