/**
 * The S3 edge (docs/architecture.md §6): an S3 client for a repository's bucket, and S3 failures
 * as one JarvisError('REPOSITORY') line naming the repository and `s3://bucket/prefix` with what
 * to do. The client fails in seconds when the endpoint is down (bounded connection and request
 * timeouts, one retry), and credentials come from the standard AWS chain, or from the `env`
 * given (tests, the sandbox) when it holds them. No secret key ever reaches a message, a hint
 * or a cause: a cause is a fresh error carrying the S3 code and message only.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { JarvisError } from '../errors.js';

export type S3Sdk = typeof import('@aws-sdk/client-s3');

/**
 * The SDK is loaded on first use, never at start-up: importing it costs about a quarter of a
 * second, which every command (plan, health, a local-only config) would pay otherwise.
 */
let loaded: { s3: S3Sdk } | undefined;
let loading: Promise<{ s3: S3Sdk }> | undefined;

export async function loadS3Sdk(): Promise<{ s3: S3Sdk }> {
  loading ??= import('@aws-sdk/client-s3').then((s3) => (loaded = { s3 }));
  return loading;
}

/** The loaded SDK; `loadS3Sdk` must have been awaited first. */
export function s3Sdk(): { s3: S3Sdk } {
  if (!loaded) throw new JarvisError('INTERNAL', 'the S3 SDK was used before loadS3Sdk()');
  return loaded;
}

/** Where a bucket is served: the fields of an S3 repository location the client needs. */
export interface S3Endpoint {
  region: string;
  /** An S3-compatible server (MinIO, Ceph, R2, s3rver); absent for AWS itself. */
  endpoint?: string;
  forcePathStyle: boolean;
}

/** What a failure names: "repository offsite (s3://bucket/prefix)". */
export interface S3Target {
  repository: string;
  bucket: string;
  prefix: string;
  endpoint?: string;
}

const CONNECTION_TIMEOUT_MS = 5_000;
/** No byte for this long on an open request: a hung server, not a slow upload (a part is 8 MiB). */
const REQUEST_TIMEOUT_MS = 60_000;
const MAX_ATTEMPTS = 2;

/**
 * The SDK warns on Node < 22 once, synchronously, while a client's config is built
 * (@aws-sdk/core emitWarningIfUnsupportedVersion → process.emitWarning('NodeVersionSupportWarning: …')).
 * jarvis-db supports Node 20: that one warning is dropped, every other passes.
 */
function withoutNodeVersionWarning<T>(build: () => T): T {
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : `${warning.name}: ${warning.message}`;
    if (/NodeVersionSupportWarning/.test(text)) return;
    (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return build();
  } finally {
    process.emitWarning = emitWarning;
  }
}

/** Static credentials or a profile from `env` when it names them; otherwise the SDK's default chain. */
function credentialsFrom(env: NodeJS.ProcessEnv | undefined): Pick<ConstructorParameters<typeof S3Client>[0] & object, 'credentials' | 'profile'> {
  if (!env || env === process.env) return {};
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    return {
      credentials: {
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
      },
    };
  }
  return env.AWS_PROFILE ? { profile: env.AWS_PROFILE } : {};
}

/** A client for `where` (the SDK must be loaded: `loadS3Sdk`). */
export function createS3Client(where: S3Endpoint, env?: NodeJS.ProcessEnv): S3Client {
  const { S3Client } = s3Sdk().s3;
  return withoutNodeVersionWarning(() => new S3Client({
    region: where.region,
    ...(where.endpoint ? { endpoint: where.endpoint } : {}),
    forcePathStyle: where.forcePathStyle,
    ...credentialsFrom(env),
    maxAttempts: MAX_ATTEMPTS,
    requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
    // Checksums only where S3 requires them: streamed aws-chunked bodies are not understood by
    // every S3-compatible server, and the store hashes what it stores itself (SHA-256).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  }));
}

/** `s3://bucket/key`. */
export function s3Url(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

interface SdkError {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
  errors?: unknown[];
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'TimeoutError', 'RequestTimeout']);

/** The S3 error code or the network errno of an SDK failure (looking into its causes). */
export function s3ErrorCode(e: unknown): string {
  const seen = new Set<unknown>();
  let current: unknown = e;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const err = current as SdkError;
    const code = err.code ?? err.Code;
    if (code && code !== 'ERR_INTERNAL') return code;
    if (err.name && err.name !== 'Error' && err.name !== 'AggregateError' && err.name !== 'S3ServiceException') return err.name;
    current = err.cause ?? err.errors?.[0];
  }
  return 'Unknown';
}

/** Whether an SDK failure says the object (or the key) does not exist. */
export function isNotFound(e: unknown): boolean {
  const code = s3ErrorCode(e);
  return code === 'NoSuchKey' || code === 'NotFound' || ((e as SdkError | undefined)?.$metadata?.httpStatusCode === 404 && code !== 'NoSuchBucket');
}

/** Removes every secret the client could know from a text (belt and braces: S3 errors do not echo them). */
function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('***');
  return out;
}

/**
 * An S3 failure as the one line the operator reads. `doing` is what was attempted ("listing
 * s3://b/p/postgres/"), for the generic case; `secrets` are scrubbed from the cause.
 */
export function s3Failure(e: unknown, target: S3Target, doing: string, env: NodeJS.ProcessEnv = process.env): JarvisError {
  if (e instanceof JarvisError) return e;
  const where = `repository ${target.repository} (${s3Url(target.bucket, target.prefix)})`;
  const code = s3ErrorCode(e);
  const status = (e as SdkError | undefined)?.$metadata?.httpStatusCode;
  const secrets = [env.AWS_SECRET_ACCESS_KEY, env.AWS_SESSION_TOKEN, process.env.AWS_SECRET_ACCESS_KEY, process.env.AWS_SESSION_TOKEN].filter((s): s is string => Boolean(s));
  const original = (e as SdkError | undefined)?.message ?? String(e);
  const cause = Object.assign(new Error(scrub(`${code}: ${original}`, secrets)), { name: code });
  const fail = (message: string, hint: string) => new JarvisError('REPOSITORY', `${where}: ${message}`, { hint, cause });
  const credentialsHint = 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to a key of the account that owns the bucket';
  switch (code) {
    case 'InvalidAccessKeyId':
      return fail('the access key id is not known to the server', credentialsHint);
    case 'SignatureDoesNotMatch':
      return fail('the secret access key does not match the access key id', credentialsHint);
    case 'InvalidToken':
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
      return fail('the session token is invalid or expired', 'refresh the credentials (AWS_SESSION_TOKEN, or the profile\'s SSO login)');
    case 'CredentialsProviderError':
      return fail('no AWS credentials were found', credentialsHint);
    case 'AccessDenied':
    case 'AllAccessDisabled':
    case 'Forbidden':
      return fail(`access denied while ${doing}`, `give the key s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject and s3:AbortMultipartUpload on bucket ${target.bucket}`);
    case 'NoSuchBucket':
      return fail(`the bucket ${target.bucket} does not exist`, `create bucket ${target.bucket}, or correct \`bucket\` in the repository's config`);
    case 'PermanentRedirect':
    case 'AuthorizationHeaderMalformed':
    case 'IllegalLocationConstraintException':
      return fail(`the bucket is not in region ${code === 'PermanentRedirect' ? 'given' : 'configured'} (${code})`, 'set `region` to the bucket\'s region');
    default:
      break;
  }
  if (UNREACHABLE.has(code)) {
    const endpoint = target.endpoint ?? 'the AWS S3 endpoint';
    return fail(`${endpoint} is unreachable (${code})`, 'check `endpoint` in the repository\'s config and that the server is running and reachable from here');
  }
  return fail(`S3 error ${code}${status ? ` (HTTP ${status})` : ''} while ${doing}`, `check the repository's S3 settings and the server's logs; retry if the failure was transient`);
}
