import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { JobExecution } from '../../shared/jobs-protocol.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import type { AgentConfig } from '../config/agent-config.ts';
import {
  ConnectError,
  type ConnectProblem,
  certificateCn,
  localCertificateMismatch,
} from './connect-diagnosis.ts';
import { type ConnectionState, JobsClient } from './jobs-client.ts';
import { describeProblem } from './mqtt-connection.ts';

/**
 * The agent's connection to the Jobs service, and what it tells a person about it: the certificate
 * checked before connecting, why a connection cannot be made (once per reason, while it keeps
 * retrying), and for `--once`, a bounded wait that ends in an error naming the likely cause.
 */

export interface AgentLinkEvents {
  onMessage: (topic: string, payload: Buffer) => void;
  onNotifyNext: (msg: { timestamp?: number; execution?: JobExecution }) => void;
  onReady: (resumed: boolean) => void;
  onStateChange: (state: ConnectionState) => void;
  /** Why the connection cannot be made, once per reason (also while `--once` gives up on it). */
  onProblem: (problem: ConnectProblem) => void;
}

export interface AgentLinkOptions {
  config: AgentConfig;
  pems: { ca?: string; cert: string; key: string };
  timers: Clock;
  random: () => number;
  logger?: Logger;
  events: AgentLinkEvents;
}

/**
 * Before connecting: a certificate of the local stack that names another thing can never connect as
 * this one (the broker takes its CN as the thing name). Refused at once, with both names; AWS's own
 * certificates (CN "AWS IoT Certificate", from AWS's CA) are never refused here.
 */
export function checkCertificate(c: AgentConfig, pems: { ca?: string; cert: string }): void {
  const mismatch = localCertificateMismatch({ certPem: pems.cert, caPem: pems.ca, thingName: c.thingName });
  if (mismatch)
    throw new ConnectError(mismatch, { kind: 'wrong-thing', message: mismatch, definitive: true });
}

export class AgentLink {
  readonly jobs: JobsClient;
  private readonly cfg: AgentConfig;
  private readonly timers: Clock;
  private readonly log: Logger;
  /** `--once` gives up waiting for its first connection (timeout, or a refusal retrying cannot fix). */
  private giveUp: ((err: ConnectError) => void) | undefined;

  constructor(o: AgentLinkOptions) {
    const c = o.config;
    this.cfg = c;
    this.timers = o.timers;
    this.log = o.logger ?? silentLogger;
    const subscribe = c.mode === 'subscribe' || c.mode === 'both';
    const certCn = certificateCn(o.pems.cert);
    this.jobs = new JobsClient({
      host: c.endpoint,
      port: c.port,
      ...o.pems,
      clientId: c.clientId,
      thingName: c.thingName,
      diagnosis: { ...(certCn ? { certCn } : {}), ...(c.local ? { localDataDir: c.local } : {}) },
      keepaliveSec: c.keepaliveSec,
      connectTimeoutMs: c.connectTimeoutMs,
      requestTimeoutMs: c.requestTimeoutMs,
      random: o.random,
      timers: o.timers,
      logger: this.log,
      ...(subscribe ? { extraSubscriptions: [c.topic] } : {}),
      onMessage: o.events.onMessage,
      onNotifyNext: o.events.onNotifyNext,
      onReady: ({ resumed }) => o.events.onReady(resumed),
      onStateChange: o.events.onStateChange,
      onProblem: (problem) => {
        o.events.onProblem(problem);
        this.onProblem(problem);
      },
    });
  }

  /** `connected to mqtts://host:port as <client id>`: the start of the line that says the agent is up. */
  get connectedTo(): string {
    return `connected to mqtts://${this.cfg.endpoint}:${this.cfg.port} as ${this.cfg.clientId}`;
  }

  private target(): { host: string; port: number; clientId: string } {
    return { host: this.cfg.endpoint, port: this.cfg.port, clientId: this.cfg.clientId };
  }

  private onProblem(problem: ConnectProblem): void {
    const giveUp = problem.definitive ? this.giveUp : undefined;
    if (giveUp) {
      // `--once`: the error says it, once. A stopped local stack gets the line the operator commands
      // print for a stale endpoints.json.
      const local = problem.kind === 'refused' && this.cfg.local;
      giveUp(new ConnectError(local ? problem.message : describeProblem(problem, this.target()), problem));
      return;
    }
    this.log.warn(
      { kind: problem.kind },
      `${describeProblem(problem, this.target())} ${this.jobs.retryNote}`,
    );
  }

  /**
   * Waits for the first connection. The long-running agent waits as long as it takes (retrying with
   * backoff, saying why once); `--once` waits at most `connectTimeoutMs`, and not at all after a refusal
   * that retrying cannot fix (a CONNACK refusal, an untrusted certificate, a stopped local stack), then
   * fails with the likely cause. Resolves early when `stopped` does.
   */
  async connect(stopped: Promise<void>): Promise<void> {
    if (!this.cfg.once) {
      await Promise.race([this.jobs.start(), stopped]);
      return;
    }
    const ms = this.cfg.connectTimeoutMs;
    let timer: TimerHandle | undefined;
    const failed = new Promise<never>((_, reject) => {
      this.giveUp = reject;
      timer = this.timers.setTimeout(() => {
        const p = this.jobs.lastProblem;
        const { host, port } = this.target();
        const why = p ? p.message : 'no answer';
        reject(
          new ConnectError(
            `no connection to mqtts://${host}:${port} within ${ms / 1000} s (--connect-timeout): ${why}`,
            p,
          ),
        );
      }, ms);
    });
    try {
      await Promise.race([this.jobs.start(), stopped, failed]);
    } finally {
      this.giveUp = undefined;
      this.timers.clear(timer);
    }
  }
}
