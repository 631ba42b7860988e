import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { formatAmzDate, parseAmzDate, SIGV4_ALGORITHM, SIGV4_TERMINATOR } from '../../shared/sigv4.ts';
import { sha256Hex, timingSafeEqualStrings } from '../../shared/sigv4-crypto.ts';
import type { SessionTokenCheck } from '../credentials/session-tokens.ts';

/**
 * Server-side check of AWS Signature Version 4 (header form), the scheme @aws-sdk/client-iot signs every
 * control-plane request with (signing name `iot`, see the client's auth scheme `aws.auth#sigv4`).
 *
 * Rather than re-implementing the canonicalisation, the received request is rebuilt from exactly the
 * headers the client listed in `SignedHeaders` and re-signed with @smithy/signature-v4, the same code
 * the SDK signs with; the two signatures are then compared in constant time. See AWS General Reference,
 * "Create a signed AWS API request" (canonical request, string to sign, signing key).
 */

export interface ReceivedRequest {
  method: string;
  /** The path exactly as received (still percent-encoded), without the query string. */
  path: string;
  /** The raw query string without the leading `?` ('' when absent). */
  rawQuery: string;
  /** Header names in lower case, as node's http module gives them. */
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
}

export interface SigV4VerifyOptions {
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  /** The signing name, `iot` for the IoT control plane. */
  service: string;
  /** Epoch milliseconds on the server's clock. */
  now: number;
  /** Largest accepted difference between x-amz-date and `now`; AWS allows 15 minutes. */
  maxSkewMs?: number;
  /**
   * Checks an `X-Amz-Security-Token` (temporary credentials, credentials/session-tokens.ts). Without it
   * every token is refused: nothing issued it.
   */
  checkSessionToken?: (sessionToken: string) => SessionTokenCheck;
}

export type SigV4Result =
  | { ok: true; accessKeyId: string; sessionToken?: string }
  | { ok: false; message: string; errorType?: 'UnrecognizedClientException' | 'ExpiredTokenException' };

/** AWS's answers to a session token it did not issue, or one that expired (STS error types). */
export const INVALID_TOKEN = {
  ok: false,
  message: 'The security token included in the request is invalid.',
  errorType: 'UnrecognizedClientException',
} as const;
const EXPIRED_TOKEN = {
  ok: false,
  message: 'The security token included in the request is expired',
  errorType: 'ExpiredTokenException',
} as const;

export const DEFAULT_MAX_SKEW_MS = 15 * 60_000;
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
const AUTH_RE =
  /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/;

/** Parses a query string the way the SDK built it: `k=v` pairs, RFC 3986 percent-encoding. */
export function parseQuery(rawQuery: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  if (rawQuery === '') return query;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decodeURIComponent(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? '' : decodeURIComponent(part.slice(eq + 1));
    const prev = query[key];
    if (prev === undefined) query[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else query[key] = [prev, value];
  }
  return query;
}

function headerValue(headers: ReceivedRequest['headers'], name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * Verifies the Authorization header of `req`. Never throws: every refusal comes back as
 * `{ ok: false, message }` with a message in the style of AWS's own 403 answers.
 */
export async function verifySigV4(req: ReceivedRequest, opts: SigV4VerifyOptions): Promise<SigV4Result> {
  const maxSkewMs = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const authorization = headerValue(req.headers, 'authorization');
  if (authorization === undefined) {
    let query: Record<string, string | string[]> = {};
    try {
      query = parseQuery(req.rawQuery);
    } catch {
      // A malformed query string without credentials is simply unauthenticated.
    }
    if (query['X-Amz-Signature'] !== undefined) {
      return {
        ok: false,
        message: 'Presigned (query-string) requests are not supported; sign the Authorization header',
      };
    }
    return { ok: false, message: 'Missing Authentication Token' };
  }
  if (!authorization.startsWith(`${SIGV4_ALGORITHM} `)) {
    return { ok: false, message: `Unsupported authorization type: only ${SIGV4_ALGORITHM} is accepted` };
  }
  const m = AUTH_RE.exec(authorization.trim());
  if (!m) {
    return {
      ok: false,
      message: 'Authorization header requires Credential, SignedHeaders and Signature parameters',
    };
  }
  const [, credential = '', signedHeadersList = '', signature = ''] = m;
  const scopeParts = credential.split('/');
  if (scopeParts.length !== 5) {
    return { ok: false, message: `Credential should be scoped to a valid scope (got ${credential})` };
  }
  const [accessKeyId = '', scopeDate = '', scopeRegion = '', scopeService = '', terminator = ''] = scopeParts;
  if (accessKeyId !== opts.credentials.accessKeyId) return INVALID_TOKEN;
  const sessionToken = headerValue(req.headers, 'x-amz-security-token');
  if (sessionToken !== undefined) {
    const check = opts.checkSessionToken?.(sessionToken) ?? 'invalid';
    if (check === 'expired') return EXPIRED_TOKEN;
    if (check !== 'valid') return INVALID_TOKEN;
  }
  if (terminator !== SIGV4_TERMINATOR) {
    return { ok: false, message: "Credential should be scoped with a valid terminator: 'aws4_request'" };
  }
  if (scopeService !== opts.service) {
    return { ok: false, message: `Credential should be scoped to correct service: '${opts.service}'` };
  }
  if (scopeRegion !== opts.region) {
    return {
      ok: false,
      message: `Credential should be scoped to a valid region: expected '${opts.region}', got '${scopeRegion}'`,
    };
  }

  const amzDate = headerValue(req.headers, 'x-amz-date');
  if (amzDate === undefined) return { ok: false, message: 'Missing x-amz-date header' };
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined) return { ok: false, message: `Invalid x-amz-date: ${amzDate}` };
  if (amzDate.slice(0, 8) !== scopeDate) {
    return { ok: false, message: `Credential date ${scopeDate} does not match x-amz-date ${amzDate}` };
  }
  if (Math.abs(opts.now - signedAt) > maxSkewMs) {
    const iso = (t: number) => formatAmzDate(new Date(t)).amzDate;
    return {
      ok: false,
      message:
        signedAt < opts.now
          ? `Signature expired: ${amzDate} is now earlier than ${iso(opts.now - maxSkewMs)} (${iso(opts.now)} - 15 min.)`
          : `Signature not yet current: ${amzDate} is still later than ${iso(opts.now + maxSkewMs)} (${iso(opts.now)} + 15 min.)`,
    };
  }

  const signedHeaderNames = signedHeadersList.split(';');
  if (!signedHeaderNames.includes('host')) {
    return { ok: false, message: "'Host' must be a signed header" };
  }
  if (!signedHeaderNames.includes('x-amz-date')) {
    return { ok: false, message: "'X-Amz-Date' must be a signed header" };
  }
  const headers: Record<string, string> = {};
  for (const name of signedHeaderNames) {
    const v = headerValue(req.headers, name);
    if (v === undefined) return { ok: false, message: `Signed header ${name} is missing from the request` };
    headers[name] = v;
  }

  // The body must match what was signed. With x-amz-content-sha256 the signer trusts the header, so the
  // header itself is checked against the bytes received; without it the signer hashes the body.
  const bodyHash = sha256Hex(req.body);
  const declaredHash = headerValue(req.headers, 'x-amz-content-sha256');
  if (declaredHash !== undefined) {
    if (declaredHash === UNSIGNED_PAYLOAD) {
      return { ok: false, message: 'UNSIGNED-PAYLOAD is not accepted: the body must be signed' };
    }
    if (declaredHash !== bodyHash) {
      return {
        ok: false,
        message: 'The provided x-amz-content-sha256 header does not match what was computed.',
      };
    }
  }

  let query: Record<string, string | string[]>;
  try {
    query = parseQuery(req.rawQuery);
  } catch {
    return { ok: false, message: 'Malformed query string' };
  }
  const hostHeader = headers.host ?? '';
  const request = new HttpRequest({
    method: req.method.toUpperCase(),
    protocol: 'http:',
    hostname: hostHeader.replace(/:\d+$/, ''),
    path: req.path,
    query,
    headers,
    body: req.body,
  });
  const signer = new SignatureV4({
    credentials: opts.credentials,
    region: opts.region,
    service: opts.service,
    sha256: Sha256,
    // Non-S3 services double-encode the path (uriEscapePath, the default); the checksum header is only
    // part of the canonical request when the client sent and signed it.
    uriEscapePath: true,
    applyChecksum: false,
  });
  let expected: string;
  try {
    const signed = await signer.sign(request, {
      signingDate: new Date(signedAt),
      signingRegion: scopeRegion,
      signingService: scopeService,
      signableHeaders: new Set(signedHeaderNames),
    });
    const auth = String(signed.headers.authorization ?? '');
    expected = /Signature=([0-9a-f]{64})/.exec(auth)?.[1] ?? '';
  } catch {
    return { ok: false, message: 'The request could not be canonicalised for signature verification' };
  }
  if (!timingSafeEqualStrings(expected, signature)) {
    return {
      ok: false,
      message:
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    };
  }
  return { ok: true, accessKeyId, ...(sessionToken !== undefined ? { sessionToken } : {}) };
}
