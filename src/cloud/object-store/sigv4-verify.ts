import type { IncomingMessage } from 'node:http';
import { parseAmzDate, SIGV4_ALGORITHM, UNSIGNED_PAYLOAD } from '../../shared/sigv4.ts';
import {
  type CredentialScope,
  checkSignature,
  headerValue,
  isCompleteScope,
  parseAuthorizationHeader,
  parseCredential,
  parseQuery,
  queryValue,
  splitRequestUrl,
} from '../sigv4/verify.ts';

export type SigV4Result = { ok: true } | { ok: false; reason: string };

interface Claim {
  form: 'header' | 'query';
  scope: CredentialScope;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payloadHash: string;
}

/**
 * The S3 store's SigV4 check, Authorization-header or presigned-query form (S3 API Reference,
 * "Authenticating Requests (AWS Signature Version 4)"); s3rver does not do this at all. The signature is
 * checked by the stack's one verifier, src/cloud/sigv4/verify.ts (@smithy/signature-v4); this file is
 * what S3 decides around it and the front layer's reasons (sent as SignatureDoesNotMatch).
 *
 * S3 specifics: the canonical URI is the path exactly as sent (S3 neither normalizes nor double-encodes
 * it); a presigned request's payload hash is UNSIGNED-PAYLOAD unless X-Amz-Content-Sha256 is in the query.
 * Request bodies are not hashed: x-amz-content-sha256 is taken as declared (documented limitation), and
 * aws-chunked chunk signatures are not checked. The credential scope's region is used as signed, not
 * compared with the store's region, so a device signing for its job document's region still works.
 * Presigned-URL expiry is the front layer's (front-layer.ts), the header form's clock window s3rver's.
 *
 * Requests that carry no SigV4 auth pass (`ok: true`): anonymous ones are refused by the caller, and
 * Signature Version 2 ones are verified by s3rver itself.
 */
export async function verifySigV4(
  req: IncomingMessage,
  creds: { accessKeyId: string; secretAccessKey: string },
): Promise<SigV4Result> {
  const { path, rawQuery } = splitRequestUrl(req.url ?? '/');
  const query = parseQuery(rawQuery, { lenient: true });

  let claim: Claim | string;
  const auth = headerValue(req.headers, 'authorization');
  if (auth !== undefined) {
    if (!/^AWS4-HMAC-SHA256\s/.test(auth)) return { ok: true }; // SigV2: s3rver checks it
    claim = headerClaim(req, auth);
  } else if (queryValue(query, 'X-Amz-Algorithm') !== undefined) {
    if (queryValue(query, 'X-Amz-Algorithm') !== SIGV4_ALGORITHM) {
      return { ok: false, reason: 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"' };
    }
    const credential = queryValue(query, 'X-Amz-Credential');
    const signedHeaders = queryValue(query, 'X-Amz-SignedHeaders');
    const signature = queryValue(query, 'X-Amz-Signature');
    const amzDate = queryValue(query, 'X-Amz-Date');
    if (!credential || !signedHeaders || !signature || !amzDate) {
      return { ok: false, reason: 'presigned URL lacks X-Amz-Credential/SignedHeaders/Signature/Date' };
    }
    claim = fromCredential(
      'query',
      credential,
      signedHeaders.split(';').map((h) => h.trim().toLowerCase()),
      signature.toLowerCase(),
      amzDate,
      queryValue(query, 'X-Amz-Content-Sha256') ?? UNSIGNED_PAYLOAD,
    );
  } else {
    return { ok: true };
  }
  if (typeof claim === 'string') return { ok: false, reason: claim };
  if (claim.scope.accessKeyId !== creds.accessKeyId) return { ok: false, reason: 'unknown access key' };
  if (!claim.signedHeaders.includes('host')) return { ok: false, reason: 'the host header must be signed' };
  const signedAt = parseAmzDate(claim.amzDate);
  if (signedAt === undefined) return { ok: false, reason: 'malformed X-Amz-Date' };
  const expires = queryValue(query, 'X-Amz-Expires');

  const check = await checkSignature(
    { method: req.method ?? 'GET', path, query, headers: req.headers },
    {
      form: claim.form,
      credentials: creds,
      scope: claim.scope,
      signedHeaders: claim.signedHeaders,
      signedAt,
      signature: claim.signature,
      uriEscapePath: false,
      ...(claim.form === 'query'
        ? { payloadHash: claim.payloadHash, expiresIn: Number(expires ?? Number.NaN) }
        : {}),
    },
  );
  if (!check.ok) {
    if (check.failure === 'missing-header') {
      return { ok: false, reason: `signed header ${check.header} is missing` };
    }
    return {
      ok: false,
      reason:
        'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    };
  }
  return { ok: true };
}

function headerClaim(req: IncomingMessage, auth: string): Claim | string {
  const parsed = parseAuthorizationHeader(auth);
  if (parsed === 'scheme') return 'unsupported Authorization scheme';
  if (parsed === 'malformed') return 'malformed Authorization header';
  const amzDate = headerValue(req.headers, 'x-amz-date');
  if (!amzDate) return 'missing x-amz-date header';
  const payloadHash = headerValue(req.headers, 'x-amz-content-sha256');
  if (!payloadHash) return 'missing x-amz-content-sha256 header';
  return fromCredential(
    'header',
    parsed.credential,
    parsed.signedHeaders,
    parsed.signature,
    amzDate,
    payloadHash,
  );
}

function fromCredential(
  form: Claim['form'],
  credential: string,
  signedHeaders: string[],
  signature: string,
  amzDate: string,
  payloadHash: string,
): Claim | string {
  const scope = parseCredential(credential);
  if (!isCompleteScope(scope)) return 'malformed credential scope';
  if (!amzDate.startsWith(scope.date)) return 'credential scope date does not match X-Amz-Date';
  return { form, scope, signedHeaders, signature, amzDate, payloadHash };
}
