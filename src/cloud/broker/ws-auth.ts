import type { IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { parseAmzDate, SIGV4_ALGORITHM, SIGV4_TERMINATOR } from '../../shared/sigv4.ts';
import { timingSafeEqualStrings } from '../../shared/sigv4-crypto.ts';
import { IOT_WS_SERVICE, MAX_WS_PRESIGN_EXPIRES_SEC, SIGV4_QUERY_PARAMS } from '../../shared/ws-url.ts';
import type { SessionTokenCheck } from '../credentials/session-tokens.ts';

/**
 * Server side of AWS IoT's WebSocket authentication: the upgrade request's URL carries a SigV4
 * query-string presign (service `iotdevicegateway`); we recompute it with the configured credentials and
 * compare. Signing lives in src/shared/ws-url.ts (re-exported here for cloud-side callers).
 */
export { presignWebSocketUrl } from '../../shared/ws-url.ts';

export interface WsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /**
   * Checks the `X-Amz-Security-Token` appended to a URL signed with temporary credentials
   * (credentials/session-tokens.ts). Without it every token is refused: nothing issued it.
   */
  checkSessionToken?: (sessionToken: string) => SessionTokenCheck;
}

export type WsAuthResult = { ok: true; accessKeyId: string } | { ok: false; reason: string };

/** Clock skew tolerated for a signature dated in the future (SigV4 services allow 5 minutes). */
const DEFAULT_MAX_SKEW_SEC = 300;

const fail = (reason: string): WsAuthResult => ({ ok: false, reason });

/**
 * Verifies the SigV4 presign on a WebSocket upgrade request. Rejects a missing, malformed, wrongly-scoped
 * (other key, region or service), expired, future-dated or wrong signature; never throws.
 */
export async function verifyPresignedWebSocketRequest(
  req: { url?: string | undefined; headers: IncomingHttpHeaders },
  creds: WsCredentials,
  opts: { clock?: Pick<Clock, 'now'>; maxClockSkewSec?: number } = {},
): Promise<WsAuthResult> {
  try {
    const host = req.headers.host;
    if (!host) return fail('missing Host header');
    const url = new URL(req.url ?? '/', `http://${host}`);
    const p = url.searchParams;
    const algorithm = p.get('X-Amz-Algorithm');
    const credential = p.get('X-Amz-Credential');
    const amzDate = p.get('X-Amz-Date');
    const expires = p.get('X-Amz-Expires');
    const signedHeaders = p.get('X-Amz-SignedHeaders');
    const signature = p.get('X-Amz-Signature');
    if (!algorithm || !credential || !amzDate || !expires || !signedHeaders || !signature) {
      return fail('missing SigV4 query parameters');
    }
    if (algorithm !== SIGV4_ALGORITHM) return fail('unsupported X-Amz-Algorithm');
    const [akid, scopeDate, region, service, terminator, ...extra] = credential.split('/');
    if (extra.length > 0 || terminator !== SIGV4_TERMINATOR) return fail('malformed X-Amz-Credential');
    if (akid !== creds.accessKeyId) return fail('unknown access key');
    // AWS IoT appends the session token after signing, so it is checked on its own.
    const sessionToken = p.get('X-Amz-Security-Token');
    if (sessionToken !== null) {
      const check = creds.checkSessionToken?.(sessionToken) ?? 'invalid';
      if (check !== 'valid') return fail(`session token ${check}`);
    }
    if (region !== creds.region) return fail('wrong region in credential scope');
    if (service !== IOT_WS_SERVICE) return fail('wrong service in credential scope');
    const signingDate = parseAmzDate(amzDate);
    if (signingDate === undefined || scopeDate !== amzDate.slice(0, 8)) return fail('malformed X-Amz-Date');
    if (!/^\d+$/.test(expires)) return fail('malformed X-Amz-Expires');
    const expiresIn = Number(expires);
    if (expiresIn < 1 || expiresIn > MAX_WS_PRESIGN_EXPIRES_SEC) return fail('X-Amz-Expires out of range');
    if (!/^[0-9a-f]{64}$/.test(signature)) return fail('malformed X-Amz-Signature');

    const now = (opts.clock ?? systemClock).now();
    const skewMs = (opts.maxClockSkewSec ?? DEFAULT_MAX_SKEW_SEC) * 1000;
    if (now + skewMs < signingDate) return fail('signature not yet valid');
    if (now > signingDate + expiresIn * 1000) return fail('signature expired');

    const headerNames = signedHeaders.split(';');
    if (!headerNames.includes('host')) return fail('host header must be signed');
    const headers: Record<string, string> = {};
    for (const name of headerNames) {
      const v = req.headers[name];
      if (v === undefined) return fail(`signed header ${name} missing`);
      headers[name] = Array.isArray(v) ? v.join(',') : v;
    }
    const query: Record<string, string | string[]> = {};
    const dropped = new Set<string>(SIGV4_QUERY_PARAMS);
    for (const [k, v] of p) {
      if (dropped.has(k)) continue;
      const prev = query[k];
      if (prev === undefined) query[k] = v;
      else query[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const request = new HttpRequest({
      method: 'GET',
      protocol: 'http:',
      hostname: url.hostname,
      path: url.pathname,
      query,
      headers,
    });
    const signer = new SignatureV4({
      credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
      region: creds.region,
      service: IOT_WS_SERVICE,
      sha256: Sha256,
    });
    const expected = (await signer.presign(request, { expiresIn, signingDate: new Date(signingDate) }))
      .query?.['X-Amz-Signature'];
    if (typeof expected !== 'string') return fail('could not compute signature');
    if (!timingSafeEqualStrings(expected, signature)) return fail('signature mismatch');
    return { ok: true, accessKeyId: akid };
  } catch (err) {
    return fail(`unverifiable request: ${err instanceof Error ? err.message : String(err)}`);
  }
}
