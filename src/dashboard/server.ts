import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import type { IoTClient } from '@aws-sdk/client-iot';
import { type Clock, systemClock, unrefTimer } from '../shared/clock.ts';
import { OtaError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { DEFAULT_PROGRESS_PREFIX, JOB_ID_PATTERN } from '../shared/topics.ts';
import type { WsSigningCredentials } from '../shared/ws-url.ts';
import { type DashboardAssets, loadDashboardAssets } from './assets.ts';
import { type Feed, openFeed } from './feed.ts';
import { Hub, type StreamClient } from './hub.ts';

/**
 * The dashboard's HTTP server: the page (three static files, no CDN), and one server-sent-event stream
 * per open page (`/api/stream?job=<jobId>`) that carries the job list, the selected job and its rows,
 * then only what changes. The page never polls; EventSource reconnects by itself after a drop.
 *
 * The server only reads (there is no route that changes anything), listens on loopback by default, and
 * answers only requests whose Host header names it: a web page on another origin cannot reach it through
 * DNS rebinding, since the operator's credentials stand behind it.
 */

export interface DashboardOptions {
  iot: IoTClient;
  /** MQTT over WebSocket: `ws://…/mqtt` (local stack) or `wss://<ats-endpoint>/mqtt` (AWS IoT Core). */
  mqttUrl: string;
  region: string;
  credentials: () => Promise<WsSigningCredentials>;
  /** Trust anchor for `wss://` to the local stack. */
  ca?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  progressPrefix?: string;
  logger?: Logger;
  clock?: Clock;
  flushMs?: number;
  refreshMs?: number;
  assets?: DashboardAssets;
}

export interface RunningDashboard {
  readonly url: string;
  readonly port: number;
  /** Resolves once the MQTT feed is connected and subscribed the first time. */
  readonly feedReady: Promise<void>;
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<keyof DashboardAssets, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** SSE keep-alive comment, so proxies and phones do not drop an idle stream. */
const KEEPALIVE_MS = 15_000;

/**
 * The Host headers that name this server: its own address and localhost; for a wildcard address (the
 * operator chose to open it to the network, e.g. for a phone), every address of this machine.
 */
export function hostHeaders(host: string, port: number): Set<string> {
  const addresses = new Set([host, 'localhost']);
  if (host === '127.0.0.1' || host === '::1') addresses.add('127.0.0.1').add('::1');
  if (host === '0.0.0.0' || host === '::') {
    addresses.add('127.0.0.1').add('::1');
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? []) addresses.add(a.address);
    addresses.add(hostname());
  }
  return new Set([...addresses].map((a) => `${a.includes(':') ? `[${a}]` : a}:${port}`.toLowerCase()));
}

function serveAsset(req: IncomingMessage, res: ServerResponse, assets: DashboardAssets, name: string): void {
  if (!Object.hasOwn(CONTENT_TYPES, name)) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  const key = name as keyof DashboardAssets;
  const body = assets[key];
  res.writeHead(200, {
    'content-type': CONTENT_TYPES[key],
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-cache',
    ...SECURITY_HEADERS,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** `/api/stream?job=<jobId>`: one page's server-sent events, fed by the hub until the page goes. */
async function serveStream(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  hub: Hub,
  streams: Set<ServerResponse>,
  clock: Clock,
): Promise<void> {
  const job = url.searchParams.get('job') ?? undefined;
  if (job !== undefined && !JOB_ID_PATTERN.test(job)) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`job: must match ${JOB_ID_PATTERN.source}\n`);
    return;
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.socket?.setNoDelay(true);
  res.write('retry: 2000\n\n');
  streams.add(res);
  let open = true;
  const client: StreamClient = {
    // JSON.stringify never emits a raw newline, so one `data:` line always holds the whole event.
    write: (event, data) => open && res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
    problem: (message) => {
      if (open) res.write(`event: problem\ndata: ${JSON.stringify({ message })}\n\n`);
    },
  };
  const keepalive = unrefTimer(clock.setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS));
  let unsubscribe: (() => void) | undefined;
  req.on('close', () => {
    if (!open) return;
    open = false;
    clock.clear(keepalive);
    streams.delete(res);
    unsubscribe?.();
  });
  res.on('drain', () => hub.resync(client));
  unsubscribe = await hub.subscribe(client, job);
  if (!open) unsubscribe();
}

function listen(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new OtaError(
              'OTA_PORT_IN_USE',
              `the dashboard's port ${host}:${port} is in use: choose another (--dashboard-port with ota dev, --port with ota dashboard; 0 = free)`,
              { cause: err },
            )
          : err,
      );
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startDashboard(o: DashboardOptions): Promise<RunningDashboard> {
  const log = o.logger ?? silentLogger;
  const assets = o.assets ?? (await loadDashboardAssets());
  const prefix = o.progressPrefix ?? DEFAULT_PROGRESS_PREFIX;
  const hub = new Hub({
    iot: o.iot,
    progressPrefix: prefix,
    logger: log,
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.flushMs !== undefined ? { flushMs: o.flushMs } : {}),
    ...(o.refreshMs !== undefined ? { refreshMs: o.refreshMs } : {}),
  });
  const sockets = new Set<Socket>();
  const streams = new Set<ServerResponse>();
  const host = o.host ?? '127.0.0.1';
  let allowedHosts = new Set<string>();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (!allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end('unknown Host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    const name = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
    if (name === 'api/stream') return serveStream(req, res, url, hub, streams, o.clock ?? systemClock);
    serveAsset(req, res, assets, name);
  };
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err }, 'dashboard request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  const port = await listen(server, host, o.port ?? 0);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  allowedHosts = hostHeaders(host, port);
  const feed: Feed = openFeed({
    url: o.mqttUrl,
    region: o.region,
    credentials: o.credentials,
    ...(o.ca ? { ca: o.ca } : {}),
    topics: [`${prefix}/+`, '$aws/things/+/jobs/notify'],
    onMessage: (topic, payload) => hub.onMessage(topic, payload),
    onState: (state, detail) => hub.setFeedState(state, detail),
    logger: log,
  });

  return {
    url: `http://${urlHost}:${port}/`,
    port,
    feedReady: feed.ready,
    close: async () => {
      await feed.close();
      await hub.close();
      for (const res of streams) res.end();
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
