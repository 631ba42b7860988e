import {
  canonicalQueryString,
  credentialScope,
  formatAmzDate,
  SIGV4_ALGORITHM,
  stringToSign,
  uriEncode,
} from '../../shared/sigv4.ts';
import { hmacSha256, sha256Hex, signingKey } from '../../shared/sigv4-crypto.ts';

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
  /** Signing time: X-Amz-Date, from which the URL's lifetime counts (the caller's clock). */
  date: Date;
  /** Extra query parameters, signed with the rest (the SDK adds `x-id=GetObject`). */
  query?: Record<string, string>;
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
  const { amzDate, dateStamp } = formatAmzDate(opts.date);
  const scope = credentialScope(dateStamp, region, 's3');
  const params: [string, string][] = [
    ['X-Amz-Algorithm', SIGV4_ALGORITHM],
    ['X-Amz-Content-Sha256', 'UNSIGNED-PAYLOAD'],
    ['X-Amz-Credential', `${c.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(opts.expiresIn)],
    ['X-Amz-SignedHeaders', 'host'],
  ];
  if (c.sessionToken) params.push(['X-Amz-Security-Token', c.sessionToken]);
  for (const [k, v] of Object.entries(opts.query ?? {})) params.push([k, v]);
  const query = canonicalQueryString(params);
  const canonical = [
    'GET',
    url.pathname || '/',
    query,
    `host:${url.host}\n`,
    'host',
    'UNSIGNED-PAYLOAD',
  ].join('\n');
  const key = signingKey(c.secretAccessKey, dateStamp, region, 's3');
  const signature = hmacSha256(key, stringToSign(amzDate, scope, sha256Hex(canonical))).toString('hex');
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
