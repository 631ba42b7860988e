import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { type Clock, systemClock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type { ClientIdentity } from '../broker/types.ts';
import type { SecurityRegistry } from '../security/registry.ts';
import type { SessionTokens } from './session-tokens.ts';

/**
 * Emulation of the AWS IoT credentials provider (docs/protocol.md, Credentials provider; AWS IoT developer
 * guide, "Authorizing direct calls to AWS services using AWS IoT Core credential provider"):
 *
 *   GET /role-aliases/<alias>/credentials   over mutual TLS with the device certificate
 *   x-amzn-iot-thingname: <thing>           optional; must name the certificate's thing when present
 *   200 {"credentials":{"accessKeyId","secretAccessKey","sessionToken","expiration"}}
 *
 * Plugged into the broker as its `httpsHandler`: the broker's mTLS port hands it connections that
 * negotiated ALPN `http/1.1`, so the TLS layer has already verified the certificate against the local CA.
 *
 * The returned keys are the stack's own (a role alias maps to them); with `sessionTokens`, the session
 * token is one the stack records and checks until it expires (session-tokens.ts). On AWS they would be
 * STS temporary credentials for the role behind the alias.
 */

export interface RoleAliasCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** AWS's credentialDurationSeconds (900–43,200 on AWS; any positive value here), default 3,600. */
  durationSeconds?: number;
}

export interface CredentialsHandlerOptions {
  roleAliases: Record<string, RoleAliasCredentials>;
  /**
   * Who is calling. The broker's `getRequestIdentity` gives the identity it assigned the TLS connection
   * (undefined for unregistered CNs); the default reads the verified peer certificate's CN as a thing name.
   */
  getIdentity?: (req: IncomingMessage) => ClientIdentity | undefined;
  /** Role aliases made with CreateRoleAlias, and the attached policies of registered certificates. */
  registry?: Pick<SecurityRegistry, 'roleAlias' | 'canAssumeRole'>;
  /** The key pair handed out for a registry role alias (the stack's own). */
  registryCredentials?: { accessKeyId: string; secretAccessKey: string };
  /** Issues the session token (and its expiry); default: a random token nothing checks. */
  sessionTokens?: SessionTokens;
  /** Dates the credentials' expiration when no `sessionTokens` does; default the system's. */
  clock?: Pick<Clock, 'now'>;
  logger?: Logger;
}

export const DEFAULT_CREDENTIAL_DURATION_SECONDS = 3600;

type Grant =
  | { ok: true; credentials: { accessKeyId: string; secretAccessKey: string }; durationSeconds?: number }
  | { ok: false; status: 403 | 404; reason: string };
const ROUTE = /^\/role-aliases\/([^/]+)\/credentials\/?$/;

/** Default identity: the CN of a peer certificate that the TLS layer verified, taken as a thing name. */
export function peerCertificateIdentity(req: IncomingMessage): ClientIdentity | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (!socket.authorized || typeof socket.getPeerCertificate !== 'function') return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  return name ? { kind: 'thing', thingName: name } : undefined;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
  });
  res.end(json);
}

export function createCredentialsHandler(
  opts: CredentialsHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const log = (opts.logger ?? silentLogger).child({ component: 'credentials-provider' });
  const getIdentity = opts.getIdentity ?? peerCertificateIdentity;
  const clock = opts.clock ?? systemClock;

  /**
   * Who may have credentials for which alias:
   * - a thing certificate of the stack (CN = thing name): the built-in policy allows every alias; a
   *   `x-amzn-iot-thingname` header must name that thing;
   * - a registered certificate: a registry alias, if its attached policies allow
   *   iot:AssumeRoleWithCertificate on it (the header, if any, must name a thing attached to it);
   * - anyone else (the operator, unknown certificates): 403.
   */
  const resolveGrant = (
    identity: ClientIdentity | undefined,
    alias: string,
    claimed: string | undefined,
  ): Grant => {
    const registered = opts.registry?.roleAlias(alias);
    if (identity?.kind === 'certificate') {
      if (!opts.registry || !registered) return { ok: false, status: 404, reason: 'no such role alias' };
      if (!opts.registry.canAssumeRole(identity.certificateId, alias, claimed)) {
        return { ok: false, status: 403, reason: "not allowed by the certificate's policies" };
      }
      return registryGrant(registered.credentialDurationSeconds);
    }
    if (identity?.kind !== 'thing') return { ok: false, status: 403, reason: 'not a thing' };
    if (claimed !== undefined && claimed !== identity.thingName) {
      return { ok: false, status: 403, reason: `x-amzn-iot-thingname is not ${identity.thingName}` };
    }
    const role = Object.hasOwn(opts.roleAliases, alias) ? opts.roleAliases[alias] : undefined;
    if (role)
      return {
        ok: true,
        credentials: role,
        ...(role.durationSeconds ? { durationSeconds: role.durationSeconds } : {}),
      };
    if (registered) return registryGrant(registered.credentialDurationSeconds);
    return { ok: false, status: 404, reason: 'no such role alias' };
  };
  const registryGrant = (durationSeconds: number): Grant =>
    opts.registryCredentials
      ? { ok: true, credentials: opts.registryCredentials, durationSeconds }
      : { ok: false, status: 404, reason: 'no credentials configured for registry role aliases' };

  return (req, res) => {
    const path = new URL(req.url ?? '/', 'https://localhost').pathname;
    const m = ROUTE.exec(path);
    if (!m) return reply(res, 404, { message: 'Not Found' });
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      return reply(res, 405, { message: 'Method Not Allowed' });
    }
    let alias: string;
    try {
      alias = decodeURIComponent(m[1] ?? '');
    } catch {
      return reply(res, 400, { message: 'Invalid role alias' });
    }

    const claimedHeader = req.headers['x-amzn-iot-thingname'];
    const claimed = typeof claimedHeader === 'string' ? claimedHeader : undefined;
    const grant = resolveGrant(getIdentity(req), alias, claimed);
    if (!grant.ok) {
      log.info({ alias, claimed, reason: grant.reason }, 'credentials refused');
      return reply(res, grant.status, {
        message: grant.status === 404 ? 'Role alias does not exist' : 'Access Denied',
      });
    }
    // AWS accepts credentialDurationSeconds of 900–43,200; the emulator honours any positive value so
    // tests can exercise a device refreshing short-lived credentials.
    const requested = grant.durationSeconds ?? DEFAULT_CREDENTIAL_DURATION_SECONDS;
    const duration = requested > 0 ? requested : DEFAULT_CREDENTIAL_DURATION_SECONDS;
    const session = opts.sessionTokens?.issue(duration) ?? {
      sessionToken: randomBytes(48).toString('base64'),
      expiration: new Date(clock.now() + duration * 1000),
    };
    log.debug({ alias, expiration: session.expiration }, 'issued credentials');
    reply(res, 200, {
      credentials: {
        accessKeyId: grant.credentials.accessKeyId,
        secretAccessKey: grant.credentials.secretAccessKey,
        sessionToken: session.sessionToken,
        expiration: session.expiration.toISOString(),
      },
    });
  };
}
