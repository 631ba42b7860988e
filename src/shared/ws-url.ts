import { Sha256 } from '@aws-crypto/sha256-js';
import { EMPTY_SHA256, MAX_PRESIGN_EXPIRES_SEC, presignUrl, type SigV4Hashing } from './sigv4.ts';

/**
 * SigV4 query-string presigning of an MQTT-over-WebSocket URL, the way AWS IoT Core authenticates
 * WebSocket clients (AWS IoT developer guide, "MQTT over the WebSocket protocol" → "Signing AWS IoT
 * requests with Signature Version 4"): the signature travels in the URL of the upgrade request, service
 * `iotdevicegateway`, only the `host` header is signed, the payload hash is that of the empty string, and a
 * session token (if any) is appended AFTER signing as `X-Amz-Security-Token` (AWS IoT's documented quirk).
 *
 * Lives in src/shared so the device/operator side (the `watch` command, the browser dashboard) can sign
 * without importing cloud code. The signing itself is the project's one hand-written signer (presignUrl,
 * src/shared/sigv4.ts), here on a pure-JS SHA-256 (@aws-crypto/sha256-js) because this file is bundled
 * into the dashboard page, where node:crypto does not exist. Why not @smithy/signature-v4: its `presign`
 * is asynchronous, and MQTT.js's `transformWsUrl` hook, which lets a client sign a fresh URL on every
 * reconnect, is synchronous. The broker verifies with @smithy/signature-v4 (src/cloud/sigv4/verify.ts),
 * an independent implementation, so a slip in either shows up as a refused connection in the tests.
 */

export const IOT_WS_SERVICE = 'iotdevicegateway';
/** Default lifetime of a presigned URL; it only has to be valid at the moment of the upgrade. */
export const DEFAULT_WS_PRESIGN_EXPIRES_SEC = 300;
/** SigV4 caps presigned URLs at 7 days. */
export const MAX_WS_PRESIGN_EXPIRES_SEC = MAX_PRESIGN_EXPIRES_SEC;

export interface WsSigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** @aws-crypto/sha256-js as presignUrl's hashing: synchronous and browser-safe. */
const jsHashing: SigV4Hashing<Uint8Array> = {
  sha256Hex(data) {
    const h = new Sha256();
    h.update(utf8(data));
    return hex(h.digestSync());
  },
  hmacSha256(key, data) {
    const h = new Sha256(typeof key === 'string' ? utf8(key) : key);
    h.update(utf8(data));
    return h.digestSync();
  },
  hex,
};

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
  const signed = presignUrl(jsHashing, {
    url: u,
    region,
    service: IOT_WS_SERVICE,
    credentials: creds,
    expiresIn: Math.min(Math.max(1, Math.floor(expiresInSec)), MAX_WS_PRESIGN_EXPIRES_SEC),
    date: signingDate,
    uriEscapePath: true,
    payloadHash: EMPTY_SHA256,
    sessionToken: 'appended',
  });
  return `${u.protocol}//${u.host}${u.pathname}${signed.search}`;
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
