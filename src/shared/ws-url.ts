import { Sha256 } from '@aws-crypto/sha256-js';

/**
 * SigV4 query-string presigning of an MQTT-over-WebSocket URL, the way AWS IoT Core authenticates
 * WebSocket clients (AWS IoT developer guide, "MQTT over the WebSocket protocol" → "Signing AWS IoT
 * requests with Signature Version 4"): the signature travels in the URL of the upgrade request, service
 * `iotdevicegateway`, only the `host` header is signed, the payload hash is that of the empty string, and a
 * session token (if any) is appended AFTER signing as `X-Amz-Security-Token` (AWS IoT's documented quirk).
 *
 * Lives in src/shared so the device/operator side (the `watch` command, the browser dashboard) can sign
 * without importing cloud code. It is synchronous (pure-JS SHA-256 from @aws-crypto/sha256-js, usable in a
 * browser bundle) so it fits MQTT.js's synchronous `transformWsUrl` hook, which lets a client sign a fresh
 * URL on every reconnect. The broker verifies with @smithy/signature-v4, an independent implementation.
 */

export const IOT_WS_SERVICE = 'iotdevicegateway';
/** Default lifetime of a presigned URL; it only has to be valid at the moment of the upgrade. */
export const DEFAULT_WS_PRESIGN_EXPIRES_SEC = 300;
/** SigV4 caps presigned URLs at 7 days. */
export const MAX_WS_PRESIGN_EXPIRES_SEC = 604_800;

export interface WsSigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

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

const ALGORITHM = 'AWS4-HMAC-SHA256';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

function sha256Hex(data: string): string {
  const h = new Sha256();
  h.update(utf8(data));
  return hex(h.digestSync());
}

function hmac(key: Uint8Array, data: string): Uint8Array {
  const h = new Sha256(key);
  h.update(utf8(data));
  return h.digestSync();
}

/** `20181025T223916Z` and `20181025` for a date. */
function amzDates(d: Date): { amzDate: string; dateStamp: string } {
  const amzDate = d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  return { amzDate, dateStamp: amzDate.slice(0, 8) };
}

/** SigV4 canonical URI for non-S3 services: dot segments resolved, each segment URI-encoded. */
function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  const normalised = `${path.startsWith('/') ? '/' : ''}${segments.join('/')}${
    segments.length > 0 && path.endsWith('/') ? '/' : ''
  }`;
  return escapeUri(normalised).replace(/%2F/g, '/');
}

/** SigV4 canonical query string: pairs sorted by encoded key, then by value. */
function canonicalQuery(pairs: [string, string][]): string {
  return pairs
    .map(([k, v]) => [escapeUri(k), escapeUri(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/**
 * Returns `url` with a SigV4 presign for AWS IoT's WebSocket endpoint, synchronously. `url` is e.g. the
 * local stack's `endpoints.json` `ws.url` (`ws://127.0.0.1:<port>/mqtt`) or
 * `wss://<prefix>-ats.iot.<region>.amazonaws.com/mqtt`.
 */
export function presignWebSocketUrlSync(
  url: string,
  creds: WsSigningCredentials,
  region: string,
  expiresInSec: number = DEFAULT_WS_PRESIGN_EXPIRES_SEC,
  signingDate: Date = new Date(),
): string {
  const u = new URL(url);
  const expires = Math.min(Math.max(1, Math.floor(expiresInSec)), MAX_WS_PRESIGN_EXPIRES_SEC);
  const { amzDate, dateStamp } = amzDates(signingDate);
  const scope = `${dateStamp}/${region}/${IOT_WS_SERVICE}/aws4_request`;
  const reserved = new Set<string>(SIGV4_QUERY_PARAMS);
  const pairs: [string, string][] = [...u.searchParams].filter(([k]) => !reserved.has(k));
  pairs.push(
    ['X-Amz-Algorithm', ALGORITHM],
    ['X-Amz-Credential', `${creds.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(expires)],
    ['X-Amz-SignedHeaders', 'host'],
  );
  const query = canonicalQuery(pairs);
  const canonicalRequest = [
    'GET',
    canonicalPath(u.pathname || '/'),
    query,
    `host:${u.host}`,
    '',
    'host',
    EMPTY_SHA256,
  ].join('\n');
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  let key = hmac(utf8(`AWS4${creds.secretAccessKey}`), dateStamp);
  key = hmac(key, region);
  key = hmac(key, IOT_WS_SERVICE);
  key = hmac(key, 'aws4_request');
  const signature = hex(hmac(key, stringToSign));
  let qs = `${query}&X-Amz-Signature=${signature}`;
  // AWS IoT: the security token is appended after the signature is computed, never signed.
  if (creds.sessionToken) qs += `&X-Amz-Security-Token=${escapeUri(creds.sessionToken)}`;
  return `${u.protocol}//${u.host}${u.pathname}?${qs}`;
}

/** Promise-returning form of {@link presignWebSocketUrlSync} (same arguments, same result). */
export async function presignWebSocketUrl(
  url: string,
  creds: WsSigningCredentials,
  region: string,
  expiresInSec: number = DEFAULT_WS_PRESIGN_EXPIRES_SEC,
  signingDate: Date = new Date(),
): Promise<string> {
  return presignWebSocketUrlSync(url, creds, region, expiresInSec, signingDate);
}
