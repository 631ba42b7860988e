import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import type { WsCredentials } from './ws-auth.ts';

/**
 * Who is on the other end of an MQTT connection.
 * - `thing`: a thing. From the client certificate's CN for the stack's own certificates; for a certificate
 *   registered through the control plane (CreateKeysAndCertificate), from the MQTT client id of a thing
 *   attached to that certificate (AttachThingPrincipal), with `certificateId` set.
 * - `certificate`: a registered certificate whose connection names no thing attached to it (yet: before
 *   CONNECT, or with another client id). Its attached IoT policies decide what it may do.
 * - `operator`: the operator certificate's CN, a SigV4-signed WebSocket, or the anonymous listener.
 */
export type ClientIdentity =
  | { kind: 'thing'; thingName: string; certificateId?: string }
  | { kind: 'certificate'; certificateId: string }
  | { kind: 'operator'; name: string };

/**
 * A cloud service living behind the broker (the Jobs service). Publishes from devices whose topic it
 * claims are handed to it and NOT forwarded to subscribers, as AWS IoT's reserved `$aws/...` topics
 * behave. Authorization runs first: a service only sees publishes the ACL allowed.
 */
export interface TopicService {
  claims(topic: string): boolean;
  onPublish(from: ClientIdentity, topic: string, payload: Buffer): void;
}

export interface BrokerTls {
  /** PEM of the local CA; client certificates must chain to it. */
  ca: string;
  cert: string;
  key: string;
}

/** The IoT policy actions the broker asks about (AWS IoT developer guide, "AWS IoT Core policy actions"). */
export type BrokerAction = 'iot:Connect' | 'iot:Publish' | 'iot:Subscribe' | 'iot:Receive';

/** What a policy decision depends on besides action and resource (AWS IoT policy variables). */
export interface PolicyContext {
  /** `${iot:ClientId}`. */
  clientId?: string;
  /** `${iot:Connection.Thing.ThingName}`: set only when the client id names a thing attached to the principal. */
  thingName?: string;
}

/**
 * Certificates registered through the control plane and their attached IoT policies (src/cloud/security).
 * The broker asks; the registry answers from its store, so a DetachPolicy or UpdateCertificate applies to
 * the next decision.
 */
export interface CertificateAuthority {
  /** Status of a registered certificate by id (hex SHA-256 of its DER, as AWS's certificateId); undefined: not registered. */
  certificateStatus(
    certificateId: string,
  ): 'ACTIVE' | 'INACTIVE' | 'REVOKED' | 'PENDING_TRANSFER' | undefined;
  /** The thing the certificate belongs to for this client id: the client id if attached, or its exclusive thing. */
  thingFor(certificateId: string, clientId: string): string | undefined;
  /**
   * Evaluates the certificate's attached policies: an explicit Deny wins, then an Allow, else denied.
   * `resource` is the part after the account in the ARN: `client/<id>`, `topic/<name>`, `topicfilter/<filter>`.
   */
  isAllowed(certificateId: string, action: BrokerAction, resource: string, context: PolicyContext): boolean;
}

/**
 * Which MQTT client ids a certificate with the built-in policy may use (AWS's recommended policy allows
 * `iot:Connect` on `client/${iot:Connection.Thing.ThingName}` only).
 * - `thing-name` (default): a thing's client id must be its thing name, and no other identity may use a
 *   registered thing's name; so no certificate can take over another thing's session.
 * - `any`: the looser `client/*` policy: any client id (several connections per certificate), at the price
 *   that a certificate may use another thing's name as its client id and so disconnect it.
 */
export type ClientIdPolicy = 'thing-name' | 'any';
export const CLIENT_ID_POLICIES: readonly ClientIdPolicy[] = ['thing-name', 'any'];

export interface BrokerOptions {
  host: string;
  /** 0 picks a free port. */
  mqttPort: number;
  /** Plain WebSocket port; 0 picks a free port. */
  wsPort: number;
  /** MQTT over WebSocket over TLS (the only WebSocket AWS IoT serves); 0 picks a free port, absent: none. */
  wssPort?: number;
  tls: BrokerTls;
  /** Progress topics are `<prefix>/<thingName>`; default `CarVi/test/firmware`. */
  progressPrefix?: string;
  /** The CN of the operator identity; default `operator`. */
  operatorName?: string;
  /** Whether a certificate CN names a registered thing. Unregistered CNs are refused at CONNECT. */
  isRegisteredThing: (thingName: string) => boolean;
  /** Default `thing-name`. */
  clientIds?: ClientIdPolicy;
  /** Registered certificates with IoT policies (CreateKeysAndCertificate); absent: CN certificates only. */
  certificates?: CertificateAuthority;
  /** SigV4 credentials that authenticate WebSocket clients (as the operator identity). */
  wsCredentials: WsCredentials;
  /** Judges the expiry of presigned WebSocket URLs; default the system's. */
  clock?: Pick<Clock, 'now'>;
  /** Plain-TCP anonymous listener, only when explicitly asked for (`ota dev --anonymous-port`). */
  anonymousPort?: number;
  /** Extra HTTPS handler on the mTLS port, chosen by ALPN `http/1.1` (the credentials provider). */
  httpsHandler?: (req: IncomingMessage, res: ServerResponse) => void;
  services?: TopicService[];
  logger?: Logger;
}

export interface RunningBroker {
  readonly mqttPort: number;
  readonly wsPort: number;
  readonly wssPort?: number;
  readonly anonymousPort?: number;
  /** Publish from the cloud side (job replies and notifications). Resolves once handed to aedes. */
  publish(topic: string, payload: string | Buffer, qos?: 0 | 1): Promise<void>;
  /**
   * Closes every live connection of the thing (MQTT and the credentials provider's HTTPS) and returns how
   * many were closed. Called when the thing is deleted; later CONNECTs are refused because the thing is no
   * longer registered.
   */
  disconnectThing(thingName: string): number;
  /** Counters for benchmarks and the dev banner. */
  stats(): { connectedClients: number; publishesIn: number; publishesOut: number; oversizedPackets: number };
  close(): Promise<void>;
}
