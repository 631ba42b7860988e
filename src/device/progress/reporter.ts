import { type Clock, sleep, systemClock } from '../../shared/clock.ts';
import { AbortedError } from '../../shared/errors.ts';
import type { UpdateStatus } from '../../shared/jobs-protocol.ts';
import { JobsRequestError } from '../errors.ts';
import {
  buildProgressMessage,
  formatPercent,
  ProgressThrottle,
  pythonJsonDumps,
  sanitizeStatusDetails,
} from './message.ts';

/** The part of the Jobs client the reporter needs (a fake in unit tests, JobsClient in the agent). */
export interface ProgressChannel {
  publish(topic: string, payload: string, qos?: 0 | 1, opts?: { waitConnected?: boolean }): Promise<boolean>;
  update(
    jobId: string,
    status: UpdateStatus,
    statusDetails?: Record<string, string>,
    extra?: { stepTimeoutInMinutes?: number },
  ): Promise<unknown>;
}

/** What a progress message says about the job, read when a message is built. */
export interface ProgressSubject {
  jobId: string;
  /** Epoch ms of OTA_start_time. */
  startedAt: number;
  version?: string;
  firmwareName?: string;
  fileName?: string;
}

export interface JobProgressOptions {
  channel: ProgressChannel;
  thingName: string;
  topic: string;
  /** IANA zone of OTA_start_time; undefined = the system's local time. */
  timeZone?: string;
  progressIntervalMs: number;
  statusDetailsIntervalMs: number;
  /** The final, outcome-carrying message waits at most this long for the connection. */
  finalTimeoutMs: number;
  subject: () => ProgressSubject;
  timers?: Clock;
  /** Every progress message built (the publish-mode console line, the `progress` event). */
  onMessage?: (m: { bytes: number; total: number; final: boolean; message: string }) => void;
  /** The service refused an IN_PROGRESS update because the job is over (cancelled, timed out, gone). */
  onJobGone?: (reason: AbortedError) => void;
}

/**
 * One job's progress, published two ways: messages on the progress topic in the original's format (at
 * most one per `progressIntervalMs`, first and final always), and the execution's IN_PROGRESS
 * `statusDetails` (at most one per `statusDetailsIntervalMs`, never two in flight). The download calls
 * `update()` once per chunk, so that path is a clock read and two comparisons.
 */
export class JobProgress {
  /** Progress messages built and handed to the connection. */
  messages = 0;
  /** IN_PROGRESS statusDetails updates accepted by the service. */
  statusUpdates = 0;
  /** The last byte count reported. */
  lastBytes = 0;
  private readonly timers: Clock;
  private messageThrottle: ProgressThrottle | undefined;
  private statusThrottle: ProgressThrottle | undefined;
  private statusInFlight = false;
  private rateBase = 0;
  private rateT0 = 0;
  /** Minutes of the job's step timer renewed by each statusDetails update while downloading. */
  private stepTimer: number | undefined;
  private stepTimerSet = false;
  private readonly finals: Promise<unknown>[] = [];

  constructor(private readonly o: JobProgressOptions) {
    this.timers = o.timers ?? systemClock;
  }

  /** The download starts (at `offset` when resumed): the first message, then throttled updates. */
  start(offset: number, total: number): void {
    this.rateBase = offset;
    this.rateT0 = this.timers.now();
    this.messageThrottle = new ProgressThrottle(this.o.progressIntervalMs, this.timers, (d, t, final) => {
      const p = this.publish(d, t, final);
      if (final) this.finals.push(p);
    });
    this.statusThrottle = new ProgressThrottle(this.o.statusDetailsIntervalMs, this.timers, (d, t) =>
      this.publishStatus(d, t),
    );
    this.messageThrottle.start(offset, total);
    this.statusThrottle.start(offset, total);
  }

  update(done: number, total: number): void {
    this.messageThrottle?.update(done, total);
    this.statusThrottle?.update(done, total);
  }

  /** The image is on disk: the final "100.0 %" message. */
  finish(bytes: number): void {
    this.stepTimer = undefined;
    this.messageThrottle?.finish(bytes, bytes);
  }

  /**
   * Slow is not stuck: while the download's bytes flow, every statusDetails update (at most one per
   * `statusDetailsIntervalMs`, only when bytes arrived) sets the job's step timer to `minutes` again
   * (`stepTimeoutInMinutes`; docs/protocol.md, Timeouts: each new value replaces the old one). A device
   * whose download makes no progress stops renewing it, and the service times the execution out. The next
   * `step()` update after the download clears it (-1): install and reboot have their own limits.
   */
  renewStepTimer(minutes: number): void {
    this.stepTimer = minutes > 0 ? minutes : undefined;
  }

  /**
   * Sets `statusDetails.step` (and more) with an IN_PROGRESS update, awaited: used before steps whose
   * state an operator must see even if the device then goes quiet (installing, rebooting).
   */
  async step(step: string, extra: Record<string, unknown> = {}): Promise<void> {
    const subject = this.o.subject();
    const clear = this.stepTimerSet ? { stepTimeoutInMinutes: -1 } : undefined;
    this.stepTimer = undefined;
    this.stepTimerSet = false;
    await this.o.channel.update(
      subject.jobId,
      'IN_PROGRESS',
      sanitizeStatusDetails({ step, version: subject.version, ...extra }),
      clear,
    );
    this.statusUpdates++;
  }

  /**
   * One last message whose `state` is the job's outcome, so a watcher shows it. Bounded: a broken
   * connection must not hold the next job back.
   */
  async outcome(status: string, total: number, bytes = this.lastBytes): Promise<void> {
    await Promise.allSettled(this.finals);
    const sent = this.publish(bytes, total, true, status);
    // The bound's timer is cancelled as soon as the message is out: a pending timer would keep a
    // finished agent's process alive for finalTimeoutMs.
    const bound = new AbortController();
    await Promise.race([
      sent,
      sleep(this.o.finalTimeoutMs, { clock: this.timers, signal: bound.signal, onAbort: 'resolve' }),
    ]);
    bound.abort();
  }

  /** Waits for the final download message (before the job's terminal update, so the order holds). */
  async settled(): Promise<void> {
    await Promise.allSettled(this.finals);
  }

  private publish(done: number, total: number, final: boolean, outcome?: string): Promise<boolean> {
    this.lastBytes = done;
    const now = this.timers.now();
    const elapsed = (now - this.rateT0) / 1000;
    const rate = elapsed > 0 ? Math.round((done - this.rateBase) / elapsed) : 0;
    const s = this.o.subject();
    const msg = buildProgressMessage({
      cameraId: this.o.thingName,
      startedAt: s.startedAt,
      now,
      ...(this.o.timeZone !== undefined ? { timeZone: this.o.timeZone } : {}),
      firmwareVersion: s.firmwareName ?? s.version ?? '',
      firmwareFilename: s.fileName ?? '',
      totalSize: total,
      downloaded: done,
      extra: {
        jobId: s.jobId,
        version: s.version ?? null,
        state: outcome ?? (final ? 'DOWNLOADED' : 'DOWNLOADING'),
        bytesPerSecond: rate,
        etaSeconds: rate > 0 ? Math.ceil((total - done) / rate) : null,
      },
    });
    const json = pythonJsonDumps(msg);
    this.messages++;
    const p = this.o.channel.publish(this.o.topic, json, 1, {
      waitConnected: final || outcome !== undefined,
    });
    this.o.onMessage?.({ bytes: done, total, final, message: json });
    return p;
  }

  private publishStatus(done: number, total: number): void {
    if (this.statusInFlight) return;
    this.statusInFlight = true;
    const s = this.o.subject();
    const details = sanitizeStatusDetails({
      step: 'download',
      version: s.version,
      progress: `${done}/${total}`,
      percent: formatPercent(done, total),
    });
    const timer = this.stepTimer;
    if (timer !== undefined) this.stepTimerSet = true;
    this.o.channel
      .update(
        s.jobId,
        'IN_PROGRESS',
        details,
        timer !== undefined ? { stepTimeoutInMinutes: timer } : undefined,
      )
      .then(() => {
        this.statusUpdates++;
      })
      .catch((err: unknown) => {
        if (err instanceof JobsRequestError && err.executionGone) {
          // Cancelled or timed out by the service: stop working on it (docs/protocol.md, Execution states).
          this.o.onJobGone?.(new AbortedError(`job ${s.jobId}: ${err.jobsCode}`));
        }
      })
      .finally(() => {
        this.statusInFlight = false;
      });
  }
}
