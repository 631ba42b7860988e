import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { format } from 'node:util';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ValidationError } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import { localS3ClientConfig } from '../../shared/s3-client-config.ts';
import { CONDITIONAL_HEADERS, evaluatePreconditions, guardServedEtag, ifRangeHolds } from './conditional.ts';
import { SafeFilesystemStore } from './fs-store.ts';
import { DUMMY_ACCOUNT, S3rver, type S3rverLogger } from './s3rver-internals.ts';
import { verifySigV4 } from './sigv4-verify.ts';

export interface ObjectStoreOptions {
  /** Interface to listen on, e.g. 127.0.0.1. */
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Objects live here (s3rver's filesystem layout) and survive restarts. */
  directory: string;
  /** Created at start if missing (CreateBucket). */
  buckets: string[];
  region: string;
  /** The only key pair the store accepts. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /**
   * Serve HTTPS with this certificate and key (PEM) instead of plain HTTP: real S3 is HTTPS only, so this
   * is how the device's TLS read path is exercised and benchmarked locally (`ota dev --s3-tls`).
   */
  tls?: { cert: string; key: string };
  logger?: Logger;
}

export interface RunningObjectStore {
  port: number;
  /** http://host:port (https:// with `tls`) — give it to localS3ClientConfig(). */
  endpoint: string;
  /** A path-style presigned GET URL (query SigV4) for bucket/key, valid for expiresInSec seconds. */
  presignGetUrl(bucket: string, key: string, expiresInSec: number): Promise<string>;
  close(): Promise<void>;
}

/** Longest presigned-URL lifetime SigV4 allows (AWS S3 API, "Authenticating Requests: Using Query
 * Parameters": X-Amz-Expires minimum 1, maximum 604800 seconds). */
const MAX_PRESIGN_SECONDS = 604800;

/** S3 bucket naming rules (S3 User Guide, "Bucket naming rules"), the subset that matters locally. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * s3rver's authentication middleware looks access keys up in one process-wide registry (lib/models/
 * account.js). Several stores in one process may register the same key, so registrations are counted.
 */
const keyRegistrations = new Map<string, number>();
function registerKey(accessKeyId: string, secretAccessKey: string): void {
  keyRegistrations.set(accessKeyId, (keyRegistrations.get(accessKeyId) ?? 0) + 1);
  DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
}
function unregisterKey(accessKeyId: string): void {
  const n = (keyRegistrations.get(accessKeyId) ?? 1) - 1;
  if (n > 0) keyRegistrations.set(accessKeyId, n);
  else {
    keyRegistrations.delete(accessKeyId);
    // s3rver's own built-in S3RVER key is never ours to revoke.
    if (accessKeyId !== 'S3RVER') DUMMY_ACCOUNT.revokeAccessKey(accessKeyId);
  }
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** An S3 REST error response (AWS S3 API Reference, "Error responses": XML body, Code + Message). */
function sendS3Error(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  detail: Record<string, string> = {},
): void {
  const extra = Object.entries(detail)
    .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`)
    .join('');
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message>${extra}` +
    `<RequestId>${randomUUID()}</RequestId></Error>`;
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/xml');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('x-amz-error-code', code);
  // The request body (a PUT we refuse) is not read; closing avoids draining it into a kept-alive socket.
  if (req.method !== 'GET' && req.method !== 'HEAD') res.setHeader('Connection', 'close');
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Parses `X-Amz-Date` (ISO 8601 basic, `yyyyMMddTHHmmssZ`) into epoch milliseconds, or NaN. */
export function parseAmzDate(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return Number.NaN;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** Access key id named by a request's credentials, or undefined when the request is anonymous. */
function requestAccessKey(req: IncomingMessage, query: URLSearchParams): string | undefined | null {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const v4 = /Credential=([^/,\s]+)/.exec(auth);
    if (v4) return v4[1];
    const v2 = /^AWS ([^:\s]+):/.exec(auth);
    if (v2) return v2[1];
    return null; // present but unparseable
  }
  if (query.has('X-Amz-Algorithm')) return query.get('X-Amz-Credential')?.split('/')[0] ?? null;
  if (query.has('Signature')) return query.get('AWSAccessKeyId') ?? null;
  return undefined;
}

type RangeSpec = { kind: 'explicit'; start: number; end?: number } | { kind: 'suffix'; length: number };

/**
 * One byte range (RFC 9110 §14.1.2). S3 serves a single range only; a header that is not exactly one
 * valid range is ignored, as RFC 9110 §14.2 lets a server do.
 */
function parseRange(value: string): RangeSpec | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m) return null;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return null;
  if (a === '') return { kind: 'suffix', length: Number(b) };
  const start = Number(a);
  if (b === '') return { kind: 'explicit', start };
  const end = Number(b);
  if (end < start) return null;
  return { kind: 'explicit', start, end };
}

/** AWS S3 API Reference, "Error responses": PreconditionFailed, 412. */
const PRECONDITION_FAILED = 'At least one of the pre-conditions you specified did not hold';

/**
 * Query parameters that make a GET/HEAD on a key something other than GetObject/HeadObject (ACL,
 * tagging, ListParts, ...); conditional headers and Range apply to the object read only.
 */
const OBJECT_SUBRESOURCES = [
  'acl',
  'tagging',
  'uploadId',
  'uploads',
  'torrent',
  'legal-hold',
  'retention',
  'attributes',
  'restore',
  'select',
];

const TARGET_ERRORS = {
  bucket: 'The specified bucket is not valid.',
  encoding: 'The request path is not valid percent-encoding.',
  key: 'Object keys with "." or ".." path segments are not supported by the local store.',
} as const;

/**
 * Bucket and key of a path-style request path, or what is wrong with it. s3rver maps keys onto file
 * paths with path.join, so `..` segments (raw or %2E%2E / %2F-encoded) would reach outside its
 * directory; they are refused (real S3 would store them as literal key names).
 */
function parseTarget(rawPath: string): { bucket?: string; key?: string } | keyof typeof TARGET_ERRORS {
  const slash = rawPath.indexOf('/', 1);
  const rawBucket = slash === -1 ? rawPath.slice(1) : rawPath.slice(1, slash);
  const rawKey = slash === -1 ? undefined : rawPath.slice(slash + 1);
  let bucket: string;
  let key: string | undefined;
  try {
    bucket = decodeURIComponent(rawBucket);
    key = rawKey === undefined ? undefined : decodeURIComponent(rawKey);
  } catch {
    return 'encoding';
  }
  if (bucket === '') return {};
  if (!BUCKET_NAME.test(bucket)) return 'bucket';
  if (key === undefined || key === '') return { bucket };
  if (key.split('/').some((seg) => seg === '.' || seg === '..')) return 'key';
  return { bucket, key };
}

/** Routes s3rver's winston-style (printf) log calls to pino at debug level; s3rver is chatty. */
function pinoAdapter(logger: Logger): S3rverLogger {
  const child = logger.child({ component: 's3rver' });
  return {
    info: (msg, ...args) => child.debug(format(msg, ...args)),
    debug: (msg, ...args) => child.debug(format(msg, ...args)),
    warn: (msg, ...args) => child.warn(format(msg, ...args)),
    error: (msg, ...args) => child.error(format(msg, ...args)),
  };
}

/** The HTTP server's accept queue (listen(2) backlog; Linux caps it at net.core.somaxconn). */
const ACCEPT_BACKLOG = 65_535;

/**
 * The local S3-API firmware store: s3rver (a Koa app) behind a small front layer, on one HTTP port.
 *
 * What s3rver 3.7.1 does NOT do, and what the front layer adds (details in docs/object-store.md):
 * - It never verifies SigV4 signatures ("Signature version 4 calculation is unimplemented",
 *   lib/middleware/authentication.js), accepts anonymous requests, and accepts its built-in `S3RVER`
 *   key. The front layer refuses anonymous requests (403 AccessDenied), accepts only the configured
 *   access key (403 InvalidAccessKeyId) and verifies SigV4 signatures, header and query form
 *   (403 SignatureDoesNotMatch), with the configured secret.
 * - It does check X-Amz-Date + X-Amz-Expires of presigned URLs, but a non-numeric X-Amz-Expires makes the
 *   URL never expire (an `if (isNaN(expires)) if (expires < 0)` slip). The front layer checks expiry itself:
 *   an expired presigned URL gets 403 AccessDenied "Request has expired" (AWS S3 API, "Authenticating
 *   Requests: Using Query Parameters").
 * - Suffix ranges (`bytes=-N`) were served as `bytes=0-N`; the front layer rewrites them to an explicit
 *   range. See SafeFilesystemStore for the storage-side fixes (flush-before-reply, `bytes=0-0`,
 *   aws-chunked bodies, atomic replace).
 * - It ignores If-Match, If-Unmodified-Since and If-Range, and checks If-None-Match / If-Modified-Since
 *   without RFC 9110 §13.2.2 precedence. The front layer evaluates all five for GetObject / HeadObject
 *   against the stored ETag and Last-Modified (412 PreconditionFailed, 304; see conditional.ts).
 * - Not checked at all: Content-MD5 and x-amz-checksum-* / x-amz-content-sha256 payload hashes, bucket
 *   policies/ACLs, session tokens. Virtual-hosted addressing is off: clients must use path-style.
 */
export async function startObjectStore(opts: ObjectStoreOptions): Promise<RunningObjectStore> {
  const logger = (opts.logger ?? silentLogger).child({ component: 'object-store' });
  for (const bucket of opts.buckets) {
    if (!BUCKET_NAME.test(bucket)) throw new ValidationError('buckets', `invalid bucket name "${bucket}"`);
  }
  const { accessKeyId, secretAccessKey } = opts.credentials;
  if (!accessKeyId) throw new ValidationError('credentials.accessKeyId', 'must not be empty');
  if (!secretAccessKey) throw new ValidationError('credentials.secretAccessKey', 'must not be empty');

  await mkdir(opts.directory, { recursive: true });
  const app = new S3rver({
    directory: opts.directory,
    // s3rver logs through a winston Console transport; `silent` mutes it (and Koa's own error printing).
    silent: true,
    // Path-style only: otherwise a Host that is neither an IP nor localhost is taken as a bucket name.
    vhostBuckets: false,
    allowMismatchedSignatures: false,
  });
  const store = new SafeFilesystemStore(opts.directory);
  app.store = store;
  app.context.store = store;
  app.context.logger = pinoAdapter(logger);
  app.on('error', (err: Error) => logger.debug({ err }, 's3rver request error'));
  for (const bucket of opts.buckets) await store.putBucket(bucket);
  // s3rver's first middleware is koa-logger feeding a winston logger that `silent` mutes: it still
  // formats every request twice (colours, sizes, times), ~2% of the stack's CPU in a fleet run. Our
  // logs go through pino (pinoAdapter above), so the request line is dropped here.
  const first = app.middleware[0];
  if (first?.name === 'logger') app.middleware.shift();
  const handle = app.callback();

  const front = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://store.invalid');
    const query = url.searchParams;

    // The raw path, as Koa sees it (WHATWG URL would resolve %2E%2E segments away first).
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    const target = parseTarget(rawPath);
    if (typeof target === 'string') {
      sendS3Error(
        req,
        res,
        400,
        target === 'bucket' ? 'InvalidBucketName' : 'InvalidArgument',
        TARGET_ERRORS[target],
      );
      return;
    }
    const uploadId = query.get('uploadId');
    if (uploadId !== null && !/^[0-9a-f]{32}$/.test(uploadId)) {
      // s3rver joins uploadId into file paths (and removes that directory on completion): only its own
      // format, randomBytes(16) as hex, is let through.
      sendS3Error(req, res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
      return;
    }

    const keyId = requestAccessKey(req, query);
    if (keyId === undefined) {
      sendS3Error(req, res, 403, 'AccessDenied', 'Anonymous access is not allowed');
      return;
    }
    if (keyId !== null && keyId !== accessKeyId) {
      sendS3Error(
        req,
        res,
        403,
        'InvalidAccessKeyId',
        'The AWS Access Key Id you provided does not exist in our records.',
        { AWSAccessKeyId: keyId },
      );
      return;
    }

    if (query.has('X-Amz-Algorithm')) {
      const date = parseAmzDate(query.get('X-Amz-Date') ?? '');
      const expiresText = query.get('X-Amz-Expires') ?? '';
      const expires = /^\d{1,6}$/.test(expiresText) ? Number(expiresText) : Number.NaN;
      if (Number.isNaN(date) || Number.isNaN(expires) || expires < 1 || expires > MAX_PRESIGN_SECONDS) {
        sendS3Error(
          req,
          res,
          400,
          'AuthorizationQueryParametersError',
          'X-Amz-Date must be yyyyMMddTHHmmssZ and X-Amz-Expires an integer from 1 to 604800',
        );
        return;
      }
      const expiresAt = date + expires * 1000;
      const now = Date.now();
      if (now > expiresAt) {
        sendS3Error(req, res, 403, 'AccessDenied', 'Request has expired', {
          'X-Amz-Expires': expiresText,
          Expires: new Date(expiresAt).toISOString().replace(/\.\d+/, ''),
          ServerTime: new Date(now).toISOString().replace(/\.\d+/, ''),
        });
        return;
      }
    }

    const sig = verifySigV4(req, url, opts.credentials);
    if (!sig.ok) {
      sendS3Error(req, res, 403, 'SignatureDoesNotMatch', sig.reason);
      return;
    }

    const objectRead =
      (req.method === 'GET' || req.method === 'HEAD') &&
      target.bucket !== undefined &&
      target.key !== undefined &&
      !OBJECT_SUBRESOURCES.some((q) => query.has(q));
    let range = objectRead && req.headers.range !== undefined ? parseRange(req.headers.range) : null;
    if (range === null && (req.method === 'GET' || req.method === 'HEAD')) delete req.headers.range;
    if (objectRead) {
      const conditional = CONDITIONAL_HEADERS.some((h) => req.headers[h] !== undefined);
      // The object's current ETag / Last-Modified / size, read the way s3rver itself reads them. Missing
      // object or bucket: null, and s3rver answers NoSuchKey / NoSuchBucket (S3 answers 404 to a
      // conditional GET of a missing key too, whatever the conditions).
      const metadata =
        conditional || range?.kind === 'suffix'
          ? await store.getMetadata(target.bucket ?? '', target.key ?? '').catch(() => null)
          : null;
      if (metadata !== null && conditional) {
        const current = { etag: String(metadata.etag), lastModified: String(metadata['last-modified']) };
        const outcome = evaluatePreconditions(req.headers, current);
        if (outcome?.status === 412) {
          sendS3Error(req, res, 412, 'PreconditionFailed', PRECONDITION_FAILED, {
            Condition: outcome.condition,
          });
          return;
        }
        if (outcome?.status === 304) {
          // RFC 9110 §15.4.5: a 304 carries the validators a 200 would have, and no body.
          res.statusCode = 304;
          res.setHeader('ETag', current.etag);
          res.setHeader('Last-Modified', current.lastModified);
          res.setHeader('x-amz-request-id', randomUUID());
          res.end();
          return;
        }
        // If-Range (RFC 9110 §13.1.5): a stale validator means "send the whole current object" (200).
        const ifRange = req.headers['if-range'];
        if (range !== null && ifRange !== undefined && !ifRangeHolds(String(ifRange), current)) {
          range = null;
          delete req.headers.range;
        }
        // s3rver reads the metadata again and opens the file after this point. If the object was replaced
        // in between (uploads are renamed into place), the bytes it would send are not those of the object
        // the conditions held for: drop the connection rather than, say, serve a 206 of a different object
        // to an `If-Match` resume. The client retries and then gets 412 / 200 against the new object.
        guardServedEtag(res, current.etag);
      }
      // s3rver would re-check If-None-Match / If-Modified-Since without the precedence rules above.
      for (const h of CONDITIONAL_HEADERS) delete req.headers[h];

      if (range?.kind === 'suffix') {
        // bytes=-N: the last N bytes (RFC 9110 §14.1.2). s3rver parses it as bytes=0-N.
        const size = metadata === null ? null : Number(metadata['content-length']);
        if (size === null)
          delete req.headers.range; // let s3rver answer NoSuchKey / NoSuchBucket
        else if (range.length === 0 || size === 0) {
          sendS3Error(req, res, 416, 'InvalidRange', 'The requested range is not satisfiable', {
            RangeRequested: req.headers.range ?? '',
            ActualObjectSize: String(size),
          });
          return;
        } else req.headers.range = `bytes=${Math.max(0, size - range.length)}-${size - 1}`;
      }
    }

    // A streaming SigV4 body (x-amz-content-sha256: STREAMING-...) is aws-chunked even if the client
    // left out Content-Encoding; say so, so that SafeFilesystemStore decodes it.
    const contentSha = req.headers['x-amz-content-sha256'];
    if (typeof contentSha === 'string' && contentSha.startsWith('STREAMING-')) {
      const ce = req.headers['content-encoding'];
      if (!ce?.toLowerCase().includes('aws-chunked')) {
        req.headers['content-encoding'] = ce ? `aws-chunked, ${ce}` : 'aws-chunked';
      }
    }
    handle(req, res);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    front(req, res).catch((err: unknown) => {
      logger.error({ err }, 'object store front layer failed');
      if (!res.headersSent) sendS3Error(req, res, 500, 'InternalError', 'We encountered an internal error.');
      else res.destroy();
    });
  };
  // https.Server is an http.Server over TLS sockets: timeouts, close* and address() are the same.
  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest)
    : createServer(onRequest);
  // Large PUTs (100 MB firmware) must not hit Node's default 5-minute request timeout on slow links.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A fleet's downloads arrive together (every device is notified of a job at once). With Node's
    // default accept queue (511) the kernel drops the SYNs beyond it whenever one turn of the event loop
    // is long, and a dropped SYN is retried after 1, 2, 4 … 32 s: a device then sees no byte for over a
    // minute and its stall watchdog gives up (ota sim, 10,000 devices). The kernel caps the queue at
    // net.core.somaxconn.
    server.listen({ port: opts.port, host: opts.host, backlog: ACCEPT_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  registerKey(accessKeyId, secretAccessKey);
  const port = (server.address() as AddressInfo).port;
  const publicHost =
    opts.host === '0.0.0.0' || opts.host === '::' || opts.host === '' ? '127.0.0.1' : opts.host;
  const endpoint = `${opts.tls ? 'https' : 'http'}://${publicHost.includes(':') ? `[${publicHost}]` : publicHost}:${port}`;
  logger.info({ endpoint, directory: opts.directory, buckets: opts.buckets }, 'object store listening');

  const presigner = new S3Client(localS3ClientConfig(endpoint, opts.credentials, opts.region));
  let closed = false;

  return {
    port,
    endpoint,
    async presignGetUrl(bucket: string, key: string, expiresInSec: number): Promise<string> {
      if (!Number.isInteger(expiresInSec) || expiresInSec < 1 || expiresInSec > MAX_PRESIGN_SECONDS) {
        throw new ValidationError('expiresInSec', `must be an integer from 1 to ${MAX_PRESIGN_SECONDS}`);
      }
      return getSignedUrl(presigner, new GetObjectCommand({ Bucket: bucket, Key: key }), {
        expiresIn: expiresInSec,
      });
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      presigner.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive sockets of SDK clients would otherwise hold close() open.
        server.closeIdleConnections();
        setImmediate(() => server.closeAllConnections());
      });
      unregisterKey(accessKeyId);
      // app.logger (winston, silent) is not closed: koa-logger may still log a response that finishes
      // during close, and a closed winston logger complains on stderr. It holds no handles.
      logger.info({ endpoint }, 'object store closed');
    },
  };
}
