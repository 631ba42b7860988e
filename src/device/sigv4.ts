import { createHash, createHmac } from 'node:crypto';

/** AWS credentials as the SDK's providers return them. */
export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface PresignGetOptions {
  /** Full object URL without a query, e.g. `http://127.0.0.1:4569/bucket/key` (path-style). */
  url: URL;
  region: string;
  credentials: SigningCredentials;
  /** Seconds, 1 … 604800 (SigV4 query authentication limit). */
  expiresIn: number;
  /** Signing time (default now). */
  date?: Date;
  /** Extra query parameters, signed with the rest (the SDK adds `x-id=GetObject`). */
  query?: Record<string, string>;
}

/**
 * RFC 3986 unreserved characters stay, everything else is %XX with upper-case hex: the encoding SigV4
 * requires ("Create a canonical request", AWS Signature Version 4 docs: "URI-encode each parameter name
 * and value … do not encode A-Z a-z 0-9 - _ . ~").
 */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

function hmac(key: Buffer | string, s: string): Buffer {
  return createHmac('sha256', key).update(s, 'utf8').digest();
}

/**
 * SigV4 query-string presigning of an S3 GET (AWS docs: "Authenticating Requests: Using Query
 * Parameters (AWS Signature Version 4)"), with node:crypto only. This is what
 * `@aws-sdk/s3-request-presigner` produces for a GetObject with the same endpoint, path and time (the unit
 * test compares both), without loading @aws-sdk/client-s3 (~14 MiB of RSS and ~0.1 s of CPU at start-up,
 * docs/benchmarks.md). Only `host` is signed; Range / If-Match travel as plain headers, which S3 accepts
 * on a query-signed request. S3's canonical URI is the path as sent (S3 does not double-encode), so
 * `url.pathname` must already be the encoded key.
 */
export function presignGet(opts: PresignGetOptions): URL {
  const { url, region, credentials: c } = opts;
  const date = opts.date ?? new Date();
  const amzDate = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const scope = `${day}/${region}/s3/aws4_request`;
  const params: [string, string][] = [
    ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
    ['X-Amz-Content-Sha256', 'UNSIGNED-PAYLOAD'],
    ['X-Amz-Credential', `${c.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(opts.expiresIn)],
    ['X-Amz-SignedHeaders', 'host'],
  ];
  if (c.sessionToken) params.push(['X-Amz-Security-Token', c.sessionToken]);
  for (const [k, v] of Object.entries(opts.query ?? {})) params.push([k, v]);
  // Canonical query: encoded names sorted by code point (upper case before lower case).
  const enc = params.map(([k, v]) => [uriEncode(k), uriEncode(v)] as const);
  enc.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const query = enc.map(([k, v]) => `${k}=${v}`).join('&');
  const canonical = [
    'GET',
    url.pathname || '/',
    query,
    `host:${url.host}\n`,
    'host',
    'UNSIGNED-PAYLOAD',
  ].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  let key = hmac(`AWS4${c.secretAccessKey}`, day);
  key = hmac(key, region);
  key = hmac(key, 's3');
  key = hmac(key, 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign, 'utf8').digest('hex');
  const out = new URL(url.href);
  out.search = `${query}&X-Amz-Signature=${signature}`;
  return out;
}

/**
 * The path-style object URL the SDK builds with `forcePathStyle` (src/shared/s3-client-config.ts) for a
 * custom endpoint: `<endpoint>/<bucket>/<key>`, each key segment URI-encoded, `/` kept.
 */
export function pathStyleObjectUrl(endpoint: string, bucket: string, key: string): URL {
  const url = new URL(endpoint);
  const base = url.pathname.replace(/\/+$/, '');
  url.pathname = `${base}/${uriEncode(bucket)}/${key.split('/').map(uriEncode).join('/')}`;
  url.search = '';
  url.hash = '';
  return url;
}
