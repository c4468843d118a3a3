/**
 * What s3rver 3.7 lacks of S3 and the S3 store relies on (docs/architecture.md §6), added to the
 * sandbox's s3rver over its own on-disk state:
 *   - ListMultipartUploads (GET /<bucket>?uploads) and AbortMultipartUpload (DELETE
 *     /<bucket>/<key>?uploadId=), NotImplemented / MethodNotAllowed in s3rver: debris cleaning
 *     lists and aborts the multipart uploads a killed run left. s3rver keeps an upload in
 *     `<data>/<bucket>/._S3rver_uploads/<uploadId>/` (a `key` file, then the parts);
 *   - delimiter listings that report a common prefix whose keys are two or more levels deeper,
 *     and listings that are never truncated (s3rver's continuation tokens need DES, gone from
 *     Node's OpenSSL 3).
 *
 * The source runs inside the sandbox's s3rver launcher (servers.ts startS3Server) as
 * `(<source>)(server, libDir, dataDir, accessKeyId)`, before `server.run()`; it is JavaScript
 * text because that launcher is a `node -e` script.
 */
export const S3RVER_UPLOADS_EXTENSION = String.raw`(function completeS3rver(server, libDir, dataDir, accessKeyId) {
  const fs = require('node:fs');
  const path = require('node:path');
  const S3Error = require(path.join(libDir, 'models', 'error.js'));
  const uploadsDir = (bucket) => path.join(dataDir, bucket, '._S3rver_uploads');
  const middleware = async (ctx, next) => {
    const match = /^\/([^/]+)\/?(.*)$/.exec(ctx.path);
    const listing = ctx.method === 'GET' && match && !match[2] && 'uploads' in ctx.query;
    const aborting = ctx.method === 'DELETE' && match && match[2] && 'uploadId' in ctx.query;
    if (!listing && !aborting) return next();
    // The same check s3rver's authentication makes first: the access key id must be known.
    const credential = /Credential=([^/,\s]+)\//.exec(ctx.get('authorization') || '');
    if (!credential || credential[1] !== accessKeyId) throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
    const bucket = match[1];
    if (!fs.existsSync(path.join(dataDir, bucket))) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
    if (aborting) {
      const dir = path.join(uploadsDir(bucket), path.basename(String(ctx.query.uploadId)));
      let key = null;
      try { key = fs.readFileSync(path.join(dir, 'key'), 'utf8'); } catch { /* no such upload */ }
      if (key !== decodeURIComponent(match[2])) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: String(ctx.query.uploadId) });
      fs.rmSync(dir, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    const prefix = String(ctx.query.prefix || '');
    const uploads = [];
    let names = [];
    try { names = fs.readdirSync(uploadsDir(bucket)); } catch { /* none yet */ }
    for (const uploadId of names) {
      const dir = path.join(uploadsDir(bucket), uploadId);
      let key;
      try { key = fs.readFileSync(path.join(dir, 'key'), 'utf8'); } catch { continue; }
      if (key.startsWith(prefix)) uploads.push({ Key: key, UploadId: uploadId, Initiated: fs.statSync(dir).mtime.toISOString() });
    }
    uploads.sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : a.UploadId < b.UploadId ? -1 : 1));
    ctx.body = {
      ListMultipartUploadsResult: {
        '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
        Bucket: bucket, Prefix: prefix, KeyMarker: '', UploadIdMarker: '', MaxUploads: 10000, IsTruncated: false,
        ...(uploads.length ? { Upload: uploads } : {}),
      },
    };
  };
  // Just before s3rver's router (the last middleware), after its XML encoder and error handling.
  server.middleware.splice(server.middleware.length - 1, 0, middleware);

  // s3rver's delimiter listing never descends below the first delimiter, so a folder holding
  // only deeper keys (p/postgres/ above p/postgres/nightly/<id>/) is missing from the common
  // prefixes: list everything under the prefix and roll the keys up as S3 does. A listing is
  // never truncated: s3rver's continuation tokens are DES-encrypted, which Node's OpenSSL 3
  // refuses (a truncated listing would be an InternalError).
  const listObjects = server.store.listObjects.bind(server.store);
  server.store.listObjects = async (bucket, options) => {
    const all = await listObjects(bucket, { ...options, delimiter: undefined, maxKeys: Infinity });
    const delimiter = options.delimiter;
    if (!delimiter) return { ...all, isTruncated: false };
    const prefix = options.prefix || '';
    const commonPrefixes = new Set();
    const objects = [];
    for (const object of all.objects) {
      const rest = object.key.slice(prefix.length);
      const at = rest.indexOf(delimiter);
      if (at !== -1) commonPrefixes.add(prefix + rest.slice(0, at + delimiter.length));
      else objects.push(object);
    }
    return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated: false };
  };
})`;
