/**
 * Pure migration planning: from the observed history and files, the `migrate_up` /
 * `migrate_down` actions that reach the target, or the errors that forbid any (a changed or
 * vanished applied file, files out of order, a target that does not exist, a down without
 * opt-in). No I/O, no clock.
 */
import type { SchemaSettings } from '../config/types.js';
import type { Finding, MigrateDown, MigrateUp, ModulePlan, PlanError } from '../engine/types.js';
import type { MigrationFile } from './files.js';
import type { AppliedMigration, MigrateObserved } from './observe.js';
import type { MigrateStepParams, MigrationDirection } from './action-params.js';

export type { MigrateStepParams, MigrationDirection } from './action-params.js';

export type MigrationStep = MigrateUp | MigrateDown;

/** The migrate module's plan: its actions are migration steps only. */
export interface MigratePlan extends ModulePlan {
  actions: MigrationStep[];
}

export interface MigrateRequest {
  /** `latest`, `0`, a migration name (with or without its extension), or `previous` (one step
   *  below the applied version: `migrate down` without --to; not a config value). */
  target: string;
  allowDown: boolean;
  /** Only this direction is acceptable (`migrate up --to X` must not roll back). */
  direction?: MigrationDirection;
  /** Where the target came from, for error paths: `schema.target` or `--to`. */
  targetSource?: string;
}

const short = (sha: string) => sha.slice(0, 12);

/** The version a count of applied migrations stands for. */
function versionAt(names: readonly string[], count: number): string {
  return count === 0 ? '0' : names[count - 1]!;
}

/** The number of migrations applied at `target`, or an error sentence. */
export function resolveTarget(target: string, files: readonly MigrationFile[]): number | string {
  if (target === 'latest') return files.length;
  if (target === '0') return 0;
  const index = files.findIndex((f) => f.name === target || f.file === target);
  if (index >= 0) return index + 1;
  const latest = files.length ? `; the latest is ${files[files.length - 1]!.name}` : '; the folder has no migrations';
  return `"${target}" is not a migration in the migrations folder (expected latest, 0 or a file name without extension${latest})`;
}

/**
 * Problems with what was applied: a file that changed or vanished since, files that sort
 * before an applied one without being applied (out of order). Any of them forbids planning.
 */
export function checkHistory(observed: Pick<MigrateObserved, 'files' | 'applied' | 'directory'>): string[] {
  const problems: string[] = [];
  const byName = new Map(observed.files.map((f) => [f.name, f]));
  for (const a of observed.applied) {
    const file = byName.get(a.name);
    if (!file) problems.push(`applied migration ${a.name} has no file in ${observed.directory} any more (vanished)`);
    else if (a.sha256 !== null && a.sha256 !== file.sha256) {
      problems.push(`applied migration ${a.name} (${file.file}) changed since it was applied: sha256 ${short(a.sha256)}… then, ${short(file.sha256)}… now`);
    }
  }
  const applied = observed.applied.filter((a) => byName.has(a.name));
  const appliedNames = new Set(applied.map((a) => a.name));
  for (let i = 0; i < applied.length; i++) {
    const file = observed.files[i]!;
    if (file.name === applied[i]!.name) continue;
    if (!appliedNames.has(file.name)) {
      const later = applied.slice(i).map((a) => a.name);
      problems.push(`migration ${file.name} is not applied but sorts before the applied ${later.join(', ')} (files out of order)`);
    } else {
      problems.push(`migrations were applied in another order than the files sort: ${applied[i]!.name} was applied where ${file.name} belongs (files out of order)`);
    }
    break;
  }
  return problems;
}

function unverifiedFinding(applied: readonly AppliedMigration[]): Finding[] {
  const unverified = applied.filter((a) => a.sha256 === null).map((a) => a.name);
  if (unverified.length === 0) return [];
  return [{
    check: 'migrate.checksums', service: 'postgres', status: 'WARNING', value: unverified.length, threshold: null,
    message: `${unverified.length} applied migration(s) have no checksum recorded by jarvis-db (applied by another tool), so changes to them cannot be detected: ${unverified.join(', ')}`,
  }];
}

/** The actions that take the schema from what is applied to `request.target`. */
export function planMigrationSteps(observed: MigrateObserved, request: MigrateRequest): MigratePlan {
  const errors: PlanError[] = [];
  const error = (message: string, path?: string) => errors.push({ module: 'migrate', message, ...(path ? { path } : {}) });
  const findings = unverifiedFinding(observed.applied);
  const source = request.targetSource ?? 'schema.target';
  if (!observed.databaseExists) {
    error(`database ${observed.database} does not exist: run \`jarvis-db init\` to create it`, 'services.postgres.url');
  }
  for (const p of observed.problems) error(p, 'schema.migrations');
  for (const p of checkHistory(observed)) error(p);
  const target = request.target === 'previous' ? Math.max(0, observed.applied.length - 1) : resolveTarget(request.target, observed.files);
  if (typeof target === 'string') error(`${source} ${target}`, source === 'schema.target' ? 'schema.target' : undefined);
  if (errors.length > 0 || typeof target === 'string') return { actions: [], findings, errors };

  const names = observed.files.map((f) => f.name);
  const current = observed.applied.length;
  const targetVersion = versionAt(names, target);
  const actions: MigrationStep[] = [];
  if (target > current) {
    if (request.direction === 'down') {
      error(`${source} ${targetVersion} is above the applied version ${versionAt(names, current)}: that is an up, not a down`);
      return { actions, findings, errors };
    }
    for (let i = current; i < target; i++) {
      const file = observed.files[i]!;
      const params: MigrateStepParams<'up'> = { name: file.name, file: file.file, direction: 'up', sha256: file.sha256, from: versionAt(names, i), to: file.name };
      actions.push({
        id: `migrate.up.${file.name}`, type: 'migrate_up', module: 'migrate', target: file.name,
        reason: `not applied; ${source} is ${request.target === targetVersion ? targetVersion : `${request.target} (${targetVersion})`}`,
        risk: 'safe', estimate: null, params, services: ['postgres'],
      });
    }
  } else if (target < current) {
    if (request.direction === 'up') {
      error(`${source} ${targetVersion} is below the applied version ${versionAt(names, current)}: that is a down, not an up`);
      return { actions, findings, errors };
    }
    const rolledBack = observed.applied.slice(target).map((a) => a.name).reverse();
    if (!request.allowDown) {
      error(
        `${source} ${targetVersion} is below the applied version ${versionAt(names, current)}: rolling back ${rolledBack.join(', ')} is destructive and needs ${source === 'schema.target' ? 'schema.allowDown: true' : '--allow-down (or schema.allowDown: true)'}`,
        source === 'schema.target' ? 'schema.allowDown' : undefined,
      );
      return { actions, findings, errors };
    }
    for (let i = current - 1; i >= target; i--) {
      const applied = observed.applied[i]!;
      const file = observed.files[i]!;
      if (file.hasDown === false) {
        error(`migration ${file.name} cannot be rolled back: ${file.file} has no "-- Down Migration" section`);
        continue;
      }
      const params: MigrateStepParams<'down'> = { name: file.name, file: file.file, direction: 'down', sha256: applied.sha256, from: file.name, to: versionAt(names, i) };
      actions.push({
        id: `migrate.down.${file.name}`, type: 'migrate_down', module: 'migrate', target: file.name,
        reason: `applied above ${source} ${targetVersion}: rolled back, its tables and data dropped`,
        risk: 'destructive', estimate: null, params, services: ['postgres'],
      });
    }
    if (errors.length > 0) return { actions: [], findings, errors };
  }
  return { actions, findings, errors };
}

/** The migrate module's plan for the config's `schema` section. */
export function planMigrations(schema: Pick<SchemaSettings, 'target' | 'allowDown'>, observed: MigrateObserved): MigratePlan {
  return planMigrationSteps(observed, { target: schema.target, allowDown: schema.allowDown, targetSource: 'schema.target' });
}



/**
 * `schema.backupBefore` (docs/architecture.md §2): every step requires the backup the backup
 * module plans before migrations (`backupId`), so that it runs first and a step waits for it.
 * Without a postgres schedule there is none: that is this module's error, which holds back the
 * steps and nothing else.
 */
export function requireBackupFirst(part: MigratePlan, backupId: string | undefined): MigratePlan {
  if (part.actions.length === 0) return part;
  if (backupId === undefined) {
    return {
      ...part,
      errors: [...part.errors, {
        module: 'migrate', path: 'schema.backupBefore',
        message: 'schema.backupBefore asks for a PostgreSQL backup before migrations, but no backup schedule backs up postgres (add one under backups:, or set schema.backupBefore: false)',
      }],
    };
  }
  return { ...part, actions: part.actions.map((a) => ({ ...a, requires: [...new Set([...(a.requires ?? []), backupId])] })) };
}
