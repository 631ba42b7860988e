import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { backoffDelay, type Clock, sleep, systemClock, type TimerHandle } from '../../shared/clock.ts';
import { AbortedError, OtaError } from '../../shared/errors.ts';
import type {
  ExecutionState,
  JobExecution,
  JobExecutionSummary,
  PendingExecutions,
  UpdateStatus,
} from '../../shared/jobs-protocol.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import { JOBS_PREFIX, jobsTopics } from '../../shared/topics.ts';
import { JobsRequestError } from '../errors.ts';
import type { ConnectProblem, ConnectSubject } from './connect-diagnosis.ts';
import { type ConnectionState, MqttConnection, type MqttLinkOptions } from './mqtt-connection.ts';

export { CONNECTION_TRANSITIONS, type ConnectionState } from './mqtt-connection.ts';

export interface JobsClientOptions extends MqttLinkOptions {
  thingName: string;
  /** The device certificate's CN and the local data dir, for the diagnosis of a refused connection. */
  diagnosis?: Omit<ConnectSubject, 'host' | 'port' | 'clientId' | 'thingName'>;
  requestTimeoutMs?: number;
  /** Attempts per request for RequestThrottled / InternalError / timeout (default 5). */
  requestAttempts?: number;
  /** Extra topic filters (the progress topic in subscribe mode), subscribed after the Jobs topics. */
  extraSubscriptions?: string[];
  onMessage?: (topic: string, payload: Buffer) => void;
  /** `notify-next` (docs/protocol.md, Notifications): `{timestamp, execution?}`. */
  onNotifyNext?: (msg: { timestamp?: number; execution?: JobExecution }) => void;
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
 * AWS IoT Jobs MQTT API client (docs/protocol.md, MQTT API) over one MqttConnection (MQTT 3.1.1, mutual TLS,
 * reconnects with backoff and jitter: src/device/link/mqtt-connection.ts).
 *
 * Dispatch: one handler per message kind, found through an index keyed by the topic's suffix after
 * `$aws/things/<thing>/jobs/` (`start-next/accepted`, `<jobId>/update/rejected` → `update/rejected`, ...),
 * instead of a chain of `if (topic === ...)`. Requests are correlated with replies by `clientToken`; the
 * reply topics are subscribed before any request is published, and again whenever CONNACK says
 * sessionPresent=0 (docs/protocol.md, Sessions: the subscriptions are otherwise lost, silently).
 */
export class JobsClient {
  private readonly opts: JobsClientOptions;
  private readonly log: Logger;
  private readonly topics: ReturnType<typeof jobsTopics>;
  private readonly prefix: string;
  private readonly pending = new Map<string, Pending>();
  private readonly handlers: ReadonlyMap<string, Handler>;
  private readonly random: () => number;
  private readonly timers: Clock;
  private readonly conn: MqttConnection;
  /** GetPendingJobExecutions' reply topics, once the agent has needed them (renewed on reconnect). */
  private pendingListFilters: string[] | undefined;
  /** Publishes that got a PUBACK (QoS 1) or were written (QoS 0). */
  published = 0;

  constructor(opts: JobsClientOptions) {
    this.opts = opts;
    this.log = opts.logger ?? silentLogger;
    this.timers = opts.timers ?? systemClock;
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
      // `<jobId>/get/…` (DescribeJobExecution) and `get/…` (GetPendingJobExecutions): tokens tell them apart.
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
    const {
      thingName,
      diagnosis,
      requestTimeoutMs: _r,
      requestAttempts: _a,
      extraSubscriptions: _x,
      onMessage: _m,
      onNotifyNext: _n,
      ...link
    } = opts;
    this.conn = new MqttConnection({
      ...link,
      random: this.random,
      timers: this.timers,
      logger: this.log,
      subject: { thingName, ...diagnosis },
      prepare: (client, { sessionPresent, resumed }) =>
        sessionPresent && resumed ? Promise.resolve() : this.subscribeAll(client),
      onMessage: (topic, payload) => this.dispatch(topic, payload),
    });
  }

  get state(): ConnectionState {
    return this.conn.state;
  }

  /** How the next connection attempts go (for the line that says why). */
  get retryNote(): string {
    return this.conn.retryNote();
  }

  /** The last reason the connection could not be made (for a caller that gives up waiting). */
  get lastProblem(): ConnectProblem | undefined {
    return this.conn.lastProblem;
  }

  /** Connects; resolves once connected and subscribed (retries connection failures with backoff). */
  start(): Promise<void> {
    return this.conn.start();
  }

  private async subscribeAll(c: MqttClient): Promise<void> {
    const t = this.topics;
    const p = this.prefix;
    // ≤ 8 filters per SUBSCRIBE on AWS IoT (docs/protocol.md, Message broker). `+` stands for the jobId.
    const jobsFilters = [
      t.startNextAccepted,
      t.startNextRejected,
      `${p}+/get/accepted`,
      `${p}+/get/rejected`,
      `${p}+/update/accepted`,
      `${p}+/update/rejected`,
      t.notifyNext,
    ];
    const extra = [...(this.pendingListFilters ?? []), ...(this.opts.extraSubscriptions ?? [])];
    for (const filters of [jobsFilters, extra]) {
      if (filters.length === 0) continue;
      const granted = await c.subscribeAsync(filters, { qos: 1 });
      const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length > 0)
        throw new OtaError('OTA_SUBSCRIBE', `subscription refused: ${refused.join(', ')}`);
    }
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
    this.timers.clear(p.timer);
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
        await sleep(delay, { clock: this.timers });
        if (this.conn.state === 'closed') throw new AbortedError('jobs client closed');
      }
    }
  }

  private async requestOnce(
    kind: ReplyKind,
    topic: string,
    jobId: string | undefined,
    body: Record<string, unknown>,
  ) {
    await this.conn.whenReady();
    const clientToken = randomUUID();
    const timeoutMs = this.opts.requestTimeoutMs ?? 10_000;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.pending.delete(clientToken);
        reject(new JobsRequestError('Timeout', `no reply to ${kind} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(clientToken, { kind, jobId, resolve, reject, timer });
    });
    const c = this.conn.mqtt;
    if (!c) throw new AbortedError('jobs client closed');
    c.publish(topic, JSON.stringify({ ...body, clientToken }), { qos: 1 }, (err) => {
      if (err) this.log.debug({ err: err.message, kind }, 'request publish failed; waiting for timeout');
      else this.published++;
    });
    return reply;
  }

  /** StartNextPendingJobExecution: IN_PROGRESS first, then QUEUED (docs/protocol.md). */
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
   * GetPendingJobExecutions (docs/protocol.md, Requests and replies): the thing's IN_PROGRESS and QUEUED
   * executions, without documents. The agent asks it when start-next keeps handing back an execution it
   * cannot take.
   */
  async getPending(): Promise<PendingExecutions> {
    if (!this.pendingListFilters) {
      // Subscribed on first use only: a policy that allows just the usual reply topics keeps working.
      const filters = [this.topics.getAccepted, this.topics.getRejected];
      await this.conn.whenReady();
      const granted = await (this.conn.mqtt as MqttClient).subscribeAsync(filters, { qos: 1 });
      if (granted.some((g) => g.qos === 128))
        throw new OtaError('OTA_SUBSCRIBE', `subscription refused: ${filters.join(', ')}`);
      this.pendingListFilters = filters;
    }
    const r = await this.request('get', this.topics.get, undefined, {});
    const list = (v: unknown) =>
      (Array.isArray(v) ? v : []).filter(
        (x): x is JobExecutionSummary =>
          x !== null && typeof x === 'object' && typeof (x as { jobId?: unknown }).jobId === 'string',
      );
    return { inProgressJobs: list(r.inProgressJobs), queuedJobs: list(r.queuedJobs) };
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
    return this.conn.isReady;
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
    const c = this.conn.mqtt;
    if (!c) return Promise.resolve(false);
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
    return this.conn.whenReady().then(go, () => false);
  }

  async close(): Promise<void> {
    if (this.conn.state === 'closed') return;
    const closing = this.conn.close();
    const err = new AbortedError('jobs client closed');
    for (const [token, p] of this.pending) {
      this.timers.clear(p.timer);
      p.reject(err);
      this.pending.delete(token);
    }
    await closing;
  }
}
