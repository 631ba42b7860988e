import { presignUrl, UNSIGNED_PAYLOAD, uriEncode } from '../../shared/sigv4.ts';
import { nodeHashing } from '../../shared/sigv4-crypto.ts';

/**
 * The device's S3 presigner: SigV4 query-string presigning of a GetObject with the project's one
 * hand-written signer (src/shared/sigv4.ts, presignUrl) on node:crypto.
 *
 * Why not the SDK (@aws-sdk/s3-request-presigner, or @smithy/signature-v4 under it), which the agent
 * still uses against AWS endpoints (src/device/source/factory.ts)? Start-up cost on the device, measured
 * in docs/benchmarks.md ("Third pass … 1. Module loading"): VmHWM / CPU right after importing, bare node
 * 41–43 MiB / 55 ms, @aws-sdk/client-s3 61 MiB / 163 ms, the presigner 50 / 78, @smithy/signature-v4
 * alone 56 / 100; dropping them from the agent's start took its import from 74–81 to 68–76 MiB and
 * 270–290 to 200–220 ms of CPU, and its peak RSS from ~105 to ~97 MiB. The signer here is ~60 lines,
 * and test/unit/device/source/presign.test.ts checks it byte for byte against the SDK's presigner.
 */

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
 * Parameters (AWS Signature Version 4)"): what `@aws-sdk/s3-request-presigner` produces for a GetObject
 * with the same endpoint, path and time (the unit test compares both). Only `host` is signed; Range /
 * If-Match travel as plain headers, which S3 accepts on a query-signed request. S3's canonical URI is
 * the path as sent (S3 does not double-encode), so `url.pathname` must already be the encoded key.
 */
export function presignGet(opts: PresignGetOptions): URL {
  const url = new URL(opts.url.href);
  url.search = '';
  return presignUrl(nodeHashing, {
    url,
    region: opts.region,
    service: 's3',
    credentials: opts.credentials,
    expiresIn: opts.expiresIn,
    date: opts.date,
    uriEscapePath: false,
    payloadHash: UNSIGNED_PAYLOAD,
    sessionToken: 'signed',
    params: [['X-Amz-Content-Sha256', UNSIGNED_PAYLOAD], ...Object.entries(opts.query ?? {})],
  });
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
