import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import {
  MAX_PRESIGN_EXPIRES_SEC,
  parseAmzDate,
  SIGV4_ALGORITHM,
  SIGV4_QUERY_PARAMS,
  SIGV4_TERMINATOR,
} from '../../shared/sigv4.ts';
import { timingSafeEqualStrings } from '../../shared/sigv4-crypto.ts';

/**
 * The local stack's one SigV4 verifier, for both forms a request can be signed in: the `Authorization`
 * header (the control plane, S3 operations) and the presigned query string (S3 presigned URLs, AWS IoT's
 * WebSocket upgrade). Used by src/cloud/control-plane/sigv4.ts, src/cloud/object-store/sigv4-verify.ts
 * and src/cloud/broker/ws-auth.ts, which keep only what their AWS service decides on top: which form it
 * takes, which scope, time window and session token it accepts, and the words of its refusals.
 *
 * The canonicalisation is not re-implemented: the received request is rebuilt from exactly the headers
 * the client listed in `SignedHeaders` and re-signed with @smithy/signature-v4 (the code the AWS SDKs sign
 * with; `sign` for the header form, `presign` for the query form), then the two signatures are compared
 * in constant time. See AWS IAM User Guide, "Create a signed AWS API request", and S3 API Reference,
 * "Authenticating Requests (AWS Signature Version 4)".
 */

/**
 * node:crypto as @smithy/signature-v4's hash (the interface @smithy/hash-node implements, which is not a
 * dependency here): about 40 µs less per verified request than the pure-JS @aws-crypto/sha256-js
 * (~60 instead of ~100 µs for an S3 presigned GET on the development machine), and S3 GETs are the
 * stack's busiest path in a fleet run.
 */
class NodeSha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** Header names in lower case, as node's http module gives them. */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** A header's value, repeated ones joined with `,` (as SigV4's canonical headers take them). */
export function headerValue(headers: RequestHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

/** The raw path (still percent-encoded) and raw query (without `?`, '' when absent) of a request URL. */
export function splitRequestUrl(url: string): { path: string; rawQuery: string } {
  const q = url.indexOf('?');
  return q === -1 ? { path: url, rawQuery: '' } : { path: url.slice(0, q), rawQuery: url.slice(q + 1) };
}

export type ParsedQuery = Record<string, string | string[]>;

/**
 * Parses a query string the way SigV4 signers build it: `k=v` pairs, RFC 3986 percent-encoding (`+` is
 * a plus sign). Malformed percent-encoding throws, or with `lenient` is kept as received.
 */
export function parseQuery(rawQuery: string, opts: { lenient?: boolean } = {}): ParsedQuery {
  const decode = (s: string): string => {
    if (!opts.lenient) return decodeURIComponent(s);
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const query: ParsedQuery = {};
  if (rawQuery === '') return query;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decode(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? '' : decode(part.slice(eq + 1));
    const prev = query[key];
    if (prev === undefined) query[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else query[key] = [prev, value];
  }
  return query;
}

/** One value of a parsed query parameter (the first, if repeated). */
export function queryValue(query: ParsedQuery, name: string): string | undefined {
  const v = query[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The credential scope: `<access key>/<yyyymmdd>/<region>/<service>/aws4_request`. */
export interface CredentialScope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
}

/** The scope of a `Credential=` / `X-Amz-Credential` value; undefined unless it has five parts. */
export function parseCredential(credential: string): CredentialScope | undefined {
  const parts = credential.split('/');
  if (parts.length !== 5) return undefined;
  const [accessKeyId = '', date = '', region = '', service = '', terminator = ''] = parts;
  return { accessKeyId, date, region, service, terminator };
}

/** True for a well-formed scope ending in `aws4_request` with no empty part. */
export function isCompleteScope(scope: CredentialScope | undefined): scope is CredentialScope {
  return (
    scope !== undefined &&
    scope.accessKeyId !== '' &&
    scope.date !== '' &&
    scope.region !== '' &&
    scope.service !== '' &&
    scope.terminator === SIGV4_TERMINATOR
  );
}

/** When a presigned request was signed and until when it is valid (epoch ms). */
export interface PresignLifetime {
  signedAt: number;
  expiresIn: number;
  expiresAt: number;
}

/**
 * The lifetime a presigned request claims (`X-Amz-Date`, `X-Amz-Expires`), or what is malformed: `date`
 * (not `yyyyMMddTHHmmssZ`, or a day that does not exist), `expires` (not a decimal integer), `range`
 * (not 1 … 604800 s, SigV4's limit). Whether it is still valid is the caller's (S3 and AWS IoT differ
 * on a date in the future).
 */
export function presignLifetime(
  amzDate: string | undefined,
  expires: string | undefined,
): PresignLifetime | 'date' | 'expires' | 'range' {
  const signedAt = parseAmzDate(amzDate ?? '');
  if (signedAt === undefined) return 'date';
  if (expires === undefined || !/^\d+$/.test(expires)) return 'expires';
  const expiresIn = Number(expires);
  if (expiresIn < 1 || expiresIn > MAX_PRESIGN_EXPIRES_SEC) return 'range';
  return { signedAt, expiresIn, expiresAt: signedAt + expiresIn * 1000 };
}

export interface AuthorizationHeader {
  credential: string;
  /** Lower case, as listed. */
  signedHeaders: string[];
  /** Lower-case hex. */
  signature: string;
}

/**
 * The parts of an `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header: `scheme` when
 * the header is another scheme (SigV2's `AWS key:sig`, Basic, …), `malformed` when a part is missing or
 * the signature is not 64 hex digits.
 */
export function parseAuthorizationHeader(value: string): AuthorizationHeader | 'scheme' | 'malformed' {
  const m = new RegExp(`^${SIGV4_ALGORITHM}\\s+(.*)$`, 's').exec(value.trim());
  if (!m) return 'scheme';
  const parts = new Map<string, string>();
  for (const component of (m[1] ?? '').split(',')) {
    const eq = component.indexOf('=');
    if (eq > 0) parts.set(component.slice(0, eq).trim(), component.slice(eq + 1).trim());
  }
  const credential = parts.get('Credential');
  const signedHeaders = parts.get('SignedHeaders');
  const signature = parts.get('Signature');
  if (!credential || !signedHeaders || !signature || !/^[0-9a-f]{64}$/i.test(signature)) return 'malformed';
  return {
    credential,
    signedHeaders: signedHeaders.split(';').map((h) => h.trim().toLowerCase()),
    signature: signature.toLowerCase(),
  };
}

/** A received request, as it came in. */
export interface ReceivedRequest {
  method: string;
  /** The path exactly as received (still percent-encoded), without the query string. */
  path: string;
  /** The query, parsed with {@link parseQuery} (strict or lenient: the caller's choice). */
  query: ParsedQuery;
  headers: RequestHeaders;
  /** The body, when the caller has it and the header form signed its hash (not for S3's streams). */
  body?: Uint8Array;
}

/** What the signature covers besides the request itself, as the client claims it (already checked). */
export interface SignatureClaim {
  form: 'header' | 'query';
  /** The access key's secret; the access key itself must already match the scope's. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  scope: CredentialScope;
  /** The signed header names, lower case. */
  signedHeaders: readonly string[];
  /** The signing time, epoch ms (X-Amz-Date). */
  signedAt: number;
  /** Query form: X-Amz-Expires, 1 … 604800. */
  expiresIn?: number;
  /** The signature the client sent (hex). */
  signature: string;
  /**
   * Canonical URI: `false` signs the path as sent (S3), `true` normalises it and encodes it again (every
   * other service).
   */
  uriEscapePath: boolean;
  /**
   * The payload hash the client signed, when it is not a signed x-amz-content-sha256 header (S3's
   * presigned URLs: `X-Amz-Content-Sha256` or `UNSIGNED-PAYLOAD`). Without it: that header's value, else
   * the hash of `body`, else of the empty body.
   */
  payloadHash?: string;
  /** Query form: parameters outside the signed query (AWS IoT appends X-Amz-Security-Token after signing). */
  unsignedParams?: readonly string[];
}

export type SignatureCheck =
  | { ok: true }
  | { ok: false; failure: 'missing-header'; header: string }
  | { ok: false; failure: 'uncomputable' }
  | { ok: false; failure: 'mismatch' };

const SHA256_HEADER = 'x-amz-content-sha256';
/** What `presign` computes itself, so never taken from the received query. */
const PRESIGN_PARAMS = new Set<string>(SIGV4_QUERY_PARAMS.filter((p) => p !== 'X-Amz-Security-Token'));

/**
 * Re-signs `req` as the claim says it was signed and compares the signatures in constant time. Never
 * throws. Scope, time window and session token are the caller's to check first.
 */
export async function checkSignature(req: ReceivedRequest, claim: SignatureClaim): Promise<SignatureCheck> {
  const headers: Record<string, string> = {};
  for (const name of claim.signedHeaders) {
    const v = headerValue(req.headers, name);
    if (v === undefined) return { ok: false, failure: 'missing-header', header: name };
    headers[name] = v;
  }
  const signer = new SignatureV4({
    credentials: claim.credentials,
    region: claim.scope.region,
    service: claim.scope.service,
    sha256: NodeSha256,
    uriEscapePath: claim.uriEscapePath,
    // The checksum header is only part of the canonical request when the client sent and signed it.
    applyChecksum: false,
  });
  const signing = {
    signingDate: new Date(claim.signedAt),
    signingRegion: claim.scope.region,
    signingService: claim.scope.service,
    signableHeaders: new Set(claim.signedHeaders),
  };
  // The payload hash comes from an x-amz-content-sha256 header: when the claim names one the client did
  // not sign as a header (S3's presigned UNSIGNED-PAYLOAD), it is added unsigned and kept out of the query.
  const hashUnsigned = claim.payloadHash !== undefined && !claim.signedHeaders.includes(SHA256_HEADER);
  const toSign = hashUnsigned ? { ...headers, [SHA256_HEADER]: claim.payloadHash as string } : headers;
  const unsignableHeaders = new Set(hashUnsigned ? [SHA256_HEADER] : []);
  let expected: string | undefined;
  try {
    if (claim.form === 'header') {
      const signed = await signer.sign(request(req, req.query, toSign, req.body), {
        ...signing,
        unsignableHeaders,
      });
      expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? ''))?.[1];
    } else {
      // presign writes X-Amz-Expires as a plain decimal: "060" is not what it would sign.
      if (queryValue(req.query, 'X-Amz-Expires') !== String(claim.expiresIn)) {
        return { ok: false, failure: 'mismatch' };
      }
      const unsigned = new Set([...PRESIGN_PARAMS, ...(claim.unsignedParams ?? [])]);
      const query = Object.fromEntries(Object.entries(req.query).filter(([k]) => !unsigned.has(k)));
      const presigned = await signer.presign(request(req, query, toSign, undefined), {
        ...signing,
        expiresIn: claim.expiresIn ?? 0,
        // Signed x-amz-* headers stay headers (presign would move them into the query).
        unhoistableHeaders: new Set([...claim.signedHeaders, SHA256_HEADER]),
        unsignableHeaders,
      });
      const sig = presigned.query?.['X-Amz-Signature'];
      expected = typeof sig === 'string' ? sig : undefined;
    }
  } catch {
    return { ok: false, failure: 'uncomputable' };
  }
  if (expected === undefined) return { ok: false, failure: 'uncomputable' };
  return timingSafeEqualStrings(expected, claim.signature)
    ? { ok: true }
    : { ok: false, failure: 'mismatch' };
}

function request(
  req: ReceivedRequest,
  query: ParsedQuery,
  headers: Record<string, string>,
  body: Uint8Array | undefined,
): HttpRequest {
  return new HttpRequest({
    method: req.method.toUpperCase(),
    protocol: 'http:',
    hostname: (headers.host ?? 'localhost').replace(/:\d+$/, ''),
    path: req.path === '' ? '/' : req.path,
    query,
    headers,
    ...(body !== undefined ? { body } : {}),
  });
}
