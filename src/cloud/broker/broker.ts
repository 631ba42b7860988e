import type { EventEmitter } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { systemClock } from '../../shared/clock.ts';
import { errorMessage } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import { DEFAULT_PROGRESS_PREFIX } from '../../shared/topics.ts';
import { aedesHooks, BrokerError, MAX_PACKET_BYTES } from './aedes-hooks.ts';
import { createAuthorizer } from './authorizer.ts';
import {
  closeServer,
  createMtlsListener,
  createWebSocketListener,
  listen,
  peerCertificateId,
  peerCommonName,
  WS_PATH,
} from './listeners.ts';
import { hookParser } from './packet-limit.ts';
import type { BrokerOptions, ClientIdentity, RunningBroker, TopicService } from './types.ts';

export { BrokerError, MAX_PACKET_BYTES, MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES } from './aedes-hooks.ts';
export { WS_PATH };

/**
 * The local stand-in for AWS IoT Core's message broker: aedes (MQTT 3.1.1) behind listeners we own.
 *
 * - mqtts (mutual TLS): for the stack's own certificates the CN is the identity: CN = operator name →
 *   operator; any other CN must be a registered thing or CONNECT gets return code 5 (MQTT 3.1.1 §3.2.2.3
 *   "not authorized"). A certificate registered through the control plane (CreateKeysAndCertificate) is
 *   known by its id instead; its thing is the client id of a thing attached to it (AttachThingPrincipal),
 *   and its attached IoT policies decide (authorizer.ts). The same TLS port also serves HTTPS chosen by
 *   ALPN `http/1.1`, the way AWS multiplexes MQTT and HTTPS on 443 (the credentials provider lives there).
 * - WebSocket (`/mqtt`), plain and over TLS (`wss`, the only kind AWS IoT serves): authenticated by a SigV4
 *   presigned URL (service `iotdevicegateway`), like AWS IoT's WebSocket endpoint; a verified client is
 *   the operator.
 * - optional plain-TCP anonymous listener: read-only operator rights; only when explicitly configured.
 *
 * Client ids: AWS's recommended policy allows `iot:Connect` only on `client/${iot:Connection.Thing.ThingName}`;
 * by default (`clientIds: 'thing-name'`) the built-in policy does the same, so that no certificate can
 * take over another thing's session (a second CONNECT with a client id disconnects the first, §3.1.4).
 *
 * What a denial looks like on the wire:
 * - CONNECT: CONNACK return code 5.
 * - SUBSCRIBE: the filter's SUBACK return code is 0x80 (MQTT 3.1.1 §3.9.3); the connection stays up.
 * - PUBLISH: the connection is closed (that is how aedes refuses a publish, and what AWS IoT does on a
 *   policy violation); the message reaches nobody and a QoS 1 publish gets no PUBACK.
 * - QoS 2: AWS IoT supports QoS 0 and 1 only (docs/protocol.md, Message broker). A QoS 2 PUBLISH is
 *   refused like an unauthorized one; a QoS 2 SUBSCRIBE is granted QoS 1 (AWS sends no SUBACK at all, which
 *   would leave a client hanging; granting the maximum QoS we support is the MQTT-conformant downgrade,
 *   §3.9.3).
 * - a packet whose fixed header announces more than MAX_PACKET_BYTES: the connection is closed before the
 *   body is read (packet-limit.ts), so no peer can make the broker buffer more than that.
 *
 * Topic services (the Jobs service): a publish whose topic a service claims goes to that service after
 * authorization and is never forwarded to subscribers, as with AWS's reserved `$aws/things/.../jobs/...`
 * request topics. Mechanism: `authorizeForward` drops claimed topics for every subscriber (live and queued
 * offline deliveries both pass through it), and the `published` hook (after PUBACK for QoS 1) hands the
 * message to the service. Claimed publishes are never retained.
 */

/**
 * Identity of each connection, keyed by the stream handed to aedes (TLS socket, WebSocket stream or TCP
 * socket). Module-level so `getRequestIdentity` can serve an httpsHandler built before the broker starts.
 */
const connIdentities = new WeakMap<object, ClientIdentity>();

/**
 * The identity the broker gave an HTTPS request on the mTLS port: a thing or the operator for the stack's
 * certificates, `certificate` for a registered one (undefined: unknown or unregistered CN).
 */
export function getRequestIdentity(req: IncomingMessage): ClientIdentity | undefined {
  return connIdentities.get(req.socket);
}

/** ALPN protocols of the mTLS port: AWS IoT's MQTT ALPN id, plain `mqtt`, and HTTPS. */
export const MTLS_ALPN_PROTOCOLS = ['x-amzn-mqtt-ca', 'mqtt', 'http/1.1'];
/** AWS IoT allows client ids up to 128 bytes (docs/protocol.md, Message broker); aedes defaults to 23. */
const MAX_CLIENT_ID_LENGTH = 128;

type Counters = { publishesIn: number; publishesOut: number; oversizedPackets: number };

/** What the broker's parts share: options, logger, counters and the set of live sockets. */
interface BrokerContext {
  readonly options: BrokerOptions;
  readonly log: Logger;
  readonly operatorName: string;
  readonly counters: Counters;
  /** Every socket we accepted, destroyed on close so no handle outlives the broker. */
  readonly sockets: Set<Duplex>;
  readonly track: (s: Duplex) => void;
  readonly isClosed: () => boolean;
  /** `options.isRegisteredThing`, with a throw treated as "not registered". */
  readonly isRegistered: (thingName: string) => boolean;
}

/** The listening servers and what closing them takes. */
interface BrokerListeners {
  readonly tlsServer: net.Server;
  readonly ws: ReturnType<typeof createWebSocketListener>;
  readonly wssListener: ReturnType<typeof createWebSocketListener> | undefined;
  readonly anonServer: net.Server | undefined;
  readonly servers: net.Server[];
}

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  let closed = false;
  const ctx = brokerContext(options, () => closed);
  const aedes = await createAedes(ctx);
  const handleMqtt = mqttHandler(ctx, aedes);
  const listeners: BrokerListeners = createListeners(ctx, handleMqtt);
  const ports = await listenAll(ctx, aedes, listeners);

  let closing: Promise<void> | undefined;
  return {
    ...ports,
    publish: (topic, payload, qos = 1) =>
      closed
        ? Promise.reject(new BrokerError('broker is closed'))
        : publishFromCloud(aedes, topic, payload, qos),
    disconnectThing: (thingName) => disconnectThing(ctx, thingName),
    stats: () => ({ connectedClients: aedes.connectedClients ?? 0, ...ctx.counters }),
    close() {
      closed = true;
      closing ??= closeBroker(ctx, aedes, listeners);
      return closing;
    },
  };
}

function brokerContext(options: BrokerOptions, isClosed: () => boolean): BrokerContext {
  const log = (options.logger ?? silentLogger).child({ component: 'broker' });
  const sockets = new Set<Duplex>();
  return {
    options,
    log,
    operatorName: options.operatorName ?? 'operator',
    counters: { publishesIn: 0, publishesOut: 0, oversizedPackets: 0 },
    sockets,
    track: (s) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    },
    isClosed,
    isRegistered: (thingName) => {
      try {
        return options.isRegisteredThing(thingName);
      } catch (err) {
        log.warn({ err, thingName }, 'isRegisteredThing threw; treating the thing as unregistered');
        return false;
      }
    },
  };
}

/** The aedes instance with our authorization and topic-service hooks (aedes-hooks.ts) and its error events. */
async function createAedes(ctx: BrokerContext): Promise<Aedes> {
  const { options, log } = ctx;
  const services: TopicService[] = options.services ?? [];
  const authorizer = createAuthorizer({
    acl: { progressPrefix: options.progressPrefix ?? DEFAULT_PROGRESS_PREFIX },
    clientIds: options.clientIds ?? 'thing-name',
    isRegistered: ctx.isRegistered,
    ...(options.certificates ? { certificates: options.certificates } : {}),
    log,
  });

  const claimant = (topic: string): TopicService | undefined => {
    for (const s of services) {
      try {
        if (s.claims(topic)) return s;
      } catch (err) {
        log.warn({ err, topic }, 'TopicService.claims threw');
      }
    }
    return undefined;
  };

  const aedes = await Aedes.createBroker({
    maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
    // No in-flight cap in aedes' mqemitter (default 100). Over the cap messages queue, and each one that
    // completes synchronously (no subscriber) takes the next from the queue in the same stack: a burst of
    // thousands (10,000 devices' progress, a job's notify-next to a whole fleet) overflowed the call stack
    // and killed the stack (mqemitter PR #204, open). Uncapped, every publish is handled as it comes.
    concurrency: 0,

    ...aedesHooks({
      authorizer,
      identityOf: (client: Client | null) => (client ? connIdentities.get(client.conn) : undefined),
      setIdentity: (client, identity) => connIdentities.set(client.conn, identity),
      claimant,
      counters: ctx.counters,
      log,
    }),
  });

  aedes.on('clientError', (client, err) =>
    log.debug({ clientId: client.id, err: errorMessage(err) }, 'client error'),
  );
  aedes.on('connectionError', (_client, err) => log.debug({ err: errorMessage(err) }, 'connection error'));
  // aedes emits 'error' for persistence failures; an unhandled 'error' event would crash the process.
  (aedes as EventEmitter).on('error', (err: unknown) => log.error({ err }, 'aedes error'));
  return aedes;
}

type MqttHandler = (stream: Duplex, identity: ClientIdentity | undefined, req?: IncomingMessage) => void;

/** Hands a connection to aedes with its identity, behind the packet-size guard (packet-limit.ts). */
function mqttHandler(ctx: BrokerContext, aedes: Aedes): MqttHandler {
  const { counters, log } = ctx;
  return (stream, identity, req) => {
    if (identity) connIdentities.set(stream, identity);
    const client = aedes.handle(stream, req);
    const hooked = hookParser(client, MAX_PACKET_BYTES, (check) => {
      counters.oversizedPackets++;
      log.info(
        { clientId: client.id, identity: connIdentities.get(stream), ...check, limit: MAX_PACKET_BYTES },
        'packet refused from its fixed header; closing connection',
      );
      stream.destroy();
    });
    if (!hooked) {
      log.error('aedes internals changed (no _parser.parse): refusing the connection');
      stream.destroy();
    }
  };
}

function createListeners(ctx: BrokerContext, handleMqtt: MqttHandler): BrokerListeners {
  const tlsServer = createMtlsServer(ctx, handleMqtt);
  // WebSocket listeners (SigV4-presigned URL): plain and TLS.
  const wsListenerOptions = {
    credentials: ctx.options.wsCredentials,
    clock: ctx.options.clock ?? systemClock,
    onStream: (stream: Duplex, req: IncomingMessage) =>
      handleMqtt(stream, { kind: 'operator', name: ctx.operatorName }, req),
    track: ctx.track,
    isClosed: ctx.isClosed,
    log: ctx.log,
  };
  const ws = createWebSocketListener(wsListenerOptions);
  const wssListener =
    ctx.options.wssPort !== undefined
      ? createWebSocketListener({ ...wsListenerOptions, tls: ctx.options.tls })
      : undefined;
  const anonServer =
    ctx.options.anonymousPort !== undefined ? createAnonymousServer(ctx, handleMqtt) : undefined;
  const servers: net.Server[] = [
    tlsServer,
    ws.server,
    ...(wssListener ? [wssListener.server] : []),
    ...(anonServer ? [anonServer] : []),
  ];
  return { tlsServer, ws, wssListener, anonServer, servers };
}

/** HTTPS on the mTLS port (ALPN http/1.1): `options.httpsHandler`, or 404 without one. */
function createHttpsDispatcher(ctx: BrokerContext): http.Server {
  const { options, log } = ctx;
  const httpsInternal = http.createServer((req, res) => {
    if (!options.httpsHandler) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Not Found"}');
      return;
    }
    try {
      options.httpsHandler(req, res);
    } catch (err) {
      log.error({ err }, 'httpsHandler threw');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"message":"Internal Server Error"}');
    }
  });
  httpsInternal.on('clientError', (_err, socket) => socket.destroy());
  return httpsInternal;
}

/** Identity from the verified certificate: a registered certificate by id, else the CN. */
function certificateIdentity(ctx: BrokerContext, socket: TLSSocket): ClientIdentity | undefined {
  const { certificates } = ctx.options;
  if (certificates) {
    const certificateId = peerCertificateId(socket);
    if (certificateId && certificates.certificateStatus(certificateId) !== undefined) {
      return { kind: 'certificate', certificateId };
    }
  }
  const cn = peerCommonName(socket);
  if (cn === ctx.operatorName) return { kind: 'operator', name: cn };
  return cn ? { kind: 'thing', thingName: cn } : undefined;
}

/** mTLS listener: MQTT, and HTTPS by ALPN http/1.1. */
function createMtlsServer(ctx: BrokerContext, handleMqtt: MqttHandler): net.Server {
  const { log } = ctx;
  const httpsInternal = createHttpsDispatcher(ctx);
  return createMtlsListener({
    tls: ctx.options.tls,
    alpnProtocols: MTLS_ALPN_PROTOCOLS,
    track: ctx.track,
    isClosed: ctx.isClosed,
    log,
    onConnection(socket) {
      let identity: ClientIdentity | undefined;
      try {
        identity = certificateIdentity(ctx, socket);
      } catch (err) {
        log.error({ err }, 'certificate lookup threw; connection has no identity');
      }
      if (socket.alpnProtocol === 'http/1.1') {
        // HTTPS callers must be registered things, registered certificates or the operator now; MQTT
        // checks at CONNECT.
        if (identity && (identity.kind !== 'thing' || ctx.isRegistered(identity.thingName))) {
          connIdentities.set(socket, identity);
        }
        httpsInternal.emit('connection', socket);
        return;
      }
      handleMqtt(socket, identity);
    },
  });
}

/** The optional anonymous plain-TCP listener. */
function createAnonymousServer(ctx: BrokerContext, handleMqtt: MqttHandler): net.Server {
  const { log } = ctx;
  const anonServer = net.createServer({ noDelay: true }, (socket) => {
    ctx.track(socket);
    socket.on('error', (err) => log.debug({ err: errorMessage(err) }, 'anonymous socket error'));
    // Operator-like and read-only: operators have no publish rights at all (acl.ts).
    handleMqtt(socket, { kind: 'operator', name: 'anonymous' });
  });
  anonServer.on('error', (err) => log.error({ err }, 'anonymous server error'));
  return anonServer;
}

/** Listens on every port; on failure closes what listens and aedes, and throws BrokerError. */
async function listenAll(
  ctx: BrokerContext,
  aedes: Aedes,
  { tlsServer, ws, wssListener, anonServer, servers }: BrokerListeners,
): Promise<Pick<RunningBroker, 'mqttPort' | 'wsPort' | 'wssPort' | 'anonymousPort'>> {
  const { options, log } = ctx;
  let mqttPort: number;
  let wsPort: number;
  let wssPort: number | undefined;
  let anonymousPort: number | undefined;
  try {
    mqttPort = await listen(tlsServer, options.mqttPort, options.host);
    wsPort = await listen(ws.server, options.wsPort, options.host);
    if (wssListener) wssPort = await listen(wssListener.server, options.wssPort ?? 0, options.host);
    if (anonServer) anonymousPort = await listen(anonServer, options.anonymousPort ?? 0, options.host);
  } catch (err) {
    await Promise.all(servers.filter((s) => s.listening).map(closeServer));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw new BrokerError(`cannot listen on ${options.host}: ${errorMessage(err)}`, { cause: err });
  }
  log.info({ host: options.host, mqttPort, wsPort, wssPort, anonymousPort }, 'broker listening');
  return {
    mqttPort,
    wsPort,
    ...(wssPort !== undefined ? { wssPort } : {}),
    ...(anonymousPort !== undefined ? { anonymousPort } : {}),
  };
}

/** Publish from the cloud side; resolves once handed to aedes. */
function publishFromCloud(aedes: Aedes, topic: string, payload: string | Buffer, qos: 0 | 1): Promise<void> {
  const packet: PublishPacket = {
    cmd: 'publish',
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload,
    qos,
    retain: false,
    dup: false,
  };
  return new Promise<void>((resolve, reject) => {
    aedes.publish(packet, (err) =>
      err ? reject(new BrokerError(errorMessage(err), { cause: err })) : resolve(),
    );
  });
}

/** Destroys every live socket whose identity is the thing; returns how many. */
function disconnectThing(ctx: BrokerContext, thingName: string): number {
  let n = 0;
  for (const s of ctx.sockets) {
    const identity = connIdentities.get(s);
    if (identity?.kind === 'thing' && identity.thingName === thingName) {
      s.destroy();
      n++;
    }
  }
  if (n > 0) ctx.log.info({ thing: thingName, connections: n }, 'thing disconnected');
  return n;
}

/** Stops accepting, closes aedes, destroys every socket left, then waits for the servers. */
async function closeBroker(ctx: BrokerContext, aedes: Aedes, listeners: BrokerListeners): Promise<void> {
  const serversClosed = listeners.servers.map(closeServer);
  listeners.ws.close();
  listeners.wssListener?.close();
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  for (const s of ctx.sockets) s.destroy();
  await Promise.all(serversClosed);
  ctx.log.info('broker closed');
}
