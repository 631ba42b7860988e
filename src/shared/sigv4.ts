/**
 * AWS Signature Version 4 on the client side: the string and date pieces, and the project's one
 * hand-written signer, {@link presignUrl} (query-string presigning of a GET that signs only `host`). It
 * serves the device's S3 presigner (src/device/source/presign.ts) and the WebSocket URL presigner
 * (src/shared/ws-url.ts); why they do not use @smithy/signature-v4 is said in those files' headers.
 * Browser-safe: no Node imports, because ws-url.ts is bundled into the dashboard page; the hashing comes
 * in as {@link SigV4Hashing} (node:crypto in src/shared/sigv4-crypto.ts, pure-JS SHA-256 in ws-url.ts).
 * The cloud side verifies with @smithy/signature-v4 (src/cloud/sigv4/verify.ts) and uses the date and
 * scope pieces here.
 *
 * Spec: AWS IAM User Guide, "Create a signed AWS API request" (canonical request, string to sign,
 * credential scope) and "Elements of an AWS API request signature"; S3 API Reference, "Authenticating
 * Requests: Using Query Parameters (AWS Signature Version 4)".
 */

/** The only algorithm SigV4 defines (`X-Amz-Algorithm`, the Authorization header's scheme). */
export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
/** The credential scope's last element. */
export const SIGV4_TERMINATOR = 'aws4_request';

/**
 * URI-encodes as SigV4 requires ("Create a canonical request": do not encode the RFC 3986 unreserved
 * characters A-Z a-z 0-9 - _ . ~, percent-encode everything else with upper-case hex).
 * encodeURIComponent also leaves `!'()*` alone, so those are encoded here.
 */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The canonical query string: each name and value URI-encoded, pairs sorted by encoded name and then by
 * value (code point order), joined as `name=value` with `&`.
 */
export function canonicalQueryString(pairs: Iterable<readonly [string, string]>): string {
  const encoded = Array.from(pairs, ([k, v]) => [uriEncode(k), uriEncode(v)] as const);
  encoded.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return encoded.map(([k, v]) => `${k}=${v}`).join('&');
}

/** `X-Amz-Date` (ISO 8601 basic, `20150830T123600Z`) and the scope's date stamp (`20150830`) of a time. */
export function formatAmzDate(date: Date): { amzDate: string; dateStamp: string } {
  const amzDate = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  return { amzDate, dateStamp: amzDate.slice(0, 8) };
}

const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/**
 * Parses an `X-Amz-Date` (`yyyyMMddTHHmmssZ`, UTC) into epoch milliseconds. Undefined for anything else,
 * including dates that do not exist (month 13, 30 February, hour 24, second 60) and years before 1000,
 * which Date.UTC would silently roll over or remap.
 */
export function parseAmzDate(value: string): number | undefined {
  const m = AMZ_DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, s);
  if (Number.isNaN(t) || formatAmzDate(new Date(t)).amzDate !== value) return undefined;
  return t;
}

/** The credential scope, `20150830/us-east-1/iam/aws4_request`. */
export function credentialScope(dateStamp: string, region: string, service: string): string {
  return `${dateStamp}/${region}/${service}/${SIGV4_TERMINATOR}`;
}

/**
 * The signing key (AWS IAM User Guide, "Create a signed AWS API request", step 4): an HMAC-SHA256 chain
 * over `AWS4` + secret → date stamp → region → service → `aws4_request`. The HMAC is passed in so the
 * Node side (node:crypto, src/shared/sigv4-crypto.ts) and the browser side (pure JS, ws-url.ts) derive
 * the key the same way.
 */
export function deriveSigningKey<K>(
  hmacSha256: (key: K | string, data: string) => K,
  secretAccessKey: string,
  dateStamp: string,
  region: string,
  service: string,
): K {
  const kDate = hmacSha256(`AWS4${secretAccessKey}`, dateStamp);
  return hmacSha256(hmacSha256(hmacSha256(kDate, region), service), SIGV4_TERMINATOR);
}

/** The string to sign: algorithm, request date, credential scope and the canonical request's SHA-256 (hex). */
export function stringToSign(amzDate: string, scope: string, canonicalRequestSha256Hex: string): string {
  return [SIGV4_ALGORITHM, amzDate, scope, canonicalRequestSha256Hex].join('\n');
}

/** SHA-256 of the empty string (hex): the payload hash of a GET without a body. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** The payload hash S3 presigned URLs sign (the body is not known when the URL is made). */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** Longest lifetime of a presigned URL (`X-Amz-Expires`, seconds): 7 days. */
export const MAX_PRESIGN_EXPIRES_SEC = 604_800;

/** The query parameters SigV4 presigning adds (never part of the application's own query). */
export const SIGV4_QUERY_PARAMS = [
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
  'X-Amz-Security-Token',
] as const;

/** SHA-256 and HMAC-SHA256 as a signer needs them; `K` is the HMAC's output (Buffer, Uint8Array). */
export interface SigV4Hashing<K> {
  /** Lower-case hex SHA-256 of a UTF-8 string. */
  sha256Hex(data: string): string;
  /** HMAC-SHA256 of a UTF-8 string under a key (a string key is UTF-8). */
  hmacSha256(key: K | string, data: string): K;
  /** Lower-case hex of an HMAC output. */
  hex(bytes: K): string;
}

/**
 * The canonical URI of every service but S3: dot segments resolved, then each segment URI-encoded
 * (again: the path is already encoded as sent), `/` kept. S3 signs the path exactly as sent.
 */
export function normalizedCanonicalPath(path: string): string {
  const segments: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  const normalised = `${path.startsWith('/') ? '/' : ''}${segments.join('/')}${
    segments.length > 0 && path.endsWith('/') ? '/' : ''
  }`;
  return uriEncode(normalised).replace(/%2F/g, '/');
}

export interface PresignUrlOptions {
  /**
   * The URL to sign, its path already encoded as it will be sent. Its own query parameters are signed
   * along (any SigV4 ones in it are dropped first); its fragment is dropped.
   */
  url: URL;
  region: string;
  /** The signing name: `s3`, `iotdevicegateway`. */
  service: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined };
  /** Seconds, 1 … {@link MAX_PRESIGN_EXPIRES_SEC}; the caller checks or clamps. */
  expiresIn: number;
  /** Signing time. */
  date: Date;
  /**
   * Canonical URI: `false` signs the path as sent (S3); `true` normalises and encodes it again (every
   * other service, as @smithy/signature-v4's `uriEscapePath`).
   */
  uriEscapePath: boolean;
  /** The canonical request's last line: {@link UNSIGNED_PAYLOAD} for S3, {@link EMPTY_SHA256} for AWS IoT. */
  payloadHash: string;
  /**
   * Where a session token goes: `signed` as a query parameter like the others (S3, every SDK), or
   * `appended` after the signature, unsigned (AWS IoT's WebSocket endpoint).
   */
  sessionToken: 'signed' | 'appended';
  /** Further parameters signed with the rest, in this order (S3: `X-Amz-Content-Sha256`, `x-id`). */
  params?: readonly (readonly [string, string])[];
}

/**
 * SigV4 query-string presigning of a GET that signs only the `host` header. Returns `url` with the
 * signed query (canonical order, then `X-Amz-Signature`, then an appended session token).
 */
export function presignUrl<K>(hashing: SigV4Hashing<K>, o: PresignUrlOptions): URL {
  const { url, credentials: c } = o;
  const { amzDate, dateStamp } = formatAmzDate(o.date);
  const scope = credentialScope(dateStamp, o.region, o.service);
  const reserved = new Set<string>(SIGV4_QUERY_PARAMS);
  const pairs: [string, string][] = [...url.searchParams].filter(([k]) => !reserved.has(k));
  pairs.push(
    ['X-Amz-Algorithm', SIGV4_ALGORITHM],
    ['X-Amz-Credential', `${c.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(o.expiresIn)],
    ['X-Amz-SignedHeaders', 'host'],
  );
  const signToken = c.sessionToken && o.sessionToken === 'signed';
  if (signToken) pairs.push(['X-Amz-Security-Token', c.sessionToken as string]);
  for (const [k, v] of o.params ?? []) pairs.push([k, v]);
  const query = canonicalQueryString(pairs);
  const path = url.pathname || '/';
  const canonicalRequest = [
    'GET',
    o.uriEscapePath ? normalizedCanonicalPath(path) : path,
    query,
    `host:${url.host}\n`,
    'host',
    o.payloadHash,
  ].join('\n');
  const key = deriveSigningKey(hashing.hmacSha256, c.secretAccessKey, dateStamp, o.region, o.service);
  const toSign = stringToSign(amzDate, scope, hashing.sha256Hex(canonicalRequest));
  let search = `${query}&X-Amz-Signature=${hashing.hex(hashing.hmacSha256(key, toSign))}`;
  // AWS IoT: the security token is appended after the signature is computed, never signed.
  if (c.sessionToken && !signToken) search += `&X-Amz-Security-Token=${uriEncode(c.sessionToken)}`;
  const out = new URL(url.href);
  out.search = search;
  out.hash = '';
  return out;
}
