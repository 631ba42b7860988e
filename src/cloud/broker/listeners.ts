import { createHash } from 'node:crypto';
import http, { type IncomingMessage, STATUS_CODES } from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Clock } from '../../shared/clock.ts';
import { errorMessage } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { BrokerTls } from './types.ts';
import { verifyPresignedWebSocketRequest, type WsCredentials } from './ws-auth.ts';

/** Socket plumbing of the broker's listeners: the broker itself (aedes) never opens sockets. */

export const WS_PATH = '/mqtt';
/** AWS IoT caps an MQTT payload at 128 KB; leave room for the MQTT header in a WebSocket frame. */
const WS_MAX_PAYLOAD = 256 * 1024;

export function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The verified peer certificate's CN (undefined when the TLS layer did not authorize the peer). */
export function peerCommonName(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

/** AWS's certificateId: the hex SHA-256 of the certificate's DER encoding. */
export function peerCertificateId(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const raw = socket.getPeerCertificate()?.raw;
  return raw ? createHash('sha256').update(raw).digest('hex') : undefined;
}

/** Refuses a WebSocket upgrade with a plain HTTP status (AWS answers a bad signature with 403). */
function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export interface MtlsListenerOptions {
  tls: BrokerTls;
  alpnProtocols: string[];
  /** A connection whose client certificate the TLS layer verified against the CA. */
  onConnection(socket: TLSSocket): void;
  track(socket: Duplex): void;
  isClosed(): boolean;
  log: Logger;
}

/**
 * The mutual-TLS listener: a client certificate signed by the CA is required (no certificate or another
 * CA fails the handshake, which is only logged at debug level).
 */
export function createMtlsListener(opts: MtlsListenerOptions): tls.Server {
  const { log } = opts;
  const server = tls.createServer({
    ca: opts.tls.ca,
    cert: opts.tls.cert,
    key: opts.tls.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    ALPNProtocols: opts.alpnProtocols,
    // MQTT is request/response in small packets: with Nagle's algorithm a reply waits for the peer's
    // delayed ACK (40 ms on Linux), which doubled the time of an 83 MiB OTA on loopback.
    noDelay: true,
  });
  server.on('connection', (raw: net.Socket) => {
    opts.track(raw);
    raw.on('error', () => {}); // surfaced (and logged) through tlsClientError / the TLS socket
  });
  server.on('tlsClientError', (err, socket) => {
    log.debug({ err: errorMessage(err) }, 'TLS handshake failed');
    socket.destroy();
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    opts.track(socket);
    socket.on('error', (err) => log.debug({ err: errorMessage(err) }, 'mTLS socket error'));
    if (opts.isClosed()) {
      socket.destroy();
      return;
    }
    opts.onConnection(socket);
  });
  server.on('error', (err) => log.error({ err }, 'mTLS server error'));
  return server;
}

export interface WebSocketListenerOptions {
  /** With TLS: `wss://` (the broker's server certificate; no client certificate, SigV4 authenticates). */
  tls?: BrokerTls;
  credentials: WsCredentials;
  /** Judges the presigned URL's X-Amz-Date and X-Amz-Expires. */
  clock: Pick<Clock, 'now'>;
  /** Accepted, authenticated MQTT-over-WebSocket stream. */
  onStream(stream: Duplex, req: IncomingMessage): void;
  /** Every raw socket, so the broker can destroy it on close. */
  track(socket: Duplex): void;
  isClosed(): boolean;
  log: Logger;
}

/**
 * An HTTP(S) server that upgrades `/mqtt` to MQTT over WebSocket after verifying the SigV4 presigned URL
 * (service `iotdevicegateway`), as AWS IoT's WebSocket endpoint does. Anything else: 404, 403 or 426.
 */
export function createWebSocketListener(opts: WebSocketListenerOptions): {
  server: net.Server;
  close(): void;
} {
  const { log } = opts;
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: WS_MAX_PAYLOAD });
  wss.on('error', (err) => log.error({ err }, 'WebSocket server error'));
  const onRequest = (_req: IncomingMessage, res: http.ServerResponse) => {
    res
      .writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
      .end('WebSocket upgrade required\n');
  };
  const server = opts.tls
    ? https.createServer(
        { cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2', noDelay: true },
        onRequest,
      )
    : http.createServer({ noDelay: true }, onRequest);
  server.on('connection', (s: net.Socket) => {
    opts.track(s);
    s.on('error', () => {}); // surfaced through tlsClientError / clientError
  });
  server.on('tlsClientError', (err: Error, socket: Duplex) => {
    log.debug({ err: errorMessage(err) }, 'WSS TLS handshake failed');
    socket.destroy();
  });
  server.on('clientError', (_err, socket: Duplex) => socket.destroy());
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log.debug({ err: errorMessage(err) }, 'WebSocket upgrade socket error'));
    if (socket !== req.socket) opts.track(socket);
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== WS_PATH) {
      refuseUpgrade(socket, 404, `no WebSocket endpoint at ${path}; use ${WS_PATH}`);
      return;
    }
    verifyPresignedWebSocketRequest(req, opts.credentials, { clock: opts.clock }).then(
      (auth) => {
        if (opts.isClosed() || socket.destroyed) {
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
          opts.track(stream);
          opts.onStream(stream, req);
        });
      },
      (err) => {
        log.error({ err }, 'WebSocket authentication failed unexpectedly');
        socket.destroy();
      },
    );
  });
  server.on('error', (err) => log.error({ err }, 'WebSocket listener error'));
  return { server, close: () => wss.close() };
}
