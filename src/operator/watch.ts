import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { type Clock, systemClock } from '../shared/clock.ts';
import type { Endpoints } from '../shared/endpoints.ts';
import { OtaError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { DEFAULT_PROGRESS_PREFIX } from '../shared/topics.ts';

/**
 * The operator's live view: subscribes (as the `operator` identity, or any certificate AWS IoT accepts)
 * to the devices' progress topics and turns each message into a per-device state. It returns data through
 * callbacks; the CLI draws the bars.
 */
export interface WatchConnection {
  host: string;
  port: number;
  ca: string;
  cert: string;
  key: string;
  clientId?: string;
}

export function operatorConnection(endpoints: Endpoints): WatchConnection {
  return {
    host: endpoints.mqtt.host,
    port: endpoints.mqtt.port,
    ca: readFileSync(endpoints.rootCA, 'utf8'),
    cert: readFileSync(endpoints.operator.cert, 'utf8'),
    key: readFileSync(endpoints.operator.key, 'utf8'),
  };
}

/** A progress message as the original JobProgress.py shapes it (keys kept verbatim), plus our optional extras. */
export interface ProgressMessage {
  camera_id?: string;
  OTA_start_time?: string;
  'Download time'?: string;
  'Firmware version'?: string;
  'Firmware filename'?: string;
  Progress?: string;
  'Total size'?: number;
  Downloading?: number;
  jobId?: string;
  version?: string;
  state?: string;
  bytesPerSecond?: number;
  etaSeconds?: number;
}

export interface DeviceProgress {
  device: string;
  topic: string;
  percent: number;
  bytes: number;
  total: number;
  bytesPerSecond: number;
  etaSeconds?: number;
  state: string;
  firmware?: string;
  /** The job the message is about (the agent's `jobId` extra field), when it says. */
  jobId?: string;
  messages: number;
  firstSeenAt: number;
  lastSeenAt: number;
}

export interface WatchEvents {
  onMessage?: (topic: string, raw: Buffer, parsed: ProgressMessage | undefined) => void;
  onDevice?: (device: DeviceProgress) => void;
  onConnect?: () => void;
  onError?: (err: Error) => void;
}

export interface WatchHandle {
  readonly devices: ReadonlyMap<string, DeviceProgress>;
  ready: Promise<void>;
  close(): Promise<void>;
}

const FINAL_STATES = new Set(['SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED', 'TIMED_OUT', 'REMOVED']);
export const isFinalState = (state: string): boolean => FINAL_STATES.has(state);

export function parseProgress(payload: Buffer): ProgressMessage | undefined {
  try {
    const v = JSON.parse(payload.toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as ProgressMessage) : undefined;
  } catch {
    return undefined;
  }
}

/** The first connection failed: the cause (ECONNREFUSED, a TLS alert, a timeout) is kept for the caller. */
function connectError(conn: WatchConnection, cause: Error | undefined): OtaError {
  const why = cause?.message ?? 'the connection closed before the broker accepted it (timeout or refused)';
  return new OtaError('OTA_CONNECT', `cannot connect to mqtts://${conn.host}:${conn.port}: ${why}`, {
    cause,
  });
}

export function watchProgress(
  conn: WatchConnection,
  opts: {
    topic?: string;
    logger?: Logger;
    connectTimeoutMs?: number;
    clock?: Pick<Clock, 'now'>;
  } & WatchEvents = {},
): WatchHandle {
  const topic = opts.topic ?? `${DEFAULT_PROGRESS_PREFIX}/+`;
  const logger = opts.logger ?? silentLogger;
  const devices = new Map<string, DeviceProgress>();
  const client: MqttClient = mqtt.connect({
    protocol: 'mqtts',
    host: conn.host,
    port: conn.port,
    ca: conn.ca,
    cert: conn.cert,
    key: conn.key,
    // MQTT 3.1.1: AWS IoT and aedes both speak it.
    protocolVersion: 4,
    clientId: conn.clientId ?? `ota-watch-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 2000,
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
  });
  const ready = new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (err: Error) => {
      lastError = err;
    };
    // Before the first CONNACK, a closed connection is a failure to report, not a reason to retry
    // forever: a watcher started against a stack that is not running must say so and let its caller exit.
    const onClose = () => {
      client.off('error', onError);
      reject(connectError(conn, lastError));
    };
    client.on('error', onError);
    client.once('close', onClose);
    client.once('connect', () => {
      client.off('error', onError);
      client.off('close', onClose);
      client.subscribe(topic, { qos: 1 }, (err, granted) => {
        if (err) return reject(err);
        if (granted?.some((g) => g.qos === 128)) {
          return reject(
            new OtaError('OTA_SUBSCRIBE_DENIED', `subscription to ${topic} was refused by the broker`),
          );
        }
        opts.onConnect?.();
        resolve();
      });
    });
  });
  // A watcher that never got going holds no connection (and no timer) open.
  ready.catch(() => client.end(true));
  client.on('error', (err) => {
    logger.warn({ err }, 'watch connection error');
    opts.onError?.(err);
  });
  client.on('message', (t, payload) => {
    const msg = parseProgress(payload);
    opts.onMessage?.(t, payload, msg);
    if (!msg) return;
    const device = msg.camera_id ?? t.split('/').pop() ?? t;
    const now = (opts.clock ?? systemClock).now();
    const prev = devices.get(device);
    const total = typeof msg['Total size'] === 'number' ? msg['Total size'] : (prev?.total ?? 0);
    const bytes = typeof msg.Downloading === 'number' ? msg.Downloading : (prev?.bytes ?? 0);
    const percent = Number.parseFloat(msg.Progress ?? '') || (total > 0 ? (bytes / total) * 100 : 0);
    const startedAt = prev?.firstSeenAt ?? now;
    const elapsed = (now - startedAt) / 1000;
    const bytesPerSecond = msg.bytesPerSecond ?? (elapsed > 0 ? bytes / elapsed : 0);
    const state = msg.state ?? (percent >= 100 ? 'DOWNLOADED' : 'DOWNLOADING');
    const next: DeviceProgress = {
      device,
      topic: t,
      percent,
      bytes,
      total,
      bytesPerSecond,
      etaSeconds: msg.etaSeconds ?? (bytesPerSecond > 0 ? (total - bytes) / bytesPerSecond : undefined),
      state,
      firmware: msg['Firmware version'],
      jobId: typeof msg.jobId === 'string' ? msg.jobId : prev?.jobId,
      messages: (prev?.messages ?? 0) + 1,
      firstSeenAt: startedAt,
      lastSeenAt: now,
    };
    devices.set(device, next);
    opts.onDevice?.(next);
  });
  return {
    devices,
    ready,
    close: () => new Promise<void>((resolve) => client.end(false, {}, () => resolve())),
  };
}
