import { X509Certificate } from 'node:crypto';
import { stackNotRunningMessage } from '../../shared/endpoints.ts';
import { OtaError } from '../../shared/errors.ts';
import { THING_NAME_PATTERN } from '../../shared/topics.ts';

/**
 * Why the agent cannot connect, in words a person can act on. A failed connection attempt reaches the
 * agent as a socket error code, a TLS alert, a CONNACK return code or a bare close; this turns each into
 * its likely cause ("nothing listening on host:port", "the certificate's CN is X but --thing-name is
 * Y") and says whether retrying can help soon (`definitive`: the broker answered and said no).
 */

/** The subject CN AWS IoT gives the certificates it creates (CreateKeysAndCertificate): it names no thing. */
export const AWS_CERTIFICATE_CN = 'AWS IoT Certificate';

export interface ConnectSubject {
  host: string;
  port: number;
  clientId: string;
  thingName: string;
  /** The device certificate's subject CN, when it has one. */
  certCn?: string;
  /** `--local`: the local stack's data dir (a refused connection then means it is not running). */
  localDataDir?: string;
}

export type ConnectProblemKind =
  | 'refused' // ECONNREFUSED: nothing listens on host:port
  | 'dns' // the host name does not resolve
  | 'unreachable' // no route, or the TCP connect timed out
  | 'timeout' // no CONNACK within the connect timeout
  | 'server-certificate' // the broker's certificate is not trusted (root CA, host name)
  | 'client-certificate' // the broker refused the device certificate in the TLS handshake
  | 'not-tls' // the port does not speak TLS
  | 'not-authorized' // CONNACK 4 or 5
  | 'wrong-thing' // found before connecting: the local stack's certificate names another thing
  | 'connack' // another CONNACK refusal (MQTT 3.1.1 section 3.2.2.3)
  | 'closed' // closed before CONNACK without an error: AWS IoT's answer to a CONNECT its policy refuses
  | 'dropped' // an established connection was lost
  | 'other';

export interface ConnectProblem {
  kind: ConnectProblemKind;
  /** One line: what happened and the likely cause. */
  message: string;
  /** Retrying cannot fix it soon (the broker answered and refused): `--once` gives up at once. */
  definitive: boolean;
  cause?: Error;
}

/** The agent could not connect (`--once` past its connect timeout, or refused for good). */
export class ConnectError extends OtaError {
  readonly problem: ConnectProblem | undefined;
  constructor(message: string, problem?: ConnectProblem) {
    super('OTA_DEVICE_CONNECT', message, problem?.cause ? { cause: problem.cause } : undefined);
    this.problem = problem;
  }
  /** A mistake in the configuration (exit status 2, not restarted by systemd) rather than a network fault. */
  get definitive(): boolean {
    return this.problem?.definitive === true && this.problem.kind !== 'refused';
  }
}

/** MQTT 3.1.1 section 3.2.2.3, CONNACK return codes. */
const CONNACK: Readonly<Record<number, string>> = {
  1: 'unacceptable protocol version',
  2: 'client identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

const SERVER_CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const UNREACHABLE_CODES = new Set(['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

/** Is this CN the name of a thing (the local stack's certificates), rather than AWS's fixed CN? */
function isThingCn(cn: string | undefined): cn is string {
  return cn !== undefined && cn !== AWS_CERTIFICATE_CN && THING_NAME_PATTERN.test(cn);
}

function notAuthorized(code: number, s: ConnectSubject): string {
  const head = `the broker refused the connection (CONNACK ${code}, ${CONNACK[code]})`;
  if (isThingCn(s.certCn) && s.certCn !== s.thingName) {
    return `${head}: the certificate's CN is ${s.certCn} but --thing-name is ${s.thingName}`;
  }
  if (s.clientId !== s.thingName) {
    return (
      `${head}: the MQTT client id ${JSON.stringify(s.clientId)} is not the thing name ${s.thingName}; ` +
      'the broker requires the client id to be the thing name (leave clientId unset)'
    );
  }
  return (
    `${head} for client id ${s.clientId}: the broker requires the client id to be the thing name the ` +
    `certificate belongs to; is the certificate ACTIVE, attached to thing ${s.thingName}, and allowed ` +
    `iot:Connect on client/${s.clientId} by its policy?`
  );
}

/**
 * The likely cause of a failed attempt. `err` is what MQTT.js reported (undefined: the connection just
 * closed); `established`: the connection had been accepted before it closed.
 */
export function diagnoseConnectError(
  err: Error | undefined,
  s: ConnectSubject,
  established = false,
): ConnectProblem {
  const where = `${s.host}:${s.port}`;
  const e = err as (Error & { code?: string | number }) | undefined;
  const code = e?.code;
  const cause = err ? { cause: err } : {};
  if (established) {
    const why = err ? ` (${err.message})` : '';
    return {
      kind: 'dropped',
      message: `the connection to ${where} was lost${why}`,
      definitive: false,
      ...cause,
    };
  }
  if (typeof code === 'number') {
    const known = CONNACK[code] !== undefined;
    if (code === 4 || code === 5)
      return { kind: 'not-authorized', message: notAuthorized(code, s), definitive: true, ...cause };
    return {
      kind: 'connack',
      message: `the broker refused the connection (CONNACK ${code}${known ? `, ${CONNACK[code]}` : ''})`,
      definitive: code !== 3,
      ...cause,
    };
  }
  if (code === 'ECONNREFUSED') {
    const message = s.localDataDir
      ? stackNotRunningMessage(s.localDataDir, where)
      : `nothing listening on ${where} (connection refused): is the endpoint and port right, and the broker up?`;
    // On this machine's own stack, nothing listening means it is not running: no use waiting.
    return { kind: 'refused', message, definitive: s.localDataDir !== undefined, ...cause };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    const message = `cannot resolve ${s.host} (${code}): check --endpoint, and the network and DNS`;
    return { kind: 'dns', message, definitive: false, ...cause };
  }
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) {
    return { kind: 'unreachable', message: `${where} is unreachable (${code})`, definitive: false, ...cause };
  }
  if (typeof code === 'string' && SERVER_CERT_CODES.has(code)) {
    return {
      kind: 'server-certificate',
      message:
        `the broker's certificate is not trusted (${code}: ${err?.message}): check --root-ca ` +
        '(for AWS IoT, Amazon Root CA 1) and --endpoint',
      definitive: true,
      ...cause,
    };
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    const message = `${where} does not speak TLS (${code}): is it the broker's mTLS port (8883)?`;
    return { kind: 'not-tls', message, definitive: true, ...cause };
  }
  if (typeof code === 'string' && /^ERR_SSL_.*ALERT/.test(code)) {
    return {
      kind: 'client-certificate',
      message:
        `the broker refused the device certificate in the TLS handshake (${err?.message.trim()}): check ` +
        '--cert and --key; is the certificate registered and ACTIVE, from a CA the broker trusts?',
      definitive: true,
      ...cause,
    };
  }
  if (err?.message === 'connack timeout') {
    const message = `no answer from ${where} (no CONNACK within the connect timeout): a firewall, or not an MQTT broker?`;
    return { kind: 'timeout', message, definitive: false, ...cause };
  }
  if (!err || code === 'ECONNRESET' || code === 'EPIPE') {
    const how = err ? `reset the connection (${code})` : 'closed the connection';
    return {
      kind: 'closed',
      message:
        `the broker ${how} before accepting it: on AWS IoT this is the answer to a CONNECT the ` +
        `certificate's policy does not allow (the client id ${s.clientId} must be the thing name, the ` +
        'certificate ACTIVE and attached to the thing)',
      definitive: false,
      ...cause,
    };
  }
  return { kind: 'other', message: err.message, definitive: false, ...cause };
}

/** The subject CN of a PEM certificate, if it can be read and has one. */
export function certificateCn(certPem: string): string | undefined {
  try {
    const subject = new X509Certificate(certPem).subject;
    const cn = subject
      .split('\n')
      .filter((l) => l.startsWith('CN='))
      .pop();
    return cn?.slice(3);
  } catch {
    return undefined;
  }
}

/**
 * Checked before connecting: a certificate that names a thing other than `thingName`, from the local
 * stack. The local broker takes such a certificate's CN as the thing name, so it can never connect as
 * another thing. "From the local stack" means issued by the root CA the broker's own certificate chains
 * to (`ota dev`'s one CA): on AWS the device certificate comes from AWS's CA and the root CA is Amazon's,
 * and AWS's certificates are CN "AWS IoT Certificate" anyway, so an AWS device is never refused here.
 */
export function localCertificateMismatch(o: {
  certPem: string;
  caPem: string | undefined;
  thingName: string;
}): string | undefined {
  if (!o.caPem) return undefined;
  try {
    const cert = new X509Certificate(o.certPem);
    const cn = certificateCn(o.certPem);
    if (!isThingCn(cn) || cn === o.thingName) return undefined;
    const ca = new X509Certificate(o.caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return undefined;
    return (
      `the certificate's CN is ${cn} but --thing-name is ${o.thingName}: the local broker takes the ` +
      `CN as the thing name; pass -n ${cn}, or the certificate of ${o.thingName} (\`ota thing create ${o.thingName}\`)`
    );
  } catch {
    // Unreadable here: TLS will say what is wrong with it.
    return undefined;
  }
}
