import type { IncomingHttpHeaders } from 'node:http';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { SIGV4_ALGORITHM, SIGV4_TERMINATOR } from '../../shared/sigv4.ts';
import { IOT_WS_SERVICE } from '../../shared/ws-url.ts';
import type { SessionTokenCheck } from '../credentials/session-tokens.ts';
import {
  checkSignature,
  parseCredential,
  parseQuery,
  presignLifetime,
  queryValue,
  splitRequestUrl,
} from '../sigv4/verify.ts';

/**
 * Server side of AWS IoT's WebSocket authentication: the upgrade request's URL carries a SigV4
 * query-string presign (service `iotdevicegateway`), checked with the configured credentials by the
 * stack's one verifier, src/cloud/sigv4/verify.ts (@smithy/signature-v4); this file is what AWS IoT
 * decides around it (scope, lifetime, the session token appended after signing). Signing lives in
 * src/shared/ws-url.ts (re-exported here for cloud-side callers).
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
    const { path, rawQuery } = splitRequestUrl(req.url ?? '/');
    const query = parseQuery(rawQuery, { lenient: true });
    const p = (name: string): string | undefined => queryValue(query, name);
    const algorithm = p('X-Amz-Algorithm');
    const credential = p('X-Amz-Credential');
    const amzDate = p('X-Amz-Date');
    const expires = p('X-Amz-Expires');
    const signedHeaders = p('X-Amz-SignedHeaders');
    const signature = p('X-Amz-Signature');
    if (!algorithm || !credential || !amzDate || !expires || !signedHeaders || !signature) {
      return fail('missing SigV4 query parameters');
    }
    if (algorithm !== SIGV4_ALGORITHM) return fail('unsupported X-Amz-Algorithm');
    const scope = parseCredential(credential);
    if (!scope || scope.terminator !== SIGV4_TERMINATOR) return fail('malformed X-Amz-Credential');
    if (scope.accessKeyId !== creds.accessKeyId) return fail('unknown access key');
    // AWS IoT appends the session token after signing, so it is checked on its own.
    const sessionToken = p('X-Amz-Security-Token');
    if (sessionToken !== undefined) {
      const check = creds.checkSessionToken?.(sessionToken) ?? 'invalid';
      if (check !== 'valid') return fail(`session token ${check}`);
    }
    if (scope.region !== creds.region) return fail('wrong region in credential scope');
    if (scope.service !== IOT_WS_SERVICE) return fail('wrong service in credential scope');
    const lifetime = presignLifetime(amzDate, expires);
    if (lifetime === 'date' || scope.date !== amzDate.slice(0, 8)) return fail('malformed X-Amz-Date');
    if (lifetime === 'expires') return fail('malformed X-Amz-Expires');
    if (lifetime === 'range') return fail('X-Amz-Expires out of range');
    if (!/^[0-9a-f]{64}$/.test(signature)) return fail('malformed X-Amz-Signature');

    const now = (opts.clock ?? systemClock).now();
    const skewMs = (opts.maxClockSkewSec ?? DEFAULT_MAX_SKEW_SEC) * 1000;
    if (now + skewMs < lifetime.signedAt) return fail('signature not yet valid');
    if (now > lifetime.expiresAt) return fail('signature expired');

    const headerNames = signedHeaders.split(';');
    if (!headerNames.includes('host')) return fail('host header must be signed');
    const check = await checkSignature(
      { method: 'GET', path, query, headers: req.headers },
      {
        form: 'query',
        credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
        scope,
        signedHeaders: headerNames,
        signedAt: lifetime.signedAt,
        expiresIn: lifetime.expiresIn,
        signature,
        uriEscapePath: true,
        unsignedParams: ['X-Amz-Security-Token'],
      },
    );
    if (check.ok) return { ok: true, accessKeyId: scope.accessKeyId };
    if (check.failure === 'missing-header') return fail(`signed header ${check.header} missing`);
    if (check.failure === 'uncomputable') return fail('could not compute signature');
    return fail('signature mismatch');
  } catch (err) {
    return fail(`unverifiable request: ${err instanceof Error ? err.message : String(err)}`);
  }
}
