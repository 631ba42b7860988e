import mqtt, { type MqttClient } from 'mqtt';
import { backoffDelay, type Clock, systemClock, type TimerHandle } from '../shared/clock.ts';
import { errorMessage, OtaError } from '../shared/errors.ts';
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
  /** Topic filters; AWS IoT takes at most 8 per SUBSCRIBE (docs/protocol.md, Message broker). */
  topics: string[];
  onMessage: (topic: string, payload: Buffer) => void;
  onState?: (state: FeedState, detail?: string) => void;
  clientId?: string;
  logger?: Logger;
  random?: () => number;
  /** Timers of the reconnect backoff; default the system's. */
  clock?: Clock;
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
  const feed = new FeedConnection(o);
  feed.start();
  return feed;
}

/** One attempt = one fresh MQTT.js client (reconnectPeriod 0), so no client is ever reused after `end`. */
class FeedConnection implements Feed {
  readonly ready: Promise<void>;
  private _state: FeedState = 'connecting';
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly clientId: string;
  private creds: WsSigningCredentials | undefined;
  private client: MqttClient | undefined;
  private attempt = 0;
  private timer: TimerHandle | undefined;
  private readonly clock: Clock;
  private everConnected = false;
  private settleReady: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(private readonly o: FeedOptions) {
    this.log = o.logger ?? silentLogger;
    this.random = o.random ?? Math.random;
    this.clock = o.clock ?? systemClock;
    this.clientId = o.clientId ?? `ota-dashboard-${this.random().toString(16).slice(2, 10)}`;
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    this.ready.catch(() => {}); // a caller that does not wait must not see an unhandled rejection
  }

  get state(): FeedState {
    return this._state;
  }

  start(): void {
    void this.connect();
  }

  async close(): Promise<void> {
    this.transition('closed');
    this.clock.clear(this.timer);
    this.timer = undefined;
    this.failFirst(new OtaError('OTA_ABORTED', 'feed closed'));
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync(true).catch(() => {});
  }

  private transition(next: FeedState, detail?: string): void {
    if (this._state === next || !TRANSITIONS[this._state].includes(next)) return;
    this._state = next;
    this.o.onState?.(next, detail);
  }

  private failFirst(err: Error): void {
    if (this.everConnected || !this.settleReady) return;
    this.settleReady.reject(err);
    this.settleReady = undefined;
  }

  private scheduleReconnect(detail: string): void {
    if (this._state === 'closed' || this.timer) return;
    this.transition('reconnecting', detail);
    const delay = backoffDelay(
      this.attempt++,
      this.o.reconnectBaseMs ?? 1000,
      this.o.reconnectMaxMs ?? 30_000,
      this.random,
    );
    this.log.info({ delay, attempt: this.attempt, detail }, 'dashboard feed closed; reconnecting');
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, delay);
  }

  private async connect(): Promise<void> {
    if (this._state === 'closed') return;
    this.transition('connecting');
    try {
      this.creds = await this.o.credentials();
    } catch (err) {
      const e = new OtaError('OTA_CREDENTIALS', `no credentials for the MQTT feed: ${errorMessage(err)}`, {
        cause: err,
      });
      this.failFirst(e);
      this.scheduleReconnect(e.message);
      return;
    }
    // The feed may have been closed while the credentials were read.
    if ((this._state as FeedState) === 'closed') return;
    const creds = this.creds;
    const c = mqtt.connect(this.o.url, {
      protocolVersion: 4,
      clientId: this.clientId,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0,
      connectTimeout: 15_000,
      resubscribe: false,
      ...(this.o.ca ? { ca: this.o.ca } : {}),
      transformWsUrl: (url) => presignWebSocketUrlSync(url, creds, this.o.region),
    });
    this.client = c;
    // MQTT.js drops the WebSocket's own error (e.g. "Unexpected server response: 403" for a bad
    // signature) and only emits `close`; keep it so the first failure says why.
    let lastError: Error | undefined;
    (c.stream as { on?: (e: 'error', f: (err: Error) => void) => void } | undefined)?.on?.('error', (err) => {
      lastError = err;
    });
    c.on('connect', () => {
      this.subscribe(c).then(
        () => {
          this.attempt = 0;
          this.everConnected = true;
          this.transition('connected');
          this.settleReady?.resolve();
          this.settleReady = undefined;
        },
        (err: Error) => {
          this.log.error({ err: err.message }, 'dashboard feed: subscribe failed');
          this.failFirst(err);
          c.end(true);
        },
      );
    });
    c.on('message', (topic, payload) => this.o.onMessage(topic, payload));
    c.on('error', (err) => {
      // Before the first connection the caller hears of it through `ready`; later, only the log does.
      if (this.everConnected) this.log.warn({ err: err.message }, 'dashboard feed error');
      else this.log.debug({ err: err.message }, 'dashboard feed error');
      lastError = err;
      this.failFirst(err);
    });
    c.on('close', () => {
      if (this.client !== c) return;
      this.client = undefined;
      c.end(true);
      this.failFirst(
        lastError ?? new OtaError('OTA_FEED_CLOSED', 'the connection closed before MQTT CONNACK'),
      );
      this.scheduleReconnect('connection closed');
    });
  }

  private async subscribe(c: MqttClient): Promise<void> {
    const granted = await c.subscribeAsync(this.o.topics, { qos: 0 });
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length > 0) {
      throw new OtaError(
        'OTA_SUBSCRIBE_DENIED',
        `the broker refused the subscription to ${refused.join(', ')}`,
      );
    }
  }
}
