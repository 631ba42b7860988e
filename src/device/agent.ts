import type { KeyObject } from 'node:crypto';
import { backoffDelay, type Clock, sleep, systemClock } from '../shared/clock.ts';
import { AbortedError, errorMessage } from '../shared/errors.ts';
import { isTerminalExecutionStatus } from '../shared/execution-status.ts';
import { publicKeyFromPem } from '../shared/firmware-signature.ts';
import type { JobExecution } from '../shared/jobs-protocol.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import type { AgentEvent, AgentHandle, AgentOptions, AgentSummary } from './agent-types.ts';
import { type AgentConfig, readPem } from './config/agent-config.ts';
import { statusDetailsInterval } from './config/download.ts';
import { JobsRequestError } from './errors.ts';
import { commandHooks, type DeviceHooks } from './install/hooks.ts';
import { slotHooks } from './install/slots.ts';
import { type AgentState, StateStore } from './install/state.ts';
import {
  type JobContext,
  type JobSummary,
  newJobContext,
  type StepEnv,
  type StepName,
} from './job-context.ts';
import { AgentLink, checkCertificate } from './link/agent-link.ts';
import type { ConnectionState, JobsClient } from './link/jobs-client.ts';
import { OTA_PIPELINE, runPipeline, type StepHooks } from './pipeline.ts';
import { JobProgress } from './progress/reporter.ts';
import { publishedLine, receivedSection } from './progress/sections.ts';
import { SourceFactory } from './source/factory.ts';

export type { AgentEvent, AgentHandle, AgentOptions, AgentSummary } from './agent-types.ts';
export type { JobOutcome, JobSummary } from './job-context.ts';

const MAX_JOB_HISTORY = 100;

/**
 * The device agent: connects as the thing, takes jobs one at a time (start-next at start-up, after each
 * job, on notify-next naming an execution and after a reconnect), runs each through the OTA pipeline
 * (src/device/pipeline.ts) and reports. Everything lives in this closure: no module state, no process
 * listeners, so a fleet simulator can run hundreds in one process.
 */
export function startAgent(opts: AgentOptions): AgentHandle {
  const agent = new Agent(opts);
  const done = agent.run();
  return {
    done,
    stop: async () => {
      agent.requestStop();
      await done.catch(() => {});
    },
    get connectionState() {
      return agent.connectionState;
    },
  };
}

class Agent {
  private readonly cfg: AgentConfig;
  private readonly log: Logger;
  private readonly timers: Clock;
  private readonly random: () => number;
  private readonly stopAc = new AbortController();
  private readonly state: StateStore;
  private sources: SourceFactory | undefined;
  private link: AgentLink | undefined;
  private wakeFlag = true;
  private wakeResolve: (() => void) | undefined;
  private current: { ctx: JobContext; ac: AbortController } | undefined;
  private readonly invalidJobIds = new Set<string>();
  private readonly hooks: DeviceHooks;
  private readonly trustedKeys: readonly KeyObject[];
  private readonly summary: AgentSummary;
  /** The "waiting for jobs" line was logged since the last job or reconnect. */
  private saidWaiting = false;

  constructor(private readonly opts: AgentOptions) {
    this.cfg = opts.config;
    this.log = (opts.logger ?? silentLogger).child({ thing: opts.config.thingName });
    this.timers = opts.timers ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.state = new StateStore(this.cfg.stateDir, this.cfg.currentVersion ?? '0');
    this.hooks = {
      ...commandHooks(this.cfg, this.timers),
      ...(this.cfg.slots ? slotHooks(this.cfg.slots) : {}),
      ...opts.hooks,
    };
    this.trustedKeys = this.cfg.trustedKeys.map(publicKeyFromPem);
    this.summary = {
      thingName: this.cfg.thingName,
      jobs: [],
      jobsProcessed: 0,
      messagesPublished: 0,
      progressMessages: 0,
      statusDetailsUpdates: 0,
      messagesReceived: 0,
      currentVersion: '0',
    };
    if (opts.signal) {
      if (opts.signal.aborted) this.requestStop();
      else
        opts.signal.addEventListener('abort', () => this.requestStop(), {
          once: true,
          signal: this.stopAc.signal,
        });
    }
  }

  get connectionState(): ConnectionState {
    return this.link?.jobs.state ?? 'idle';
  }

  private emit(e: AgentEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'onEvent handler threw');
    }
  }

  private write(text: string): void {
    this.opts.output?.write(text);
  }

  requestStop(): void {
    if (this.stopAc.signal.aborted) return;
    this.stopAc.abort(new AbortedError('agent stopped'));
    this.current?.ac.abort(new AbortedError('agent stopped'));
    this.wake();
  }

  private wake(): void {
    this.wakeFlag = true;
    const r = this.wakeResolve;
    this.wakeResolve = undefined;
    r?.();
  }

  private waitWake(): Promise<void> {
    if (this.wakeFlag || this.stopAc.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.wakeResolve = resolve;
    });
  }

  async run(): Promise<AgentSummary> {
    try {
      const c = this.cfg;
      const pems = {
        cert: readPem(c.cert, 'cert'),
        key: readPem(c.key, 'key'),
        ...(c.rootCa ? { ca: readPem(c.rootCa, 'rootCa') } : {}),
      };
      checkCertificate(c, pems);
      this.sources = new SourceFactory(c, pems, this.timers);
      const state = await this.state.load();
      this.noteWaitingInstall(state);
      this.summary.currentVersion = this.state.currentVersion;
      if (state.inFlight) {
        this.log.info(
          { inFlight: state.inFlight },
          'a download was in flight before the restart; start-next will resume it',
        );
      }
      const link = this.openLink(pems);
      const jobs = link.jobs;
      await link.connect(this.stopped());
      if (this.stopAc.signal.aborted) return this.summary;
      if (c.mode === 'subscribe') {
        this.log.info(`${link.connectedTo}; printing what ${c.topic} carries`);
        await this.stopped();
        return this.summary;
      }
      await this.loop(jobs);
      return this.summary;
    } finally {
      this.summary.messagesPublished = this.link?.jobs.published ?? 0;
      this.summary.currentVersion = this.state.currentVersion;
      await this.link?.jobs.close().catch(() => {});
      this.sources?.close();
      this.stopAc.abort();
    }
  }

  /**
   * With an install waiting for its commit, says so. The boot attempt is counted when its self-test
   * starts (steps/device.ts, reboot), so starts without network do not use up `--max-boot-attempts`.
   */
  private noteWaitingInstall(state: Readonly<AgentState>): void {
    const p = state.pending;
    if (!p) return;
    this.log.info(
      { jobId: p.jobId, version: p.toVersion, bootAttempts: p.bootAttempts, phase: p.phase ?? 'installed' },
      'an install is waiting for its self-test and commit',
    );
  }

  private openLink(pems: { ca?: string; cert: string; key: string }): AgentLink {
    this.link = new AgentLink({
      config: this.cfg,
      pems,
      timers: this.timers,
      random: this.random,
      logger: this.log,
      events: {
        onMessage: (topic, payload) => this.onMessage(topic, payload),
        onNotifyNext: (msg) => this.onNotifyNext(msg),
        onReady: (resumed) => {
          this.emit({ type: 'ready', resumed });
          if (!resumed) return;
          this.saidWaiting = false;
          this.wake(); // notifications may have been missed while offline
        },
        onStateChange: (state) => this.emit({ type: 'connection', state }),
        onProblem: (problem) => this.emit({ type: 'error', error: `mqtt: ${problem.message}` }),
      },
    });
    return this.link;
  }

  private stopped(): Promise<void> {
    const s = this.stopAc.signal;
    if (s.aborted) return Promise.resolve();
    return new Promise((resolve) => s.addEventListener('abort', () => resolve(), { once: true }));
  }

  private async loop(jobs: JobsClient): Promise<void> {
    let failures = 0;
    while (!this.stopAc.signal.aborted) {
      await this.waitWake();
      if (this.stopAc.signal.aborted) break;
      this.wakeFlag = false;
      let ctx: JobContext;
      try {
        ctx = await this.runOne(jobs);
        failures = 0;
      } catch (err) {
        // start-next itself failed (no job taken): back off and ask again.
        if (this.stopAc.signal.aborted) break;
        if (this.cfg.once) throw err;
        const delay = backoffDelay(failures++, 1000, 60_000, this.random);
        this.log.warn({ err: errorMessage(err), delay }, 'start-next failed; retrying');
        this.emit({ type: 'error', error: errorMessage(err) });
        await sleep(delay, { signal: this.stopAc.signal, clock: this.timers, onAbort: 'resolve' });
        this.wakeFlag = true;
        continue;
      }
      if (ctx.end === 'idle') {
        this.emit({ type: 'idle' });
        if (this.cfg.once) break;
        if (!this.saidWaiting) this.log.info(`${this.link?.connectedTo}; waiting for jobs`);
        this.saidWaiting = true;
        continue; // wait for notify-next
      }
      this.saidWaiting = false;
      this.record(ctx.summary);
      if (ctx.end === 'rebooting') {
        // The device is going down; the agent that starts after it finishes the job.
        this.requestStop();
        break;
      }
      this.wakeFlag = true; // go on to the next job
    }
  }

  /** One pass of the pipeline: start-next, and the job it returns (if any) through to report. */
  private async runOne(jobs: JobsClient): Promise<JobContext> {
    const ctx = newJobContext(this.state.currentVersion, this.timers.now());
    const ac = new AbortController();
    this.current = { ctx, ac };
    const signal = AbortSignal.any([ac.signal, this.stopAc.signal]);
    const env = this.jobEnv(ctx, jobs, ac, signal);
    try {
      await runPipeline(OTA_PIPELINE, ctx, env, this.stepHooks());
    } catch (err) {
      if (!ctx.execution) throw err;
      // The report itself failed (the connection is gone, the service refused): log it, go on.
      this.log.error({ jobId: ctx.jobId, err: errorMessage(err) }, 'could not report the job result');
      this.emit({ type: 'error', error: `report ${ctx.jobId}: ${errorMessage(err)}` });
    } finally {
      this.current = undefined;
    }
    return ctx;
  }

  private jobEnv(ctx: JobContext, jobs: JobsClient, ac: AbortController, signal: AbortSignal): StepEnv {
    const cfg = this.cfg;
    const progress = new JobProgress({
      channel: jobs,
      thingName: cfg.thingName,
      topic: cfg.topic,
      ...(cfg.tz !== undefined ? { timeZone: cfg.tz } : {}),
      progressIntervalMs: cfg.progressIntervalMs,
      statusDetailsIntervalMs: statusDetailsInterval(cfg),
      finalTimeoutMs: cfg.requestTimeoutMs,
      timers: this.timers,
      subject: () => ({
        jobId: ctx.jobId,
        startedAt: ctx.startedAt,
        ...(ctx.document ? { version: ctx.document.version } : {}),
        ...(ctx.source ? { firmwareName: ctx.source.firmwareName, fileName: ctx.source.fileName } : {}),
      }),
      onMessage: (m) => {
        if (cfg.mode === 'publish') this.write(publishedLine(cfg.topic, m.message));
        this.emit({ type: 'progress', jobId: ctx.jobId, ...m });
      },
      onJobGone: (reason) => ac.abort(reason),
    });
    return {
      config: cfg,
      // start-next adds the jobId once it is known.
      logger: this.log,
      write: (t) => this.write(t),
      signal,
      stopSignal: this.stopAc.signal,
      jobs,
      openSource: (src) => (this.sources as SourceFactory).open(src),
      progress,
      state: this.state,
      timers: this.timers,
      invalidJobIds: this.invalidJobIds,
      hooks: this.hooks,
      trustedKeys: this.trustedKeys,
      onHookOutput: (hook, line, stream) =>
        this.emit({ type: 'hook-output', jobId: ctx.jobId, hook, stream, line }),
    };
  }

  private stepHooks(): StepHooks {
    // start-next's events carry no jobId: the job is not known when it starts.
    const jobIdOf = (step: StepName, ctx: JobContext) =>
      step === 'start-next' || !ctx.jobId ? {} : { jobId: ctx.jobId };
    return {
      onStepStart: (step, ctx) => this.emit({ type: 'step-start', ...jobIdOf(step, ctx), step }),
      onStepEnd: (step, ms, err, ctx) =>
        this.emit({
          type: 'step-end',
          ...jobIdOf(step, ctx),
          step,
          ms,
          ...(err !== undefined ? { error: errorMessage(err) } : {}),
        }),
    };
  }

  private record(job: JobSummary): void {
    this.summary.jobsProcessed++;
    this.summary.progressMessages += job.progressMessages;
    this.summary.statusDetailsUpdates += job.statusDetailsUpdates;
    this.summary.currentVersion = this.state.currentVersion;
    this.summary.jobs.push(job);
    if (this.summary.jobs.length > MAX_JOB_HISTORY) this.summary.jobs.shift();
    this.emit({ type: 'job-result', job });
  }

  private onMessage(topic: string, payload: Buffer): void {
    this.summary.messagesReceived++;
    this.write(receivedSection(topic, payload));
    this.emit({ type: 'message', topic, payload: payload.toString('utf8') });
  }

  private onNotifyNext(msg: { timestamp?: number; execution?: JobExecution }): void {
    const next = msg.execution?.jobId;
    const cur = this.current;
    if (cur?.ctx.jobId && next !== cur.ctx.jobId) {
      // The head of the queue is no longer our job: it may have been cancelled, which has no message of
      // its own (docs/protocol.md, Cancellation). Ask the service.
      void this.checkCancelled(cur.ctx.jobId, cur.ac);
    }
    if (next) this.wake(); // queued during a job: the loop picks it up after the current one
  }

  /**
   * Asks the service whether `jobId` is still ours. A job cancelled with force (or deleted) answers
   * TerminalStateReached or ResourceNotFound rather than an execution (AWS ErrorResponse: "a command to
   * describe a job is performed on a job that is in a terminal state"): the step in flight stops at once
   * and the job ends CANCELED, its partial download removed.
   */
  private async checkCancelled(jobId: string, ac: AbortController): Promise<void> {
    try {
      const e = await this.link?.jobs.describe(jobId);
      if (!e || isTerminalExecutionStatus(e.status)) {
        ac.abort(new AbortedError(`job ${jobId} is ${e?.status ?? 'gone'}`));
      }
    } catch (err) {
      if (err instanceof JobsRequestError && err.executionGone) {
        ac.abort(new AbortedError(`job ${jobId} is over (${err.message})`));
      }
      // A terminal execution (TIMED_OUT by the step timer while the download hung) is refused this way.
      if (err instanceof JobsRequestError && err.jobsCode === 'TerminalStateReached') {
        ac.abort(new AbortedError(err.message));
      }
    }
  }
}
