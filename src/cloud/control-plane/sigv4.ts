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

type SigV4Failure = Extract<SigV4Result, { ok: false }>;

/**
 * Verifies the Authorization header of `req`. Never throws: every refusal comes back as
 * `{ ok: false, message }` with a message in the style of AWS's own 403 answers.
 */
export async function verifySigV4(req: ReceivedRequest, opts: SigV4VerifyOptions): Promise<SigV4Result> {
  const authorization = headerValue(req.headers, 'authorization');
  if (authorization === undefined) return unauthenticated(req);
  const auth = parseAuthorization(authorization);
  if (!auth.ok) return auth;
  const sessionToken = headerValue(req.headers, 'x-amz-security-token');
  const scopeFailure = checkScope(auth.scope, sessionToken, opts);
  if (scopeFailure) return scopeFailure;
  const signedAt = checkDate(req, auth.scope.date, opts);
  if (typeof signedAt !== 'number') return signedAt;
  const headers = collectSignedHeaders(req, auth.signedHeaderNames);
  if (!headers.ok) return headers;
  const bodyFailure = checkBodyHash(req);
  if (bodyFailure) return bodyFailure;
  const expected = await expectedSignature(req, opts, {
    headers: headers.headers,
    signedHeaderNames: auth.signedHeaderNames,
    signedAt,
    scope: auth.scope,
  });
  if (!expected.ok) return expected;
  if (!timingSafeEqualStrings(expected.signature, auth.signature)) {
    return {
      ok: false,
      message:
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    };
  }
  return {
    ok: true,
    accessKeyId: auth.scope.accessKeyId,
    ...(sessionToken !== undefined ? { sessionToken } : {}),
  };
}

/** A request without an Authorization header; the query (presigned) form is named but not supported. */
function unauthenticated(req: ReceivedRequest): SigV4Failure {
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

/** The credential scope: `<access key>/<yyyymmdd>/<region>/<service>/aws4_request`. */
interface CredentialScope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
}

interface ParsedAuthorization {
  ok: true;
  scope: CredentialScope;
  signedHeaderNames: string[];
  signature: string;
}

function parseAuthorization(authorization: string): ParsedAuthorization | SigV4Failure {
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
  const [accessKeyId = '', date = '', region = '', service = '', terminator = ''] = scopeParts;
  return {
    ok: true,
    scope: { accessKeyId, date, region, service, terminator },
    signedHeaderNames: signedHeadersList.split(';'),
    signature,
  };
}

/** The access key and session token first (AWS answers those with STS error types), then the scope. */
function checkScope(
  scope: CredentialScope,
  sessionToken: string | undefined,
  opts: SigV4VerifyOptions,
): SigV4Failure | undefined {
  if (scope.accessKeyId !== opts.credentials.accessKeyId) return INVALID_TOKEN;
  if (sessionToken !== undefined) {
    const check = opts.checkSessionToken?.(sessionToken) ?? 'invalid';
    if (check === 'expired') return EXPIRED_TOKEN;
    if (check !== 'valid') return INVALID_TOKEN;
  }
  if (scope.terminator !== SIGV4_TERMINATOR) {
    return { ok: false, message: "Credential should be scoped with a valid terminator: 'aws4_request'" };
  }
  if (scope.service !== opts.service) {
    return { ok: false, message: `Credential should be scoped to correct service: '${opts.service}'` };
  }
  if (scope.region !== opts.region) {
    return {
      ok: false,
      message: `Credential should be scoped to a valid region: expected '${opts.region}', got '${scope.region}'`,
    };
  }
  return undefined;
}

/** The signing time (epoch ms) from x-amz-date, which must match the scope date and be within the skew. */
function checkDate(req: ReceivedRequest, scopeDate: string, opts: SigV4VerifyOptions): number | SigV4Failure {
  const maxSkewMs = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
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
  return signedAt;
}

/** The values of the headers the client signed; `host` and `x-amz-date` must be among them. */
function collectSignedHeaders(
  req: ReceivedRequest,
  signedHeaderNames: string[],
): { ok: true; headers: Record<string, string> } | SigV4Failure {
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
  return { ok: true, headers };
}

/**
 * The body must match what was signed. With x-amz-content-sha256 the signer trusts the header, so the
 * header itself is checked against the bytes received; without it the signer hashes the body.
 */
function checkBodyHash(req: ReceivedRequest): SigV4Failure | undefined {
  const declaredHash = headerValue(req.headers, 'x-amz-content-sha256');
  if (declaredHash === undefined) return undefined;
  if (declaredHash === UNSIGNED_PAYLOAD) {
    return { ok: false, message: 'UNSIGNED-PAYLOAD is not accepted: the body must be signed' };
  }
  if (declaredHash !== sha256Hex(req.body)) {
    return {
      ok: false,
      message: 'The provided x-amz-content-sha256 header does not match what was computed.',
    };
  }
  return undefined;
}

/** The signature @smithy/signature-v4 computes for the request rebuilt from its signed headers. */
async function expectedSignature(
  req: ReceivedRequest,
  opts: SigV4VerifyOptions,
  signed: {
    headers: Record<string, string>;
    signedHeaderNames: string[];
    signedAt: number;
    scope: CredentialScope;
  },
): Promise<{ ok: true; signature: string } | SigV4Failure> {
  let query: Record<string, string | string[]>;
  try {
    query = parseQuery(req.rawQuery);
  } catch {
    return { ok: false, message: 'Malformed query string' };
  }
  const hostHeader = signed.headers.host ?? '';
  const request = new HttpRequest({
    method: req.method.toUpperCase(),
    protocol: 'http:',
    hostname: hostHeader.replace(/:\d+$/, ''),
    path: req.path,
    query,
    headers: signed.headers,
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
  try {
    const result = await signer.sign(request, {
      signingDate: new Date(signed.signedAt),
      signingRegion: signed.scope.region,
      signingService: signed.scope.service,
      signableHeaders: new Set(signed.signedHeaderNames),
    });
    const auth = String(result.headers.authorization ?? '');
    return { ok: true, signature: /Signature=([0-9a-f]{64})/.exec(auth)?.[1] ?? '' };
  } catch {
    return { ok: false, message: 'The request could not be canonicalised for signature verification' };
  }
}
