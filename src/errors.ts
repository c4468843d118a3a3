/**
 * Typed errors. Every failure that reaches the user is a JarvisError with a stable `code`
 * (for scripts and tests), a one-line human message and, where there was one, the original
 * error as `cause`. `src/cli/failure.ts` is the one place that turns them into output.
 */
export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_INVALID'
  | 'USAGE'
  | 'NOT_IMPLEMENTED'
  | 'SERVICE_UNREACHABLE'
  | 'SERVICE_ERROR'
  | 'TOOL_MISSING'
  | 'TOOL_VERSION'
  | 'TOOL_FAILED'
  | 'SANDBOX'
  | 'LOCK_TIMEOUT'
  | 'STALE_PLAN'
  | 'PLAN_INVALID'
  | 'PLAN_ERRORS'
  | 'APPLY_FAILED'
  | 'CONFIRMATION_REQUIRED'
  | 'BACKUP_NOT_FOUND'
  | 'BACKUP_INVALID'
  | 'BACKUP_FAILED'
  | 'VERIFY_FAILED'
  | 'RESTORE_REFUSED'
  | 'RESTORE_FAILED'
  | 'DECRYPT_FAILED'
  | 'MIGRATION_FAILED'
  | 'MIGRATION_DRIFT'
  | 'RETENTION_FAILED'
  | 'STORAGE_FAILED'
  | 'REPOSITORY'
  | 'ARCHIVE_INVALID'
  | 'HEALTH_FAILED'
  | 'WAL_NOT_FOUND'
  | 'INTERRUPTED'
  | 'INTERNAL';

export class JarvisError extends Error {
  readonly code: ErrorCode;
  /** What the operator can do about it, printed after the message. */
  readonly hint?: string;
  /** Several independent problems reported at once (config validation). */
  readonly details: string[];

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; hint?: string; details?: string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'JarvisError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? [];
  }
}

export function isJarvisError(e: unknown): e is JarvisError {
  return e instanceof JarvisError;
}

/** Message of anything thrown, without its stack. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
