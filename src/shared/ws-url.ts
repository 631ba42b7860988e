import { Sha256 } from '@aws-crypto/sha256-js';
import {
  stringToSign as buildStringToSign,
  canonicalQueryString,
  credentialScope,
  deriveSigningKey,
  formatAmzDate,
  SIGV4_ALGORITHM,
  uriEncode,
} from './sigv4.ts';

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

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

function sha256Hex(data: string): string {
  const h = new Sha256();
  h.update(utf8(data));
  return hex(h.digestSync());
}

function hmac(key: Uint8Array | string, data: string): Uint8Array {
  const h = new Sha256(typeof key === 'string' ? utf8(key) : key);
  h.update(utf8(data));
  return h.digestSync();
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
  return uriEncode(normalised).replace(/%2F/g, '/');
}

/**
 * Returns `url` with a SigV4 presign for AWS IoT's WebSocket endpoint, synchronously. `url` is e.g. the
 * local stack's `endpoints.json` `ws.url` (`ws://127.0.0.1:<port>/mqtt`) or
 * `wss://<prefix>-ats.iot.<region>.amazonaws.com/mqtt`.
 */
// The signing date defaults to the wall clock: the client signs, and the server judges X-Amz-Date
// against its own time (AWS's, or the local stack's), not against anything this process injects.
export function presignWebSocketUrlSync(
  url: string,
  creds: WsSigningCredentials,
  region: string,
  expiresInSec: number = DEFAULT_WS_PRESIGN_EXPIRES_SEC,
  signingDate: Date = new Date(),
): string {
  const u = new URL(url);
  const expires = Math.min(Math.max(1, Math.floor(expiresInSec)), MAX_WS_PRESIGN_EXPIRES_SEC);
  const { amzDate, dateStamp } = formatAmzDate(signingDate);
  const scope = credentialScope(dateStamp, region, IOT_WS_SERVICE);
  const reserved = new Set<string>(SIGV4_QUERY_PARAMS);
  const pairs: [string, string][] = [...u.searchParams].filter(([k]) => !reserved.has(k));
  pairs.push(
    ['X-Amz-Algorithm', SIGV4_ALGORITHM],
    ['X-Amz-Credential', `${creds.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(expires)],
    ['X-Amz-SignedHeaders', 'host'],
  );
  const query = canonicalQueryString(pairs);
  const canonicalRequest = [
    'GET',
    canonicalPath(u.pathname || '/'),
    query,
    `host:${u.host}`,
    '',
    'host',
    EMPTY_SHA256,
  ].join('\n');
  const stringToSign = buildStringToSign(amzDate, scope, sha256Hex(canonicalRequest));
  const key = deriveSigningKey(hmac, creds.secretAccessKey, dateStamp, region, IOT_WS_SERVICE);
  const signature = hex(hmac(key, stringToSign));
  let qs = `${query}&X-Amz-Signature=${signature}`;
  // AWS IoT: the security token is appended after the signature is computed, never signed.
  if (creds.sessionToken) qs += `&X-Amz-Security-Token=${uriEncode(creds.sessionToken)}`;
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
