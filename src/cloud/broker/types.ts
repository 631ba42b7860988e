import type { Logger } from '../../shared/log.ts';

/** Who is on the other end of an MQTT connection, from its client certificate's CN (or SigV4 on WS). */
export type ClientIdentity = { kind: 'thing'; thingName: string } | { kind: 'operator'; name: string };

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

export interface BrokerOptions {
  host: string;
  /** 0 picks a free port. */
  mqttPort: number;
  /** 0 picks a free port. */
  wsPort: number;
  tls: BrokerTls;
  /** Progress topics are `<prefix>/<thingName>`; default `CarVi/test/firmware`. */
  progressPrefix?: string;
  /** The CN of the operator identity; default `operator`. */
  operatorName?: string;
  /** Whether a certificate CN names a registered thing. Unregistered CNs are refused at CONNECT. */
  isRegisteredThing: (thingName: string) => boolean;
  /** SigV4 credentials that authenticate WebSocket clients (as the operator identity). */
  wsCredentials: { accessKeyId: string; secretAccessKey: string; region: string };
  /** Plain-TCP anonymous listener, only when explicitly asked for (`ota dev --anonymous-port`). */
  anonymousPort?: number;
  /** Extra HTTPS handler on the mTLS port, chosen by ALPN `http/1.1` (the credentials provider). */
  httpsHandler?: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;
  services?: TopicService[];
  logger?: Logger;
}

export interface RunningBroker {
  readonly mqttPort: number;
  readonly wsPort: number;
  readonly anonymousPort?: number;
  /** Publish from the cloud side (job replies and notifications). Resolves once handed to aedes. */
  publish(topic: string, payload: string | Buffer, qos?: 0 | 1): Promise<void>;
  /** Counters for benchmarks and the dev banner. */
  stats(): { connectedClients: number; publishesIn: number; publishesOut: number };
  close(): Promise<void>;
}
