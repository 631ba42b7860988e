import type { EventEmitter } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { errorMessage } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
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
 * - QoS 2: AWS IoT supports QoS 0 and 1 only (reference section 3). A QoS 2 PUBLISH is refused like an
 *   unauthorized one; a QoS 2 SUBSCRIBE is granted QoS 1 (AWS sends no SUBACK at all, which would leave a
 *   client hanging; granting the maximum QoS we support is the MQTT-conformant downgrade, §3.9.3).
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
/** AWS IoT allows client ids up to 128 bytes (reference section 3); aedes defaults to 23. */
const MAX_CLIENT_ID_LENGTH = 128;

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const log = (options.logger ?? silentLogger).child({ component: 'broker' });
  const operatorName = options.operatorName ?? 'operator';
  const services: TopicService[] = options.services ?? [];
  const counters = { publishesIn: 0, publishesOut: 0, oversizedPackets: 0 };
  /** Every socket we accepted, destroyed on close so no handle outlives the broker. */
  const sockets = new Set<Duplex>();
  let closed = false;

  const track = (s: Duplex) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };

  const identityOf = (client: Client | null): ClientIdentity | undefined =>
    client ? connIdentities.get(client.conn) : undefined;

  const isRegistered = (thingName: string): boolean => {
    try {
      return options.isRegisteredThing(thingName);
    } catch (err) {
      log.warn({ err, thingName }, 'isRegisteredThing threw; treating the thing as unregistered');
      return false;
    }
  };

  const authorizer = createAuthorizer({
    acl: { progressPrefix: options.progressPrefix ?? DEFAULT_PROGRESS_PREFIX },
    clientIds: options.clientIds ?? 'thing-name',
    isRegistered,
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
      identityOf,
      setIdentity: (client, identity) => connIdentities.set(client.conn, identity),
      claimant,
      counters,
      log,
    }),
  });

  aedes.on('clientError', (client, err) =>
    log.debug({ clientId: client.id, err: errorMessage(err) }, 'client error'),
  );
  aedes.on('connectionError', (_client, err) => log.debug({ err: errorMessage(err) }, 'connection error'));
  // aedes emits 'error' for persistence failures; an unhandled 'error' event would crash the process.
  (aedes as EventEmitter).on('error', (err: unknown) => log.error({ err }, 'aedes error'));

  /** Hands a connection to aedes with its identity, behind the packet-size guard (packet-limit.ts). */
  const handleMqtt = (stream: Duplex, identity: ClientIdentity | undefined, req?: IncomingMessage) => {
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

  // --- HTTPS on the mTLS port (ALPN http/1.1) ------------------------------------------------------------
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

  /** Identity from the verified certificate: a registered certificate by id, else the CN. */
  const certificateIdentity = (socket: TLSSocket): ClientIdentity | undefined => {
    if (options.certificates) {
      const certificateId = peerCertificateId(socket);
      if (certificateId && options.certificates.certificateStatus(certificateId) !== undefined) {
        return { kind: 'certificate', certificateId };
      }
    }
    const cn = peerCommonName(socket);
    if (cn === operatorName) return { kind: 'operator', name: cn };
    return cn ? { kind: 'thing', thingName: cn } : undefined;
  };

  // --- mTLS listener: MQTT, and HTTPS by ALPN http/1.1 ----------------------------------------------------
  const tlsServer = createMtlsListener({
    tls: options.tls,
    alpnProtocols: MTLS_ALPN_PROTOCOLS,
    track,
    isClosed: () => closed,
    log,
    onConnection(socket) {
      let identity: ClientIdentity | undefined;
      try {
        identity = certificateIdentity(socket);
      } catch (err) {
        log.error({ err }, 'certificate lookup threw; connection has no identity');
      }
      if (socket.alpnProtocol === 'http/1.1') {
        // HTTPS callers must be registered things, registered certificates or the operator now; MQTT
        // checks at CONNECT.
        if (identity && (identity.kind !== 'thing' || isRegistered(identity.thingName))) {
          connIdentities.set(socket, identity);
        }
        httpsInternal.emit('connection', socket);
        return;
      }
      handleMqtt(socket, identity);
    },
  });

  // --- WebSocket listeners (SigV4-presigned URL): plain and TLS -----------------------------------------
  const wsListenerOptions = {
    credentials: options.wsCredentials,
    onStream: (stream: Duplex, req: IncomingMessage) =>
      handleMqtt(stream, { kind: 'operator', name: operatorName }, req),
    track,
    isClosed: () => closed,
    log,
  };
  const ws = createWebSocketListener(wsListenerOptions);
  const wssListener =
    options.wssPort !== undefined
      ? createWebSocketListener({ ...wsListenerOptions, tls: options.tls })
      : undefined;

  // --- optional anonymous plain-TCP listener --------------------------------------------------------------
  let anonServer: net.Server | undefined;
  if (options.anonymousPort !== undefined) {
    anonServer = net.createServer({ noDelay: true }, (socket) => {
      track(socket);
      socket.on('error', (err) => log.debug({ err: errorMessage(err) }, 'anonymous socket error'));
      // Operator-like and read-only: operators have no publish rights at all (acl.ts).
      handleMqtt(socket, { kind: 'operator', name: 'anonymous' });
    });
    anonServer.on('error', (err) => log.error({ err }, 'anonymous server error'));
  }

  const servers: net.Server[] = [
    tlsServer,
    ws.server,
    ...(wssListener ? [wssListener.server] : []),
    ...(anonServer ? [anonServer] : []),
  ];
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

  let closing: Promise<void> | undefined;
  const broker: RunningBroker = {
    mqttPort,
    wsPort,
    ...(wssPort !== undefined ? { wssPort } : {}),
    ...(anonymousPort !== undefined ? { anonymousPort } : {}),

    publish(topic, payload, qos = 1) {
      if (closed) return Promise.reject(new BrokerError('broker is closed'));
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
    },

    disconnectThing(thingName) {
      let n = 0;
      for (const s of sockets) {
        const identity = connIdentities.get(s);
        if (identity?.kind === 'thing' && identity.thingName === thingName) {
          s.destroy();
          n++;
        }
      }
      if (n > 0) log.info({ thing: thingName, connections: n }, 'thing disconnected');
      return n;
    },

    stats() {
      return { connectedClients: aedes.connectedClients ?? 0, ...counters };
    },

    close() {
      closing ??= (async () => {
        closed = true;
        const serversClosed = servers.map(closeServer);
        ws.close();
        wssListener?.close();
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const s of sockets) s.destroy();
        await Promise.all(serversClosed);
        log.info('broker closed');
      })();
      return closing;
    },
  };
  return broker;
}
