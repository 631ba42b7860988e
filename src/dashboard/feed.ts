import mqtt, { type MqttClient } from 'mqtt';
import { backoffDelay } from '../device/download.ts';
import { OtaError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { presignWebSocketUrlSync, type WsSigningCredentials } from '../shared/ws-url.ts';

/**
 * The dashboard server's live feed: one MQTT 3.1.1 connection over WebSocket to AWS IoT Core (or the
 * local stack), authenticated the way AWS IoT authenticates WebSocket clients — a SigV4-presigned URL
 * (developer guide, "MQTT over the WebSocket protocol"). The URL is signed afresh for every connection
 * attempt through MQTT.js's synchronous `transformWsUrl`, with credentials refreshed (asynchronously)
 * before each attempt, so temporary credentials that expire never wedge the feed.
 *
 * MQTT.js would reconnect on a fixed timer; here `reconnectPeriod` is 0 and the feed reconnects after an
 * exponential delay with full jitter, reset once connected.
 */

export type FeedState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

const TRANSITIONS: Record<FeedState, readonly FeedState[]> = {
  connecting: ['connected', 'reconnecting', 'closed'],
  connected: ['reconnecting', 'closed'],
  reconnecting: ['connecting', 'closed'],
  closed: [],
};

export interface FeedOptions {
  /** `ws://…/mqtt` (local stack) or `wss://<ats-endpoint>/mqtt` (AWS IoT Core). */
  url: string;
  region: string;
  credentials: () => Promise<WsSigningCredentials>;
  /** Extra trust anchor for `wss://` to the local stack (its CA). */
  ca?: string;
  /** Topic filters; AWS IoT takes at most 8 per SUBSCRIBE (reference section 3). */
  topics: string[];
  onMessage: (topic: string, payload: Buffer) => void;
  onState?: (state: FeedState, detail?: string) => void;
  clientId?: string;
  logger?: Logger;
  random?: () => number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
}

export interface Feed {
  /** Resolves once connected and subscribed the first time; rejects if that first attempt fails. */
  readonly ready: Promise<void>;
  readonly state: FeedState;
  close(): Promise<void>;
}

export function openFeed(o: FeedOptions): Feed {
  const log = o.logger ?? silentLogger;
  const random = o.random ?? Math.random;
  let state: FeedState = 'connecting';
  let creds: WsSigningCredentials | undefined;
  let client: MqttClient | undefined;
  let attempt = 0;
  let timer: NodeJS.Timeout | undefined;
  let everConnected = false;
  let settleReady: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    settleReady = { resolve, reject };
  });
  ready.catch(() => {}); // a caller that does not wait must not see an unhandled rejection

  const transition = (next: FeedState, detail?: string) => {
    if (state === next) return;
    if (!TRANSITIONS[state].includes(next)) return;
    state = next;
    o.onState?.(next, detail);
  };

  const failFirst = (err: Error) => {
    if (everConnected || !settleReady) return;
    settleReady.reject(err);
    settleReady = undefined;
  };

  const subscribe = async (c: MqttClient) => {
    const granted = await c.subscribeAsync(o.topics, { qos: 0 });
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length > 0) {
      throw new OtaError(
        'OTA_SUBSCRIBE_DENIED',
        `the broker refused the subscription to ${refused.join(', ')}`,
      );
    }
  };

  const scheduleReconnect = (detail: string) => {
    if (state === 'closed' || timer) return;
    transition('reconnecting', detail);
    const delay = backoffDelay(attempt++, o.reconnectBaseMs ?? 1000, o.reconnectMaxMs ?? 30_000, random);
    log.info({ delay, attempt, detail }, 'dashboard feed closed; reconnecting');
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, delay);
  };

  const connect = async () => {
    if (state === 'closed') return;
    transition('connecting');
    try {
      creds = await o.credentials();
    } catch (err) {
      const e = new OtaError(
        'OTA_CREDENTIALS',
        `no credentials for the MQTT feed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
      failFirst(e);
      scheduleReconnect(e.message);
      return;
    }
    // `state` may have changed while the credentials were read.
    if ((state as FeedState) === 'closed') return;
    if (client) {
      client.reconnect();
      return;
    }
    const c = mqtt.connect(o.url, {
      protocolVersion: 4,
      clientId: o.clientId ?? `ota-dashboard-${random().toString(16).slice(2, 10)}`,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0,
      connectTimeout: 15_000,
      resubscribe: false,
      ...(o.ca ? { ca: o.ca } : {}),
      transformWsUrl: (url) => presignWebSocketUrlSync(url, creds as WsSigningCredentials, o.region),
    });
    client = c;
    c.on('connect', () => {
      subscribe(c).then(
        () => {
          attempt = 0;
          everConnected = true;
          transition('connected');
          settleReady?.resolve();
          settleReady = undefined;
        },
        (err: Error) => {
          log.error({ err: err.message }, 'dashboard feed: subscribe failed');
          failFirst(err);
          c.end(true);
        },
      );
    });
    c.on('message', (topic, payload) => o.onMessage(topic, payload));
    c.on('error', (err) => {
      // Before the first connection the caller hears of it through `ready`; later, only the log does.
      if (everConnected) log.warn({ err: err.message }, 'dashboard feed error');
      else log.debug({ err: err.message }, 'dashboard feed error');
      failFirst(err);
    });
    c.on('close', () => scheduleReconnect('connection closed'));
  };

  void connect();
  return {
    ready,
    get state() {
      return state;
    },
    close: async () => {
      transition('closed');
      if (timer) clearTimeout(timer);
      timer = undefined;
      failFirst(new OtaError('OTA_ABORTED', 'feed closed'));
      if (client) await client.endAsync(true).catch(() => {});
    },
  };
}
