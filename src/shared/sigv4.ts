/**
 * The string and date pieces of AWS Signature Version 4, shared by every signer and verifier in the
 * project (device S3 presigner, WebSocket URL presigner, the local stack's S3 front layer, broker and
 * control plane). Browser-safe: no Node imports, because src/shared/ws-url.ts is bundled into the
 * dashboard page. The hashing half lives in src/shared/sigv4-crypto.ts (node:crypto); the browser signer
 * keeps its pure-JS SHA-256.
 *
 * Spec: AWS IAM User Guide, "Create a signed AWS API request" (canonical request, string to sign,
 * credential scope) and "Elements of an AWS API request signature".
 */

/** The only algorithm SigV4 defines (`X-Amz-Algorithm`, the Authorization header's scheme). */
export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
/** The credential scope's last element. */
export const SIGV4_TERMINATOR = 'aws4_request';

/**
 * URI-encodes as SigV4 requires ("Create a canonical request": do not encode the RFC 3986 unreserved
 * characters A-Z a-z 0-9 - _ . ~, percent-encode everything else with upper-case hex).
 * encodeURIComponent also leaves `!'()*` alone, so those are encoded here.
 */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The canonical query string: each name and value URI-encoded, pairs sorted by encoded name and then by
 * value (code point order), joined as `name=value` with `&`.
 */
export function canonicalQueryString(pairs: Iterable<readonly [string, string]>): string {
  const encoded = Array.from(pairs, ([k, v]) => [uriEncode(k), uriEncode(v)] as const);
  encoded.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return encoded.map(([k, v]) => `${k}=${v}`).join('&');
}

/** `X-Amz-Date` (ISO 8601 basic, `20150830T123600Z`) and the scope's date stamp (`20150830`) of a time. */
export function formatAmzDate(date: Date): { amzDate: string; dateStamp: string } {
  const amzDate = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  return { amzDate, dateStamp: amzDate.slice(0, 8) };
}

const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/**
 * Parses an `X-Amz-Date` (`yyyyMMddTHHmmssZ`, UTC) into epoch milliseconds. Undefined for anything else,
 * including dates that do not exist (month 13, 30 February, hour 24, second 60) and years before 1000,
 * which Date.UTC would silently roll over or remap.
 */
export function parseAmzDate(value: string): number | undefined {
  const m = AMZ_DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, s);
  if (Number.isNaN(t) || formatAmzDate(new Date(t)).amzDate !== value) return undefined;
  return t;
}

/** The credential scope, `20150830/us-east-1/iam/aws4_request`. */
export function credentialScope(dateStamp: string, region: string, service: string): string {
  return `${dateStamp}/${region}/${service}/${SIGV4_TERMINATOR}`;
}

/**
 * The signing key (AWS IAM User Guide, "Create a signed AWS API request", step 4): an HMAC-SHA256 chain
 * over `AWS4` + secret → date stamp → region → service → `aws4_request`. The HMAC is passed in so the
 * Node side (node:crypto, src/shared/sigv4-crypto.ts) and the browser side (pure JS, ws-url.ts) derive
 * the key the same way.
 */
export function deriveSigningKey<K>(
  hmacSha256: (key: K | string, data: string) => K,
  secretAccessKey: string,
  dateStamp: string,
  region: string,
  service: string,
): K {
  const kDate = hmacSha256(`AWS4${secretAccessKey}`, dateStamp);
  return hmacSha256(hmacSha256(hmacSha256(kDate, region), service), SIGV4_TERMINATOR);
}

/** The string to sign: algorithm, request date, credential scope and the canonical request's SHA-256 (hex). */
export function stringToSign(amzDate: string, scope: string, canonicalRequestSha256Hex: string): string {
  return [SIGV4_ALGORITHM, amzDate, scope, canonicalRequestSha256Hex].join('\n');
}
