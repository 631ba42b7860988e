import type { IncomingMessage } from 'node:http';
import {
  stringToSign as buildStringToSign,
  canonicalQueryString,
  credentialScope,
  SIGV4_ALGORITHM,
  SIGV4_TERMINATOR,
} from '../../shared/sigv4.ts';
import { hmacSha256, sha256Hex, signingKey, timingSafeEqualStrings } from '../../shared/sigv4-crypto.ts';

export type SigV4Result = { ok: true } | { ok: false; reason: string };

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

interface Parsed {
  accessKeyId: string;
  scopeDate: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payloadHash: string;
}

function parseHeaderAuth(req: IncomingMessage, auth: string): Parsed | string {
  const m = /^AWS4-HMAC-SHA256\s+(.*)$/s.exec(auth.trim());
  if (!m?.[1]) return 'unsupported Authorization scheme';
  const parts = new Map<string, string>();
  for (const component of m[1].split(',')) {
    const eq = component.indexOf('=');
    if (eq > 0) parts.set(component.slice(0, eq).trim(), component.slice(eq + 1).trim());
  }
  const credential = parts.get('Credential');
  const signedHeaders = parts.get('SignedHeaders');
  const signature = parts.get('Signature');
  if (!credential || !signedHeaders || !signature) return 'malformed Authorization header';
  const amzDate = headerValue(req, 'x-amz-date');
  if (!amzDate) return 'missing x-amz-date header';
  const payloadHash = headerValue(req, 'x-amz-content-sha256');
  if (!payloadHash) return 'missing x-amz-content-sha256 header';
  return fromCredential(credential, signedHeaders, signature, amzDate, payloadHash);
}

function fromCredential(
  credential: string,
  signedHeaders: string,
  signature: string,
  amzDate: string,
  payloadHash: string,
): Parsed | string {
  const [accessKeyId, scopeDate, region, service, terminator, ...rest] = credential.split('/');
  if (
    !accessKeyId ||
    !scopeDate ||
    !region ||
    !service ||
    terminator !== SIGV4_TERMINATOR ||
    rest.length > 0
  ) {
    return 'malformed credential scope';
  }
  if (!amzDate.startsWith(scopeDate)) return 'credential scope date does not match X-Amz-Date';
  return {
    accessKeyId,
    scopeDate,
    region,
    service,
    signedHeaders: signedHeaders.split(';').map((h) => h.trim().toLowerCase()),
    signature: signature.toLowerCase(),
    amzDate,
    payloadHash,
  };
}

/**
 * Verifies an AWS Signature Version 4 request, Authorization-header or presigned-query form (AWS General
 * Reference / IAM User Guide, "Signature Version 4 signing process"; S3 API Reference, "Authenticating
 * Requests (AWS Signature Version 4)"). s3rver does not do this at all.
 *
 * S3 specifics: the canonical URI is the path exactly as sent (S3 neither normalizes nor double-encodes
 * it); a presigned request's payload hash is UNSIGNED-PAYLOAD unless X-Amz-Content-Sha256 is in the query.
 * Request bodies are not hashed: x-amz-content-sha256 is taken as declared (documented limitation), and
 * aws-chunked chunk signatures are not checked. The credential scope's region is used as signed, not
 * compared with the store's region, so a device signing for its job document's region still works.
 *
 * Requests that carry no SigV4 auth pass (`ok: true`): anonymous ones are refused by the caller, and
 * Signature Version 2 ones are verified by s3rver itself.
 */
export function verifySigV4(
  req: IncomingMessage,
  url: URL,
  creds: { accessKeyId: string; secretAccessKey: string },
): SigV4Result {
  const rawUrl = req.url ?? '/';
  const q = rawUrl.indexOf('?');
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const rawQuery = q === -1 ? '' : rawUrl.slice(q + 1);
  const query = url.searchParams;

  let parsed: Parsed | string;
  let excludeFromQuery: string | undefined;
  const auth = headerValue(req, 'authorization');
  if (auth !== undefined) {
    if (!/^AWS4-HMAC-SHA256\s/.test(auth)) return { ok: true }; // SigV2: s3rver checks it
    parsed = parseHeaderAuth(req, auth);
  } else if (query.get('X-Amz-Algorithm') !== null) {
    if (query.get('X-Amz-Algorithm') !== SIGV4_ALGORITHM) {
      return { ok: false, reason: 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"' };
    }
    const credential = query.get('X-Amz-Credential');
    const signedHeaders = query.get('X-Amz-SignedHeaders');
    const signature = query.get('X-Amz-Signature');
    const amzDate = query.get('X-Amz-Date');
    if (!credential || !signedHeaders || !signature || !amzDate) {
      return { ok: false, reason: 'presigned URL lacks X-Amz-Credential/SignedHeaders/Signature/Date' };
    }
    parsed = fromCredential(
      credential,
      signedHeaders,
      signature,
      amzDate,
      query.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD',
    );
    excludeFromQuery = 'X-Amz-Signature';
  } else {
    return { ok: true };
  }
  if (typeof parsed === 'string') return { ok: false, reason: parsed };
  if (parsed.accessKeyId !== creds.accessKeyId) return { ok: false, reason: 'unknown access key' };
  if (!parsed.signedHeaders.includes('host')) return { ok: false, reason: 'the host header must be signed' };

  const pairs: [string, string][] = [];
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const k = safeDecode(eq === -1 ? piece : piece.slice(0, eq));
    const v = eq === -1 ? '' : safeDecode(piece.slice(eq + 1));
    if (k === excludeFromQuery) continue;
    pairs.push([k, v]);
  }
  const canonicalQuery = canonicalQueryString(pairs);

  const canonicalHeaders: string[] = [];
  for (const name of [...parsed.signedHeaders].sort()) {
    const value = headerValue(req, name);
    if (value === undefined) return { ok: false, reason: `signed header ${name} is missing` };
    canonicalHeaders.push(`${name}:${value.trim().replace(/\s+/g, ' ')}\n`);
  }
  const canonicalRequest = [
    req.method ?? 'GET',
    rawPath === '' ? '/' : rawPath,
    canonicalQuery,
    canonicalHeaders.join(''),
    [...parsed.signedHeaders].sort().join(';'),
    parsed.payloadHash,
  ].join('\n');
  const scope = credentialScope(parsed.scopeDate, parsed.region, parsed.service);
  const stringToSign = buildStringToSign(parsed.amzDate, scope, sha256Hex(canonicalRequest));
  const key = signingKey(creds.secretAccessKey, parsed.scopeDate, parsed.region, parsed.service);
  const expected = hmacSha256(key, stringToSign).toString('hex');
  if (!timingSafeEqualStrings(expected, parsed.signature)) {
    return {
      ok: false,
      reason:
        'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    };
  }
  return { ok: true };
}
