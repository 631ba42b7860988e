import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { format } from 'node:util';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { ValidationError } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import { localS3ClientConfig } from '../../shared/s3-client-config.ts';
import { BUCKET_NAME, createFrontLayer, MAX_PRESIGN_SECONDS, sendS3Error } from './front-layer.ts';
import { SafeFilesystemStore } from './fs-store.ts';
import {
  assertS3rverInternals,
  DUMMY_ACCOUNT,
  S3rver,
  type S3rverLogger,
  s3rverAppProblem,
} from './s3rver-internals.ts';

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
  /**
   * Signs presigned URLs (X-Amz-Date) and judges their expiry; default the system's. Tests pass a
   * ManualClock and move it past an expiry instead of waiting for it.
   */
  clock?: Pick<Clock, 'now'>;
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
 * s3rver's private modules are checked first (assertS3rverInternals, s3rver-internals.ts).
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
  assertS3rverInternals();
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
  const appProblem = s3rverAppProblem(app);
  if (appProblem) throw new Error(appProblem);
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

  const clock = opts.clock ?? systemClock;
  const front = createFrontLayer({ store, credentials: opts.credentials, handle, clock });

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
        signingDate: new Date(clock.now()),
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
