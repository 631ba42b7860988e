import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * SigV4 query-string presigning of an MQTT-over-WebSocket URL, the way AWS IoT Core authenticates
 * WebSocket clients ("MQTT over the WebSocket protocol" → "Signing AWS IoT requests with SigV4" in the
 * AWS IoT developer guide): the signature lives in the URL of the upgrade request, service
 * `iotdevicegateway`, only the `host` header signed, and a session token (if any) appended AFTER signing
 * as `X-Amz-Security-Token` (AWS IoT's documented quirk).
 *
 * Lives in src/shared so the device/operator side (the `watch` command, the browser dashboard) can sign
 * without importing cloud code. Pure JS SHA-256 (@aws-crypto/sha256-js) keeps it usable in a browser bundle.
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

/** The query parameters that SigV4 presigning adds (they are not part of the signed input themselves). */
export const SIGV4_QUERY_PARAMS = [
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
  'X-Amz-Security-Token',
] as const;

/** Parses a `ws:`/`wss:` (or http/https) URL into the request shape SigV4 signs. */
export function toSignableRequest(url: URL, headers: Record<string, string> = {}): HttpRequest {
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const prev = query[k];
    if (prev === undefined) query[k] = v;
    else query[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return new HttpRequest({
    method: 'GET',
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: url.pathname || '/',
    query,
    headers: { host: url.host, ...headers },
  });
}

/** Serialises a query record the way SigV4 canonicalises it (RFC 3986 encoding). */
export function encodeQuery(query: Record<string, string | string[] | null>): string {
  const enc = (s: string) =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const parts: string[] = [];
  for (const key of Object.keys(query).sort()) {
    const value = query[key];
    if (value === null || value === undefined) parts.push(enc(key));
    else if (Array.isArray(value)) for (const v of [...value].sort()) parts.push(`${enc(key)}=${enc(v)}`);
    else parts.push(`${enc(key)}=${enc(value)}`);
  }
  return parts.join('&');
}

/**
 * Returns `url` with a SigV4 presign for AWS IoT's WebSocket endpoint. `url` is e.g.
 * `ws://127.0.0.1:8083/mqtt` (the local stack's `endpoints.json` `ws.url`) or
 * `wss://<prefix>-ats.iot.<region>.amazonaws.com/mqtt`. Sign a fresh URL for every (re)connection —
 * MQTT.js's `transformWsUrl` option is the hook for that.
 */
export async function presignWebSocketUrl(
  url: string,
  creds: WsSigningCredentials,
  region: string,
  expiresInSec: number = DEFAULT_WS_PRESIGN_EXPIRES_SEC,
  signingDate: Date = new Date(),
): Promise<string> {
  const u = new URL(url);
  const signer = new SignatureV4({
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    region,
    service: IOT_WS_SERVICE,
    sha256: Sha256,
  });
  const signed = await signer.presign(toSignableRequest(u), {
    expiresIn: Math.min(Math.max(1, Math.floor(expiresInSec)), MAX_WS_PRESIGN_EXPIRES_SEC),
    signingDate,
  });
  const query: Record<string, string | string[] | null> = { ...signed.query };
  let qs = encodeQuery(query);
  // AWS IoT: the security token is appended after the signature is computed, never signed.
  if (creds.sessionToken) qs += `&X-Amz-Security-Token=${encodeURIComponent(creds.sessionToken)}`;
  return `${u.protocol}//${u.host}${u.pathname}?${qs}`;
}
