import { formatAmzDate, parseAmzDate, SIGV4_ALGORITHM, SIGV4_TERMINATOR } from '../../shared/sigv4.ts';
import { sha256Hex } from '../../shared/sigv4-crypto.ts';
import type { SessionTokenCheck } from '../credentials/session-tokens.ts';
import {
  type CredentialScope,
  checkSignature,
  headerValue,
  type ParsedQuery,
  parseAuthorizationHeader,
  parseCredential,
  parseQuery,
  type RequestHeaders,
} from '../sigv4/verify.ts';

/**
 * The IoT control plane's SigV4 check (header form), the scheme @aws-sdk/client-iot signs every
 * control-plane request with (signing name `iot`, see the client's auth scheme `aws.auth#sigv4`). The
 * signature itself is checked by the stack's one verifier, src/cloud/sigv4/verify.ts (@smithy/signature-v4);
 * this file is what the IoT service decides around it: header form only, its scope, the 15-minute clock
 * window, signed bodies, session tokens, and AWS's words for each refusal.
 */

export interface ReceivedRequest {
  method: string;
  /** The path exactly as received (still percent-encoded), without the query string. */
  path: string;
  /** The raw query string without the leading `?` ('' when absent). */
  rawQuery: string;
  /** Header names in lower case, as node's http module gives them. */
  headers: RequestHeaders;
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
  const headersFailure = checkSignedHeaders(req, auth.signedHeaderNames);
  if (headersFailure) return headersFailure;
  const bodyFailure = checkBodyHash(req);
  if (bodyFailure) return bodyFailure;
  let query: ParsedQuery;
  try {
    query = parseQuery(req.rawQuery);
  } catch {
    return { ok: false, message: 'Malformed query string' };
  }
  const check = await checkSignature(
    { method: req.method, path: req.path, query, headers: req.headers, body: req.body },
    {
      form: 'header',
      credentials: opts.credentials,
      scope: auth.scope,
      signedHeaders: auth.signedHeaderNames,
      signedAt,
      signature: auth.signature,
      // Non-S3 services double-encode the path (what @smithy/signature-v4 does by default).
      uriEscapePath: true,
    },
  );
  if (!check.ok) {
    if (check.failure === 'missing-header') {
      return { ok: false, message: `Signed header ${check.header} is missing from the request` };
    }
    if (check.failure === 'uncomputable') {
      return { ok: false, message: 'The request could not be canonicalised for signature verification' };
    }
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
  let query: ParsedQuery = {};
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

interface ParsedAuthorization {
  ok: true;
  scope: CredentialScope;
  signedHeaderNames: string[];
  signature: string;
}

function parseAuthorization(authorization: string): ParsedAuthorization | SigV4Failure {
  const parsed = parseAuthorizationHeader(authorization);
  if (parsed === 'scheme') {
    return { ok: false, message: `Unsupported authorization type: only ${SIGV4_ALGORITHM} is accepted` };
  }
  if (parsed === 'malformed') {
    return {
      ok: false,
      message: 'Authorization header requires Credential, SignedHeaders and Signature parameters',
    };
  }
  const scope = parseCredential(parsed.credential);
  if (!scope) {
    return { ok: false, message: `Credential should be scoped to a valid scope (got ${parsed.credential})` };
  }
  return { ok: true, scope, signedHeaderNames: parsed.signedHeaders, signature: parsed.signature };
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

/** `host` and `x-amz-date` must be among the signed headers (their presence is checked with the signature). */
function checkSignedHeaders(req: ReceivedRequest, signedHeaderNames: string[]): SigV4Failure | undefined {
  if (!signedHeaderNames.includes('host')) {
    return { ok: false, message: "'Host' must be a signed header" };
  }
  if (!signedHeaderNames.includes('x-amz-date')) {
    return { ok: false, message: "'X-Amz-Date' must be a signed header" };
  }
  for (const name of signedHeaderNames) {
    if (headerValue(req.headers, name) === undefined) {
      return { ok: false, message: `Signed header ${name} is missing from the request` };
    }
  }
  return undefined;
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
