/**
 * The front layer in front of s3rver (what it adds is listed at startObjectStore, store.ts): request
 * steps in order, each of which may answer the request itself; what none answers goes on to s3rver.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../shared/clock.ts';
import { MAX_PRESIGN_EXPIRES_SEC } from '../../shared/sigv4.ts';
import { presignLifetime } from '../sigv4/verify.ts';
import { CONDITIONAL_HEADERS, evaluatePreconditions, guardServedEtag, ifRangeHolds } from './conditional.ts';
import type { SafeFilesystemStore } from './fs-store.ts';
import { verifySigV4 } from './sigv4-verify.ts';

/** Longest presigned-URL lifetime SigV4 allows (AWS S3 API, "Authenticating Requests: Using Query
 * Parameters": X-Amz-Expires minimum 1, maximum 604800 seconds). */
export const MAX_PRESIGN_SECONDS = MAX_PRESIGN_EXPIRES_SEC;
/** How far ahead of the store's clock a presigned URL's X-Amz-Date may be (S3 allows 15 minutes). */
const MAX_CLOCK_SKEW_MS = 15 * 60_000;

/** S3 bucket naming rules (S3 User Guide, "Bucket naming rules"), the subset that matters locally. */
export const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** An S3 REST error response (AWS S3 API Reference, "Error responses": XML body, Code + Message). */
export function sendS3Error(
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

type Target = { bucket?: string; key?: string };
interface FrontRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  query: URLSearchParams;
}
export interface FrontLayerOptions {
  store: SafeFilesystemStore;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** s3rver's request handler: what the front layer lets through. */
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  /** Judges the expiry of presigned URLs. */
  clock: Pick<Clock, 'now'>;
}

/** The front layer's request handler (see the top of this file). */
export function createFrontLayer(opts: FrontLayerOptions) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://store.invalid');
    const r: FrontRequest = { req, res, url, query: url.searchParams };
    const target = refuseBadTarget(r);
    if (target === undefined) return;
    if (await refuseUnauthenticated(r, opts)) return;
    if (r.query.has('X-Amz-Algorithm')) req.url = leaveExpiryToFrontLayer(req.url ?? '/');
    if (await answerObjectRead(r, target, opts.store)) return;
    markAwsChunked(req);
    opts.handle(req, res);
  };
}

/**
 * s3rver checks X-Amz-Date + X-Amz-Expires once more, on the wall clock. The front layer has already
 * judged both on the store's clock (which tests move by hand), so s3rver is shown the longest lifetime
 * SigV4 allows: it never refuses a URL the front layer let through. s3rver does not verify V4
 * signatures, so the rewritten parameter changes nothing else.
 */
function leaveExpiryToFrontLayer(rawUrl: string): string {
  return rawUrl.replace(/([?&])X-Amz-Expires=\d+/, `$1X-Amz-Expires=${MAX_PRESIGN_SECONDS}`);
}

/** The request's bucket and key; undefined once a malformed path or upload id has been answered. */
function refuseBadTarget({ req, res, query }: FrontRequest): Target | undefined {
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
    return undefined;
  }
  const uploadId = query.get('uploadId');
  if (uploadId !== null && !/^[0-9a-f]{32}$/.test(uploadId)) {
    // s3rver joins uploadId into file paths (and removes that directory on completion): only its own
    // format, randomBytes(16) as hex, is let through.
    sendS3Error(req, res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    return undefined;
  }
  return target;
}

/** Anonymous, foreign-key, expired or badly signed requests are answered here (true). */
async function refuseUnauthenticated(
  { req, res, query }: FrontRequest,
  { credentials, clock }: Pick<FrontLayerOptions, 'credentials' | 'clock'>,
): Promise<boolean> {
  const keyId = requestAccessKey(req, query);
  if (keyId === undefined) {
    sendS3Error(req, res, 403, 'AccessDenied', 'Anonymous access is not allowed');
    return true;
  }
  if (keyId !== null && keyId !== credentials.accessKeyId) {
    sendS3Error(
      req,
      res,
      403,
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
      { AWSAccessKeyId: keyId },
    );
    return true;
  }
  if (query.has('X-Amz-Algorithm')) {
    const expiresText = query.get('X-Amz-Expires') ?? '';
    const lifetime = presignLifetime(query.get('X-Amz-Date') ?? undefined, expiresText);
    if (typeof lifetime === 'string') {
      sendS3Error(
        req,
        res,
        400,
        'AuthorizationQueryParametersError',
        'X-Amz-Date must be yyyyMMddTHHmmssZ and X-Amz-Expires an integer from 1 to 604800',
      );
      return true;
    }
    const now = clock.now();
    // S3 allows 15 minutes of clock skew; a URL dated later than that is refused as S3 does.
    if (lifetime.signedAt > now + MAX_CLOCK_SKEW_MS) {
      sendS3Error(req, res, 403, 'AccessDenied', 'Request is not yet valid', {
        'X-Amz-Date': String(lifetime.signedAt),
        Expires: new Date(lifetime.expiresAt).toISOString().replace(/\.\d+/, ''),
        ServerTime: new Date(now).toISOString().replace(/\.\d+/, ''),
      });
      return true;
    }
    if (now > lifetime.expiresAt) {
      sendS3Error(req, res, 403, 'AccessDenied', 'Request has expired', {
        'X-Amz-Expires': expiresText,
        Expires: new Date(lifetime.expiresAt).toISOString().replace(/\.\d+/, ''),
        ServerTime: new Date(now).toISOString().replace(/\.\d+/, ''),
      });
      return true;
    }
  }

  const sig = await verifySigV4(req, credentials);
  if (!sig.ok) {
    sendS3Error(req, res, 403, 'SignatureDoesNotMatch', sig.reason);
    return true;
  }
  return false;
}

/**
 * GetObject / HeadObject: Range and the conditional headers are settled here (answered: true), and the
 * request is rewritten for s3rver (an explicit range, no conditional headers) when it goes on.
 */
async function answerObjectRead(
  { req, res, query }: FrontRequest,
  target: Target,
  store: SafeFilesystemStore,
): Promise<boolean> {
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
        return true;
      }
      if (outcome?.status === 304) {
        // RFC 9110 §15.4.5: a 304 carries the validators a 200 would have, and no body.
        res.statusCode = 304;
        res.setHeader('ETag', current.etag);
        res.setHeader('Last-Modified', current.lastModified);
        res.setHeader('x-amz-request-id', randomUUID());
        res.end();
        return true;
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
        return true;
      } else req.headers.range = `bytes=${Math.max(0, size - range.length)}-${size - 1}`;
    }
  }
  return false;
}

function markAwsChunked(req: IncomingMessage): void {
  // A streaming SigV4 body (x-amz-content-sha256: STREAMING-...) is aws-chunked even if the client
  // left out Content-Encoding; say so, so that SafeFilesystemStore decodes it.
  const contentSha = req.headers['x-amz-content-sha256'];
  if (typeof contentSha === 'string' && contentSha.startsWith('STREAMING-')) {
    const ce = req.headers['content-encoding'];
    if (!ce?.toLowerCase().includes('aws-chunked')) {
      req.headers['content-encoding'] = ce ? `aws-chunked, ${ce}` : 'aws-chunked';
    }
  }
}
