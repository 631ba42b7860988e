import { isIP } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { type IClientOptions, MqttClient } from 'mqtt';
import { backoffDelay, type Clock, systemClock, type TimerHandle } from '../../shared/clock.ts';
import { AbortedError, OtaError } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import { type ConnectProblem, type ConnectSubject, diagnoseConnectError } from './connect-diagnosis.ts';

/**
 * Connection state: one value and a transition table, not a set of booleans (`connected`, `reconnecting`,
 * `disconnecting` in MQTT.js can contradict each other). Any other transition is a bug and throws.
 */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

export const CONNECTION_TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  idle: ['connecting', 'closed'],
  connecting: ['connected', 'reconnecting', 'closed'],
  connected: ['reconnecting', 'closed'],
  reconnecting: ['connecting', 'closed'],
  closed: [],
};

/** `cannot connect to mqtts://host:port as <client id>: <why>`, or the lost connection's own line. */
export function describeProblem(
  p: ConnectProblem,
  o: { host: string; port: number; clientId: string },
): string {
  if (p.kind === 'dropped') return p.message;
  return `cannot connect to mqtts://${o.host}:${o.port} as ${o.clientId}: ${p.message}`;
}

/** A connection that stayed up this long was healthy: the next failure starts the backoff over. */
export const STABLE_CONNECTION_MS = 30_000;

/** Where and how to connect, and what to tell: shared by the connection and the Jobs client on it. */
export interface MqttLinkOptions {
  host: string;
  port: number;
  ca?: string;
  cert: string;
  key: string;
  /** SNI name; default `host`. */
  servername?: string;
  clientId: string;
  /** AWS IoT accepts 30–1200 s (docs/protocol.md, Message broker). */
  keepaliveSec?: number;
  /** Bound of one attempt: TCP, TLS and CONNACK (default 30 s). */
  connectTimeoutMs?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** Every time the connection is ready (connected and subscribed); `resumed` = not the first time. */
  onReady?: (info: { resumed: boolean; sessionPresent: boolean }) => void;
  onStateChange?: (state: ConnectionState) => void;
  /**
   * Why the connection cannot be made or was lost (nothing listening, TLS refused, CONNACK refused),
   * once per distinct reason, not once per attempt; the connection keeps retrying.
   */
  onProblem?: (problem: ConnectProblem) => void;
  random?: () => number;
  /** Reconnect delays (and a Jobs client's request timeouts and retries) run on these. */
  timers?: Clock;
  logger?: Logger;
}

export interface MqttConnectionOptions extends MqttLinkOptions {
  /** For the diagnosis of a refused connection (and the certificate's CN, the local data dir). */
  subject: Omit<ConnectSubject, 'host' | 'port' | 'clientId'>;
  /**
   * Runs after every CONNACK (the subscriptions); the connection is ready when it resolves, and a
   * rejection ends the connection to try again.
   */
  prepare: (client: MqttClient, info: { sessionPresent: boolean; resumed: boolean }) => Promise<void>;
  onMessage: (topic: string, payload: Buffer) => void;
}

/**
 * One MQTT 3.1.1 connection over mutual TLS (MQTT.js), kept up.
 *
 * Reconnects: MQTT.js reconnects on a fixed `reconnectPeriod` timer, so a fleet that lost its broker
 * reconnects in lockstep. Here `reconnectPeriod` is 0 (MQTT.js never reconnects on its own) and this
 * class calls `client.reconnect()` after an exponential delay with full jitter (AWS Architecture Blog,
 * "Exponential Backoff And Jitter"), capped at `reconnectMaxMs`. The attempt count starts over only after
 * a connection that stayed up for STABLE_CONNECTION_MS, so a connection that is accepted and then dropped
 * at once (another device with the same client id, MQTT 3.1.1 section 3.1.4) backs off too.
 *
 * Failures are told once per reason: each attempt is logged at debug; the reason is logged (warn) and
 * reported (`onProblem`) when it first appears and again only when it changes.
 */
export class MqttConnection {
  private readonly o: MqttConnectionOptions;
  private readonly log: Logger;
  private readonly timers: Clock;
  private readonly random: () => number;
  private readonly target: string;
  private client: MqttClient | undefined;
  private _state: ConnectionState = 'idle';
  private attempt = 0;
  private reconnectTimer: TimerHandle | undefined;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private everReady = false;
  private ready = false;
  private readyAt = 0;
  /** The error of the attempt in progress (MQTT.js emits `error`, then `close`). */
  private attemptError: Error | undefined;
  private reported: string | undefined;
  /** The last reason told (also after it was fixed: the --once deadline names it). */
  lastProblem: ConnectProblem | undefined;

  constructor(opts: MqttConnectionOptions) {
    this.o = opts;
    this.log = opts.logger ?? silentLogger;
    this.timers = opts.timers ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.target = `mqtts://${opts.host}:${opts.port}`;
  }

  get state(): ConnectionState {
    return this._state;
  }

  get isReady(): boolean {
    return this._state === 'connected' && this.ready;
  }

  /** The MQTT.js client, once started (publish and subscribe go through it). */
  get mqtt(): MqttClient | undefined {
    return this._state === 'closed' ? undefined : this.client;
  }

  private transition(next: ConnectionState): void {
    if (this._state === next) return;
    if (!CONNECTION_TRANSITIONS[this._state].includes(next)) {
      throw new OtaError('OTA_STATE', `connection: invalid transition ${this._state} → ${next}`);
    }
    this.log.debug({ from: this._state, to: next }, 'connection state');
    this._state = next;
    this.o.onStateChange?.(next);
  }

  /** Connects; resolves once connected and prepared (retries connection failures with backoff). */
  start(): Promise<void> {
    if (this._state !== 'idle') return this.whenReady();
    this.transition('connecting');
    const o = this.o;
    const options: IClientOptions = {
      host: o.host,
      port: o.port,
      protocol: 'mqtts',
      // mqtt-packet would otherwise pre-build 65,536 two-byte Buffers (one per message id) on the first
      // write: ~6 MiB of heap and ~20 ms of CPU at start-up (docs/benchmarks.md, "Footprint").
      writeCache: false,
      protocolVersion: 4,
      clientId: o.clientId,
      keepalive: Math.min(1200, Math.max(30, o.keepaliveSec ?? 60)),
      clean: true,
      reconnectPeriod: 0,
      // We resubscribe ourselves, from CONNACK's sessionPresent (MQTT 3.1.1 section 3.2.2.2).
      resubscribe: false,
      connectTimeout: o.connectTimeoutMs ?? 30_000,
      cert: o.cert,
      key: o.key,
      // SNI must be a host name, never an IP address (RFC 6066 section 3).
      ...(o.servername || !isIP(o.host) ? { servername: o.servername ?? o.host } : {}),
      rejectUnauthorized: true,
      ...(o.ca ? { ca: o.ca } : {}),
    };
    // Our own stream builder (a TLS socket, re-created on each reconnect) instead of mqtt.connect():
    // connect() loads every transport it knows on first use (ws, socks, ip-address, …), ~2 MiB of RSS
    // and ~40 ms of CPU at start-up for code the agent never runs (docs/benchmarks.md, "Footprint").
    // TLS errors reach the client as stream errors with a `code`, which MqttClient emits as 'error'.
    const client = new MqttClient(() => tlsConnect(options as ConnectionOptions), options);
    this.client = client;
    client.on('connect', (connack) => {
      // TCP_NODELAY: a request is one small packet written in several small writes and its reply must
      // come back at once; with Nagle's algorithm on, a write waits for the peer's delayed ACK (40 ms on
      // Linux) — measured 14 ms per QoS 1 publish and ~40 ms per Jobs round trip (docs/benchmarks.md).
      // tls.connect ignores the `noDelay` option (Node 20), so it is set on the socket here.
      (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
      this.onConnect(connack.sessionPresent === true);
    });
    client.on('message', (topic, payload) => this.o.onMessage(topic, payload));
    client.on('error', (err) => {
      // After close(), MQTT.js still reports what it could not finish (a PUBACK for a message that
      // arrived while closing: "write after end"; the broker's reset of a socket we are ending:
      // "read ECONNRESET"). Nothing is lost, and nobody is listening any more.
      if (this._state === 'closed') return;
      this.log.debug({ err: err.message }, 'mqtt error');
      this.attemptError ??= err;
    });
    client.on('close', () => this.onClose());
    return this.whenReady();
  }

  private onConnect(sessionPresent: boolean): void {
    if (this._state === 'closed') return;
    this.transition('connected');
    const resumed = this.everReady;
    const finish = () => {
      if (this._state !== 'connected') return;
      this.ready = true;
      this.everReady = true;
      this.readyAt = this.timers.now();
      this.attemptError = undefined;
      if (this.reported !== undefined) {
        this.log.info({ after: this.attempt }, `connected to ${this.target} as ${this.o.clientId}`);
        this.reported = undefined;
      }
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w.resolve();
      this.o.onReady?.({ resumed, sessionPresent });
    };
    this.o
      .prepare(this.client as MqttClient, { sessionPresent, resumed })
      .then(finish)
      .catch((err: unknown) => {
        this.log.error({ err: (err as Error).message }, 'subscribe failed; reconnecting');
        this.client?.end(true);
      });
  }

  /**
   * Tells why, once per distinct reason: to `onProblem`, or else to the log. The reason is the kind of
   * problem (nothing listening, CONNACK refused, ...): a peer that resets one attempt and closes the next
   * is one reason, not two. Only unclassified errors are told apart by their text.
   */
  private report(problem: ConnectProblem): void {
    this.lastProblem = problem;
    const reason = problem.kind === 'other' ? `other: ${problem.message}` : problem.kind;
    if (reason === this.reported) return;
    this.reported = reason;
    if (this.o.onProblem) {
      this.o.onProblem(problem);
      return;
    }
    this.log.warn({ kind: problem.kind }, `${describeProblem(problem, this.o)} ${this.retryNote()}`);
  }

  /** How the next attempts go, for the line that says why. */
  retryNote(): string {
    return `(retrying with backoff, at most ${Math.round((this.o.reconnectMaxMs ?? 60_000) / 1000)} s apart)`;
  }

  private onClose(): void {
    const wasReady = this.ready;
    this.ready = false;
    if (this._state === 'closed') return;
    const err = this.attemptError;
    this.attemptError = undefined;
    const o = this.o;
    this.report(
      diagnoseConnectError(
        err,
        { ...o.subject, host: o.host, port: o.port, clientId: o.clientId },
        wasReady || this._state === 'connected',
      ),
    );
    if (wasReady && this.timers.now() - this.readyAt >= STABLE_CONNECTION_MS) this.attempt = 0;
    if (this._state !== 'reconnecting') this.transition('reconnecting');
    if (this.reconnectTimer) return;
    const delay = backoffDelay(
      this.attempt++,
      o.reconnectBaseMs ?? 1000,
      o.reconnectMaxMs ?? 60_000,
      this.random,
    );
    this.log.debug({ delay, attempt: this.attempt }, 'mqtt connection closed; reconnecting');
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this._state !== 'reconnecting') return;
      this.transition('connecting');
      this.client?.reconnect();
    }, delay);
  }

  whenReady(): Promise<void> {
    if (this._state === 'closed') return Promise.reject(new AbortedError('jobs client closed'));
    if (this.ready) return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Ends the connection: connected, with DISCONNECT after what is in flight (MQTT 3.1.1 section 3.14),
   * at most 2 s; otherwise at once. MQTT.js's graceful end of a connection still in its TCP or TLS
   * handshake calls back at once but leaves the socket open until its connect timeout (30 s): a stopped
   * agent then could not exit for that long.
   */
  async close(): Promise<void> {
    if (this._state === 'closed') return;
    const connected = this._state === 'connected';
    this.transition('closed');
    this.ready = false;
    if (this.reconnectTimer) this.timers.clear(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const err = new AbortedError('jobs client closed');
    for (const w of this.readyWaiters) w.reject(err);
    this.readyWaiters = [];
    const c = this.client;
    if (!c) return;
    if (!connected) {
      await new Promise<void>((resolve) => c.end(true, () => resolve()));
      return;
    }
    // Bounds a real socket's graceful close, so Node's timer rather than the injected clock: a manual
    // clock would either hold close() open or cut the DISCONNECT short.
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        c.end(true, () => resolve());
      }, 2000);
      c.end(false, () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
