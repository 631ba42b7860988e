import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import mqtt, { type MqttClient } from 'mqtt';

/** MQTT 3.1.1 §2.2.3 variable-byte integer (the Remaining Length of a fixed header). */
export function varInt(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/**
 * An MQTT 3.1.1 client over mutual TLS with PEM strings; no reconnects, and a refused CONNECT rejects
 * (with the CONNACK return code as `code`) instead of waiting for a retry.
 */
export async function connectWithCert(
  port: number,
  pem: { ca: string; cert: string; key: string },
  clientId: string,
): Promise<MqttClient> {
  const client = await mqtt.connectAsync(
    `mqtts://127.0.0.1:${port}`,
    {
      ca: pem.ca,
      cert: pem.cert,
      key: pem.key,
      servername: 'localhost',
      clientId,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    },
    false,
  );
  client.on('error', () => {});
  return client;
}

/**
 * The HTTP status a WebSocket upgrade to `url` (ws:// or wss://) gets: 101 when accepted; with TLS the
 * server is verified against `ca`, and a TLS failure resolves to its error code.
 */
export function wsUpgradeStatus(url: string, ca?: string): Promise<number | string> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const secure = u.protocol === 'wss:';
    const options = {
      host: u.hostname,
      port: u.port,
      path: `${u.pathname}${u.search}`,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        'sec-websocket-protocol': 'mqtt',
      },
    };
    const req = secure
      ? https.request({ ...options, servername: 'localhost', ...(ca ? { ca } : {}) })
      : http.request(options);
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (err: NodeJS.ErrnoException) => (secure && err.code ? resolve(err.code) : reject(err)));
    req.end();
  });
}
