import type { EventEmitter } from 'node:events';
import http, { type IncomingMessage, STATUS_CODES } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { errorMessage, OtaError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import { DEFAULT_PROGRESS_PREFIX } from '../../shared/topics.ts';
import { canPublish, canSubscribe } from './acl.ts';
import type { BrokerOptions, ClientIdentity, RunningBroker, TopicService } from './types.ts';
import { verifyPresignedWebSocketRequest } from './ws-auth.ts';

/**
 * The local stand-in for AWS IoT Core's message broker: aedes (MQTT 3.1.1) behind listeners we own.
 *
 * - mqtts (mutual TLS): the client certificate's CN is the identity, as with AWS IoT X.509 authentication.
 *   CN = operator name → operator; any other CN must be a registered thing or CONNECT gets return code 5
 *   (MQTT 3.1.1 §3.2.2.3 "not authorized"). The same TLS port also serves HTTPS chosen by ALPN `http/1.1`,
 *   the way AWS multiplexes MQTT and HTTPS on 443 (the credentials provider lives there).
 * - WebSocket (`/mqtt`): authenticated by a SigV4 presigned URL (service `iotdevicegateway`), like AWS
 *   IoT's WebSocket endpoint; a verified client is the operator.
 * - optional plain-TCP anonymous listener: read-only operator rights; only when explicitly configured.
 *
 * Authorization (acl.ts) follows an AWS IoT policy using `${iot:Connection.Thing.ThingName}`. What a denial
 * looks like on the wire:
 * - SUBSCRIBE: the filter's SUBACK return code is 0x80 (MQTT 3.1.1 §3.9.3); the connection stays up.
 * - PUBLISH: the connection is closed (that is how aedes refuses a publish, and what AWS IoT does on a
 *   policy violation); the message reaches nobody and a QoS 1 publish gets no PUBACK.
 * - QoS 2: AWS IoT supports QoS 0 and 1 only (reference section 3). A QoS 2 PUBLISH is refused like an
 *   unauthorized one; a QoS 2 SUBSCRIBE is granted QoS 1 (AWS sends no SUBACK at all, which would leave a
 *   client hanging; granting the maximum QoS we support is the MQTT-conformant downgrade, §3.9.3).
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

/** The identity the broker gave an HTTPS request on the mTLS port (undefined: unknown or unregistered CN). */
export function getRequestIdentity(req: IncomingMessage): ClientIdentity | undefined {
  return connIdentities.get(req.socket);
}

/** ALPN protocols of the mTLS port: AWS IoT's MQTT ALPN id, plain `mqtt`, and HTTPS. */
export const MTLS_ALPN_PROTOCOLS = ['x-amzn-mqtt-ca', 'mqtt', 'http/1.1'];
/** AWS IoT Core: MQTT payload ≤ 128 KB, topic ≤ 256 bytes ("AWS IoT Core message broker limits"). */
export const MAX_PAYLOAD_BYTES = 128 * 1024;
export const MAX_TOPIC_BYTES = 256;

export const WS_PATH = '/mqtt';
/** AWS IoT allows client ids up to 128 bytes (reference section 3); aedes defaults to 23. */
const MAX_CLIENT_ID_LENGTH = 128;
/** AWS IoT caps an MQTT payload at 128 KB; leave room for the MQTT header in a WebSocket frame. */
const WS_MAX_PAYLOAD = 256 * 1024;

export class BrokerError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_BROKER', message, options);
  }
}

function peerCommonName(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

function notAuthorized(message: string): AuthenticateError {
  // 5 = "Connection Refused, not authorized" (MQTT 3.1.1 §3.2.2.3).
  return Object.assign(new Error(message), { returnCode: 5 }) as AuthenticateError;
}

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Refuses a WebSocket upgrade with a plain HTTP status (AWS answers a bad signature with 403). */
function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const log = (options.logger ?? silentLogger).child({ component: 'broker' });
  const aclOpts = { progressPrefix: options.progressPrefix ?? DEFAULT_PROGRESS_PREFIX };
  const operatorName = options.operatorName ?? 'operator';
  const services: TopicService[] = options.services ?? [];
  const counters = { publishesIn: 0, publishesOut: 0 };
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

    authenticate(client, _username, _password, done) {
      const identity = identityOf(client);
      if (!identity) return done(notAuthorized('no verified identity on this connection'), false);
      if (identity.kind === 'thing' && !isRegistered(identity.thingName)) {
        log.info({ thing: identity.thingName, clientId: client.id }, 'CONNECT refused: unregistered thing');
        return done(notAuthorized(`thing ${identity.thingName} is not registered`), false);
      }
      done(null, true);
    },

    authorizePublish(client, packet, done) {
      const identity = identityOf(client);
      if (!identity) return done(new BrokerError('publish without identity'));
      if (packet.qos === 2)
        return done(new BrokerError('QoS 2 is not supported (AWS IoT: QoS 0 and 1 only)'));
      // AWS IoT Core message broker limits (reference section 3): payload ≤ 128 KB, topic ≤ 256 bytes.
      const payloadBytes =
        typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
      if (payloadBytes > MAX_PAYLOAD_BYTES || Buffer.byteLength(packet.topic) > MAX_TOPIC_BYTES) {
        log.info(
          { identity, topic: packet.topic.slice(0, 300), payloadBytes },
          'PUBLISH over AWS IoT limits; closing connection',
        );
        return done(
          new BrokerError(
            `publish over AWS IoT limits (payload ${payloadBytes} > ${MAX_PAYLOAD_BYTES} bytes or topic > ${MAX_TOPIC_BYTES} bytes)`,
          ),
        );
      }
      if (!canPublish(identity, packet.topic, aclOpts)) {
        log.info({ identity, topic: packet.topic }, 'PUBLISH refused by policy; closing connection');
        return done(new BrokerError(`not authorized to publish to ${packet.topic}`));
      }
      counters.publishesIn++;
      if (claimant(packet.topic)) packet.retain = false;
      done(null);
    },

    authorizeSubscribe(client, sub: Subscription, done) {
      const identity = identityOf(client);
      if (!identity || !canSubscribe(identity, sub.topic, aclOpts)) {
        log.info({ identity, filter: sub.topic }, 'SUBSCRIBE denied by policy (SUBACK 0x80)');
        return done(null, null);
      }
      if (sub.qos > 1) sub.qos = 1;
      done(null, sub);
    },

    authorizeForward(_client, packet: AedesPublishPacket) {
      // Publishes to a service's topics (Jobs requests) are for the service only.
      if (claimant(packet.topic)) return null;
      counters.publishesOut++;
      return packet;
    },

    published(packet, client, done) {
      const identity = identityOf(client);
      if (identity) {
        const service = claimant(packet.topic);
        if (service) {
          try {
            service.onPublish(identity, packet.topic, Buffer.from(packet.payload));
          } catch (err) {
            log.error({ err, topic: packet.topic }, 'TopicService.onPublish threw');
          }
        }
      }
      done(null);
    },
  });

  aedes.on('clientError', (client, err) =>
    log.debug({ clientId: client.id, err: errorMessage(err) }, 'client error'),
  );
  aedes.on('connectionError', (_client, err) => log.debug({ err: errorMessage(err) }, 'connection error'));
  // aedes emits 'error' for persistence failures; an unhandled 'error' event would crash the process.
  (aedes as EventEmitter).on('error', (err: unknown) => log.error({ err }, 'aedes error'));

  /** Hands a connection to aedes with its identity; QoS 2 SUBSCRIBE requests are downgraded to QoS 1. */
  const handleMqtt = (stream: Duplex, identity: ClientIdentity | undefined, req?: IncomingMessage) => {
    if (identity) connIdentities.set(stream, identity);
    const client = aedes.handle(stream, req);
    // The SUBACK's granted QoS is taken from the request before authorizeSubscribe runs, so the request
    // itself is capped as it leaves the parser. `_parser` is aedes-internal; without it, delivery is still
    // capped at QoS 1 (no QoS 2 message ever enters the broker) and only the SUBACK would say 2.
    const parser = (client as unknown as { _parser?: EventEmitter })._parser;
    parser?.prependListener('packet', (packet: { cmd?: string; subscriptions?: { qos: number }[] }) => {
      if (packet.cmd === 'subscribe' && packet.subscriptions) {
        for (const s of packet.subscriptions) if (s.qos > 1) s.qos = 1;
      }
    });
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

  // --- mTLS listener -------------------------------------------------------------------------------------
  const tlsServer = tls.createServer({
    ca: options.tls.ca,
    cert: options.tls.cert,
    key: options.tls.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    ALPNProtocols: MTLS_ALPN_PROTOCOLS,
    // MQTT is request/response in small packets: with Nagle's algorithm a reply waits for the peer's
    // delayed ACK (40 ms on Linux), which doubled the time of an 83 MiB OTA on loopback.
    noDelay: true,
  });
  tlsServer.on('connection', (raw: net.Socket) => {
    track(raw);
    raw.on('error', () => {}); // surfaced (and logged) through tlsClientError / the TLS socket
  });
  tlsServer.on('tlsClientError', (err, socket) => {
    log.debug({ err: errorMessage(err) }, 'TLS handshake failed');
    socket.destroy();
  });
  tlsServer.on('secureConnection', (socket: TLSSocket) => {
    track(socket);
    socket.on('error', (err) => log.debug({ err: errorMessage(err) }, 'mTLS socket error'));
    if (closed) {
      socket.destroy();
      return;
    }
    const cn = peerCommonName(socket);
    let identity: ClientIdentity | undefined;
    if (cn === operatorName) identity = { kind: 'operator', name: cn };
    else if (cn) identity = { kind: 'thing', thingName: cn };
    if (socket.alpnProtocol === 'http/1.1') {
      // HTTPS callers must be registered things or the operator now; MQTT checks at CONNECT.
      if (identity && (identity.kind === 'operator' || isRegistered(identity.thingName))) {
        connIdentities.set(socket, identity);
      }
      httpsInternal.emit('connection', socket);
      return;
    }
    handleMqtt(socket, identity);
  });
  tlsServer.on('error', (err) => log.error({ err }, 'mTLS server error'));

  // --- WebSocket listener (SigV4-presigned URL) -----------------------------------------------------------
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: WS_MAX_PAYLOAD });
  wss.on('error', (err) => log.error({ err }, 'WebSocket server error'));
  const wsHttp = http.createServer({ noDelay: true }, (_req, res) => {
    res
      .writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
      .end('WebSocket upgrade required\n');
  });
  wsHttp.on('connection', (s: net.Socket) => track(s));
  wsHttp.on('clientError', (_err, socket) => socket.destroy());
  wsHttp.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log.debug({ err: errorMessage(err) }, 'WebSocket upgrade socket error'));
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== WS_PATH) {
      refuseUpgrade(socket, 404, `no WebSocket endpoint at ${path}; use ${WS_PATH}`);
      return;
    }
    verifyPresignedWebSocketRequest(req, options.wsCredentials).then(
      (auth) => {
        if (closed || socket.destroyed) {
          socket.destroy();
          return;
        }
        if (!auth.ok) {
          log.info({ reason: auth.reason }, 'WebSocket upgrade refused (403)');
          refuseUpgrade(socket, 403, `Forbidden: ${auth.reason}`);
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          ws.on('error', (err) => log.debug({ err: errorMessage(err) }, 'WebSocket error'));
          const stream = createWebSocketStream(ws);
          stream.on('error', (err) => log.debug({ err: errorMessage(err) }, 'WebSocket stream error'));
          track(stream);
          handleMqtt(stream, { kind: 'operator', name: operatorName }, req);
        });
      },
      (err) => {
        log.error({ err }, 'WebSocket authentication failed unexpectedly');
        socket.destroy();
      },
    );
  });

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

  const servers: net.Server[] = [tlsServer, wsHttp, ...(anonServer ? [anonServer] : [])];
  let mqttPort: number;
  let wsPort: number;
  let anonymousPort: number | undefined;
  try {
    mqttPort = await listen(tlsServer, options.mqttPort, options.host);
    wsPort = await listen(wsHttp, options.wsPort, options.host);
    if (anonServer) anonymousPort = await listen(anonServer, options.anonymousPort ?? 0, options.host);
  } catch (err) {
    await Promise.all(servers.filter((s) => s.listening).map(closeServer));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw new BrokerError(`cannot listen on ${options.host}: ${errorMessage(err)}`, { cause: err });
  }
  log.info({ host: options.host, mqttPort, wsPort, anonymousPort }, 'broker listening');

  let closing: Promise<void> | undefined;
  const broker: RunningBroker = {
    mqttPort,
    wsPort,
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

    stats() {
      return { connectedClients: aedes.connectedClients ?? 0, ...counters };
    },

    close() {
      closing ??= (async () => {
        closed = true;
        const serversClosed = servers.map(closeServer);
        wss.close();
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
