import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { type IClientOptions, MqttClient } from 'mqtt';
import { AbortedError, OtaError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { backoffDelay, sleep, systemTimers, type TimerHandle, type Timers } from '../shared/timers.ts';
import { JOBS_PREFIX, jobsTopics } from '../shared/topics.ts';
import { JobsRequestError } from './errors.ts';

/** A job execution as the Jobs MQTT API sends it (reference section 1, JobExecution). */
export interface JobExecution {
  jobId: string;
  thingName?: string;
  jobDocument?: unknown;
  status: string;
  statusDetails?: Record<string, string>;
  queuedAt?: number;
  startedAt?: number;
  lastUpdatedAt?: number;
  versionNumber?: number;
  executionNumber?: number;
}

export interface ExecutionState {
  status: string;
  statusDetails?: Record<string, string>;
  versionNumber?: number;
}

export type UpdateStatus = 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'REJECTED';

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

export interface JobsClientOptions {
  host: string;
  port: number;
  ca?: string;
  cert: string;
  key: string;
  /** SNI name; default `host`. */
  servername?: string;
  clientId: string;
  thingName: string;
  /** AWS IoT accepts 30–1200 s (reference section 3). */
  keepaliveSec?: number;
  requestTimeoutMs?: number;
  /** Attempts per request for RequestThrottled / InternalError / timeout (default 5). */
  requestAttempts?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** Extra topic filters (the progress topic in subscribe mode), subscribed after the Jobs topics. */
  extraSubscriptions?: string[];
  onMessage?: (topic: string, payload: Buffer) => void;
  /** `notify-next` (reference section 1): `{timestamp, execution?}`. */
  onNotifyNext?: (msg: { timestamp?: number; execution?: JobExecution }) => void;
  /** Every time the client is connected and subscribed; `resumed` = not the first connection. */
  onReady?: (info: { resumed: boolean; sessionPresent: boolean }) => void;
  onStateChange?: (state: ConnectionState) => void;
  /** Connection-level errors (TLS refused, CONNACK refused, socket errors); the client keeps retrying. */
  onError?: (err: Error) => void;
  random?: () => number;
  /** Request timeouts, retry and reconnect delays run on these (default: the system's). */
  timers?: Timers;
  logger?: Logger;
}

type ReplyKind = 'start-next' | 'get' | 'update';

interface Pending {
  kind: ReplyKind;
  jobId: string | undefined;
  resolve: (msg: Record<string, unknown>) => void;
  reject: (err: Error) => void;
  timer: TimerHandle;
}

type Handler = (msg: Record<string, unknown>, jobId: string | undefined) => void;

/**
 * AWS IoT Jobs MQTT API client (reference section 1) over MQTT.js, MQTT 3.1.1 with mutual TLS.
 *
 * Dispatch: one handler per message kind, found through an index keyed by the topic's suffix after
 * `$aws/things/<thing>/jobs/` (`start-next/accepted`, `<jobId>/update/rejected` → `update/rejected`, ...),
 * instead of a chain of `if (topic === ...)`. Requests are correlated with replies by `clientToken`; the
 * reply topics are subscribed before any request is published, and again whenever CONNACK says
 * sessionPresent=0 (reference section 3: subscriptions are otherwise silently lost — complaint 3 in
 * section 8).
 *
 * Reconnects: MQTT.js reconnects on a fixed `reconnectPeriod` timer, so a fleet that lost its broker
 * reconnects in lockstep. Here `reconnectPeriod` is 0 (MQTT.js never reconnects on its own) and this
 * class calls `client.reconnect()` after an exponential delay with full jitter, capped, reset once
 * connected.
 */
export class JobsClient {
  private readonly opts: JobsClientOptions;
  private readonly log: Logger;
  private readonly topics: ReturnType<typeof jobsTopics>;
  private readonly prefix: string;
  private readonly pending = new Map<string, Pending>();
  private readonly handlers: ReadonlyMap<string, Handler>;
  private readonly random: () => number;
  private readonly timers: Timers;
  private client: MqttClient | undefined;
  private _state: ConnectionState = 'idle';
  private attempt = 0;
  private reconnectTimer: TimerHandle | undefined;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private everReady = false;
  private ready = false;
  /** Publishes that got a PUBACK (QoS 1) or were written (QoS 0). */
  published = 0;

  constructor(opts: JobsClientOptions) {
    this.opts = opts;
    this.log = opts.logger ?? silentLogger;
    this.timers = opts.timers ?? systemTimers;
    this.topics = jobsTopics(opts.thingName);
    this.prefix = `${JOBS_PREFIX(opts.thingName)}/`;
    this.random = opts.random ?? Math.random;
    const reply =
      (kind: ReplyKind, ok: boolean): Handler =>
      (msg, jobId) =>
        this.settle(kind, ok, msg, jobId);
    this.handlers = new Map<string, Handler>([
      ['start-next/accepted', reply('start-next', true)],
      ['start-next/rejected', reply('start-next', false)],
      ['get/accepted', reply('get', true)],
      ['get/rejected', reply('get', false)],
      ['update/accepted', reply('update', true)],
      ['update/rejected', reply('update', false)],
      [
        'notify-next',
        (msg) => this.opts.onNotifyNext?.(msg as { timestamp?: number; execution?: JobExecution }),
      ],
      ['notify', () => {}],
    ]);
  }

  get state(): ConnectionState {
    return this._state;
  }

  private transition(next: ConnectionState): void {
    if (this._state === next) return;
    if (!CONNECTION_TRANSITIONS[this._state].includes(next)) {
      throw new OtaError('OTA_STATE', `connection: invalid transition ${this._state} → ${next}`);
    }
    this.log.debug({ from: this._state, to: next }, 'connection state');
    this._state = next;
    this.opts.onStateChange?.(next);
  }

  /** Connects; resolves once connected and subscribed (retries connection failures with backoff). */
  start(): Promise<void> {
    if (this._state !== 'idle') return this.whenReady();
    this.transition('connecting');
    const o = this.opts;
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
      connectTimeout: 30_000,
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
    client.on('message', (topic, payload) => this.dispatch(topic, payload));
    client.on('error', (err) => {
      // After close(), MQTT.js still reports writes it could not make (a PUBACK for a message that
      // arrived while closing: "write after end"); nothing is lost, and nobody is listening any more.
      if (this._state === 'closed') return;
      this.log.warn({ err: err.message }, 'mqtt error');
      this.opts.onError?.(err);
    });
    client.on('close', () => this.onClose());
    return this.whenReady();
  }

  private onConnect(sessionPresent: boolean): void {
    if (this._state === 'closed') return;
    this.transition('connected');
    this.attempt = 0;
    const resumed = this.everReady;
    const finish = () => {
      this.ready = true;
      this.everReady = true;
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w.resolve();
      this.opts.onReady?.({ resumed, sessionPresent });
    };
    if (sessionPresent && resumed) {
      finish();
      return;
    }
    this.subscribeAll()
      .then(finish)
      .catch((err: unknown) => {
        this.log.error({ err: (err as Error).message }, 'subscribe failed; reconnecting');
        this.client?.end(true);
      });
  }

  private async subscribeAll(): Promise<void> {
    const c = this.client;
    if (!c) return;
    const t = this.topics;
    const p = this.prefix;
    // ≤ 8 filters per SUBSCRIBE on AWS IoT (reference section 3). `+` stands for the jobId.
    const jobsFilters = [
      t.startNextAccepted,
      t.startNextRejected,
      `${p}+/get/accepted`,
      `${p}+/get/rejected`,
      `${p}+/update/accepted`,
      `${p}+/update/rejected`,
      t.notifyNext,
    ];
    const granted = await c.subscribeAsync(jobsFilters, { qos: 1 });
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length > 0)
      throw new OtaError('OTA_SUBSCRIBE', `subscription refused: ${refused.join(', ')}`);
    const extra = this.opts.extraSubscriptions ?? [];
    if (extra.length > 0) {
      const g2 = await c.subscribeAsync(extra, { qos: 1 });
      const r2 = g2.filter((g) => g.qos === 128).map((g) => g.topic);
      if (r2.length > 0) throw new OtaError('OTA_SUBSCRIBE', `subscription refused: ${r2.join(', ')}`);
    }
  }

  private onClose(): void {
    this.ready = false;
    if (this._state === 'closed') return;
    if (this._state !== 'reconnecting') this.transition('reconnecting');
    if (this.reconnectTimer) return;
    const delay = backoffDelay(
      this.attempt++,
      this.opts.reconnectBaseMs ?? 1000,
      this.opts.reconnectMaxMs ?? 60_000,
      this.random,
    );
    this.log.info({ delay, attempt: this.attempt }, 'mqtt connection closed; reconnecting');
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this._state !== 'reconnecting') return;
      this.transition('connecting');
      this.client?.reconnect();
    }, delay);
  }

  private whenReady(): Promise<void> {
    if (this._state === 'closed') return Promise.reject(new AbortedError('jobs client closed'));
    if (this.ready) return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  private dispatch(topic: string, payload: Buffer): void {
    if (!topic.startsWith(this.prefix)) {
      this.opts.onMessage?.(topic, payload);
      return;
    }
    const rest = topic.slice(this.prefix.length);
    const parts = rest.split('/');
    let kind: string;
    let jobId: string | undefined;
    if (parts.length === 3) {
      jobId = parts[0];
      kind = `${parts[1]}/${parts[2]}`;
    } else {
      kind = rest;
    }
    const handler = this.handlers.get(kind);
    if (!handler) {
      this.log.debug({ topic }, 'unhandled jobs topic');
      return;
    }
    let msg: Record<string, unknown>;
    try {
      const v = JSON.parse(payload.toString('utf8')) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      msg = v as Record<string, unknown>;
    } catch {
      this.log.warn({ topic }, 'ignoring a reply that is not a JSON object');
      return;
    }
    handler(msg, jobId);
  }

  private settle(
    kind: ReplyKind,
    ok: boolean,
    msg: Record<string, unknown>,
    jobId: string | undefined,
  ): void {
    const token = typeof msg.clientToken === 'string' ? msg.clientToken : undefined;
    const p = token ? this.pending.get(token) : undefined;
    if (!p || p.kind !== kind || (p.jobId !== undefined && jobId !== undefined && p.jobId !== jobId)) {
      this.log.debug({ kind, token }, 'reply without a matching request');
      return;
    }
    this.pending.delete(token as string);
    this.timers.clearTimeout(p.timer);
    if (ok) p.resolve(msg);
    else {
      p.reject(
        new JobsRequestError(
          String(msg.code ?? 'Unknown'),
          String(msg.message ?? 'rejected'),
          msg.executionState as ExecutionState | undefined,
        ),
      );
    }
  }

  /** One request/reply with retries on RequestThrottled / InternalError / timeout, each with a fresh token. */
  private async request(
    kind: ReplyKind,
    topic: string,
    jobId: string | undefined,
    body: Record<string, unknown>,
  ) {
    const attempts = this.opts.requestAttempts ?? 5;
    for (let i = 0; ; i++) {
      try {
        return await this.requestOnce(kind, topic, jobId, body);
      } catch (err) {
        if (!(err instanceof JobsRequestError) || !err.retryable || i + 1 >= attempts) throw err;
        const delay = backoffDelay(i, 500, 20_000, this.random);
        this.log.warn({ kind, jobId, code: err.jobsCode, delay }, 'jobs request failed; retrying');
        await sleep(delay, { timers: this.timers });
        if (this._state === 'closed') throw new AbortedError('jobs client closed');
      }
    }
  }

  private async requestOnce(
    kind: ReplyKind,
    topic: string,
    jobId: string | undefined,
    body: Record<string, unknown>,
  ) {
    await this.whenReady();
    const clientToken = randomUUID();
    const timeoutMs = this.opts.requestTimeoutMs ?? 10_000;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.pending.delete(clientToken);
        reject(new JobsRequestError('Timeout', `no reply to ${kind} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(clientToken, { kind, jobId, resolve, reject, timer });
    });
    const c = this.client;
    if (!c) throw new AbortedError('jobs client closed');
    c.publish(topic, JSON.stringify({ ...body, clientToken }), { qos: 1 }, (err) => {
      if (err) this.log.debug({ err: err.message, kind }, 'request publish failed; waiting for timeout');
      else this.published++;
    });
    return reply;
  }

  /** StartNextPendingJobExecution: IN_PROGRESS first, then QUEUED (reference section 1). */
  async startNext(statusDetails?: Record<string, string>): Promise<JobExecution | undefined> {
    const r = await this.request(
      'start-next',
      this.topics.startNext,
      undefined,
      statusDetails ? { statusDetails } : {},
    );
    return r.execution as JobExecution | undefined;
  }

  /** DescribeJobExecution (`$next` allowed); includes the document, with fresh presigned URLs. */
  async describe(jobId: string): Promise<JobExecution | undefined> {
    const r = await this.request('get', this.topics.describe(jobId), jobId, { includeJobDocument: true });
    return r.execution as JobExecution | undefined;
  }

  /**
   * UpdateJobExecution. A retried terminal update whose first attempt did land is answered
   * InvalidStateTransition/TerminalStateReached with the execution already in the wanted state: success.
   */
  async update(
    jobId: string,
    status: UpdateStatus,
    statusDetails?: Record<string, string>,
    extra: { expectedVersion?: number; stepTimeoutInMinutes?: number } = {},
  ): Promise<ExecutionState | undefined> {
    try {
      const r = await this.request('update', this.topics.update(jobId), jobId, {
        status,
        ...(statusDetails ? { statusDetails } : {}),
        ...extra,
        includeJobExecutionState: true,
      });
      return r.executionState as ExecutionState | undefined;
    } catch (err) {
      if (
        err instanceof JobsRequestError &&
        err.executionState?.status === status &&
        status !== 'IN_PROGRESS'
      ) {
        return err.executionState as ExecutionState;
      }
      throw err;
    }
  }

  get isConnected(): boolean {
    return this._state === 'connected' && this.ready;
  }

  /**
   * Publishes an application message. Progress messages are best effort: when disconnected they are
   * dropped (returns false) rather than queued without bound inside MQTT.js.
   */
  publish(
    topic: string,
    payload: string,
    qos: 0 | 1 = 1,
    opts: { waitConnected?: boolean } = {},
  ): Promise<boolean> {
    const c = this.client;
    if (!c || this._state === 'closed') return Promise.resolve(false);
    const go = () =>
      new Promise<boolean>((resolve) => {
        c.publish(topic, payload, { qos }, (err) => {
          if (err) {
            this.log.debug({ err: err.message, topic }, 'publish failed');
            resolve(false);
          } else {
            this.published++;
            resolve(true);
          }
        });
      });
    if (this.isConnected) return go();
    if (!opts.waitConnected) return Promise.resolve(false);
    return this.whenReady().then(go, () => false);
  }

  async close(): Promise<void> {
    if (this._state === 'closed') return;
    this.transition('closed');
    this.ready = false;
    if (this.reconnectTimer) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const err = new AbortedError('jobs client closed');
    for (const w of this.readyWaiters) w.reject(err);
    this.readyWaiters = [];
    for (const [token, p] of this.pending) {
      this.timers.clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(token);
    }
    const c = this.client;
    if (c) {
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
}
