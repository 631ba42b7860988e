import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type { ClientIdentity } from '../broker/types.ts';

/**
 * Emulation of the AWS IoT credentials provider (reference section 5; AWS IoT developer guide,
 * "Authorizing direct calls to AWS services using AWS IoT Core credential provider"):
 *
 *   GET /role-aliases/<alias>/credentials   over mutual TLS with the device certificate
 *   x-amzn-iot-thingname: <thing>           optional; must name the certificate's thing when present
 *   200 {"credentials":{"accessKeyId","secretAccessKey","sessionToken","expiration"}}
 *
 * Plugged into the broker as its `httpsHandler`: the broker's mTLS port hands it connections that
 * negotiated ALPN `http/1.1`, so the TLS layer has already verified the certificate against the local CA.
 *
 * The local S3 does not verify SigV4 signatures, so the returned keys are the configured ones and the
 * session token is informational (random, never checked); on AWS they would be STS temporary credentials
 * for the role behind the alias.
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
  /** Clock, for tests. */
  now?: () => Date;
  logger?: Logger;
}

export const DEFAULT_CREDENTIAL_DURATION_SECONDS = 3600;
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
  const now = opts.now ?? (() => new Date());

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

    const identity = getIdentity(req);
    // Only things assume roles through the provider (the policy grants iot:AssumeRoleWithCertificate).
    if (identity?.kind !== 'thing') {
      return reply(res, 403, { message: 'Access Denied' });
    }
    const claimed = req.headers['x-amzn-iot-thingname'];
    if (claimed !== undefined && claimed !== identity.thingName) {
      log.info({ thing: identity.thingName, claimed }, 'x-amzn-iot-thingname does not match the certificate');
      return reply(res, 403, { message: 'Access Denied' });
    }
    const role = Object.hasOwn(opts.roleAliases, alias) ? opts.roleAliases[alias] : undefined;
    if (!role) return reply(res, 404, { message: 'Role alias does not exist' });

    // AWS accepts credentialDurationSeconds of 900–43,200; the emulator honours any positive value so
    // tests can exercise a device refreshing short-lived credentials.
    const requested = role.durationSeconds ?? DEFAULT_CREDENTIAL_DURATION_SECONDS;
    const duration = requested > 0 ? requested : DEFAULT_CREDENTIAL_DURATION_SECONDS;
    const expiration = new Date(now().getTime() + duration * 1000).toISOString();
    log.debug({ thing: identity.thingName, alias, expiration }, 'issued credentials');
    reply(res, 200, {
      credentials: {
        accessKeyId: role.accessKeyId,
        secretAccessKey: role.secretAccessKey,
        sessionToken: randomBytes(48).toString('base64'),
        expiration,
      },
    });
  };
}
