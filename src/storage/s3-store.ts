/**
 * The sealed-store contract (sealed-store.ts) on an S3-compatible object store.
 * PLACEHOLDER: the implementation lands with the S3 repositories work; until then opening one fails clearly.
 */
import { JarvisError } from '../errors.js';
import type { SealedStore } from './sealed-store.js';

/** Where a repository's objects are: `s3://bucket/prefix`. */
export interface S3Location {
  bucket: string;
  /** '' or ending in '/'. */
  prefix: string;
  region: string;
  /** An S3-compatible server (MinIO, Ceph, R2, s3rver); absent for AWS itself. */
  endpoint?: string;
  forcePathStyle: boolean;
}

export interface S3StoreOptions {
  /** The repository's name, for messages ("repository offsite (s3://bucket/prefix): ..."). */
  repository: string;
  /** The file whose presence publishes an item (manifest.json, archive.json). */
  manifestName: string;
  /** A folder below the repository's prefix ('archives/'), '' for its root. */
  subPrefix?: string;
  /** Where the AWS credential chain and the test pause points read their settings. */
  env?: NodeJS.ProcessEnv;
}

export function openS3Store(location: S3Location, options: S3StoreOptions): SealedStore {
  throw new JarvisError('INTERNAL', `repository ${options.repository} (s3://${location.bucket}/${location.prefix}): S3 repositories are not built yet`);
}
