import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { AbortedError, errorMessage } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { localS3ClientConfig } from '../shared/s3-client-config.ts';
import { type AgentConfig, readPem } from './config.ts';
import { iotCredentialsProvider } from './credentials.ts';
import {
  backoffDelay,
  type DownloadSource,
  HttpSource,
  type S3Presigner,
  S3Source,
  sdkPresigner,
} from './download.ts';
import { JobRejectedError, JobsRequestError } from './errors.ts';
import type { ResolvedSource } from './job-document.ts';
import { type ConnectionState, type JobExecution, JobsClient } from './jobs-client.ts';
import { type JobContext, OTA_STEPS, runSteps, type StepEnv, type StepName } from './pipeline.ts';
import {
  buildProgressMessage,
  type Clock,
  formatPercent,
  ProgressThrottle,
  pythonJsonDumps,
  sanitizeStatusDetails,
} from './progress.ts';
import { publishedLine, receivedSection } from './sections.ts';
import { pathStyleObjectUrl, presignGet } from './sigv4.ts';
import { readState, writeState } from './state.ts';

export type JobOutcome = 'SUCCEEDED' | 'FAILED' | 'REJECTED' | 'CANCELED' | 'INTERRUPTED';

export interface JobSummary {
  jobId: string;
  status: JobOutcome;
  reason?: string;
  version?: string;
  fileName?: string;
  /** How the firmware was fetched: S3 GetObject or a plain HTTP(S) GET (presigned URL). */
  sourceKind?: 's3' | 'http';
  path?: string;
  bytes: number;
  sha256?: string;
  /** Download seconds: first byte requested → file renamed. */
  seconds?: number;
  /** Epoch ms: first request of the download, and the atomic rename. */
  downloadStartedAt?: number;
  renamedAt?: number;
  resumedFrom?: number;
  requests?: number;
  progressMessages: number;
  statusDetailsUpdates: number;
}

export interface AgentSummary {
  thingName: string;
  /** The most recent jobs (at most 100, oldest dropped), in processing order. */
  jobs: JobSummary[];
  jobsProcessed: number;
  /** Every MQTT publish the agent made (requests, progress, status updates). */
  messagesPublished: number;
  progressMessages: number;
  statusDetailsUpdates: number;
  messagesReceived: number;
  currentVersion: string;
}

export type AgentEvent =
  | { type: 'connection'; state: ConnectionState }
  | { type: 'ready'; resumed: boolean }
  | { type: 'step-start'; jobId?: string; step: StepName }
  | { type: 'step-end'; jobId?: string; step: StepName; ms: number; error?: string }
  | { type: 'progress'; jobId: string; bytes: number; total: number; final: boolean; message: string }
  | { type: 'job-result'; job: JobSummary }
  | { type: 'idle' }
  | { type: 'message'; topic: string; payload: string }
  | { type: 'error'; error: string };

export interface AgentOptions {
  config: AgentConfig;
  /** Where the original's console sections go (never the console by default). */
  output?: NodeJS.WritableStream;
  logger?: Logger;
  signal?: AbortSignal;
  onEvent?: (e: AgentEvent) => void;
  /** Install hook, after verify (default: none). Throwing fails the job. */
  install?: (ctx: JobContext & { path: string }) => Promise<void>;
  clock?: Clock;
  random?: () => number;
}

export interface AgentHandle {
  /** Resolves when the agent stops (stop(), signal, or `once` with no more jobs). */
  done: Promise<AgentSummary>;
  /** Stops; a download in flight is interrupted (its `.part` kept, the job left IN_PROGRESS to resume). */
  stop(): Promise<void>;
  readonly connectionState: ConnectionState;
}

const MAX_JOB_HISTORY = 100;

/**
 * The device agent: connects as the thing, takes jobs one at a time (start-next at start-up, after each
 * job, on notify-next naming an execution and after a reconnect), runs the OTA steps and reports.
 * Everything lives in this closure: no module state, no process listeners, so a fleet simulator can run
 * hundreds in one process.
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
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly stopAc = new AbortController();
  private readonly s3Signers = new Map<string, S3Presigner>();
  private readonly s3Clients: S3Client[] = [];
  private credentials:
    | (() => Promise<{
        accessKeyId: string;
        secretAccessKey: string;
        sessionToken: string;
        expiration: Date;
      }>)
    | undefined;
  private jobs: JobsClient | undefined;
  private wakeFlag = true;
  private wakeResolve: (() => void) | undefined;
  private current: { jobId: string; ac: AbortController } | undefined;
  private currentVersion = '0';
  private readonly summary: AgentSummary;
  private pems: { ca?: string; cert: string; key: string } | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.cfg = opts.config;
    this.log = (opts.logger ?? silentLogger).child({ thing: opts.config.thingName });
    this.clock = opts.clock ?? Date.now;
    this.random = opts.random ?? Math.random;
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
    return this.jobs?.state ?? 'idle';
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
      this.pems = {
        cert: readPem(c.cert, 'cert'),
        key: readPem(c.key, 'key'),
        ...(c.rootCa ? { ca: readPem(c.rootCa, 'rootCa') } : {}),
      };
      const state = await readState(c.stateDir);
      this.currentVersion = state.currentVersion ?? c.currentVersion ?? '0';
      this.summary.currentVersion = this.currentVersion;
      if (state.inFlight) {
        this.log.info(
          { inFlight: state.inFlight },
          'a download was in flight before the restart; start-next will resume it',
        );
      }
      const subscribe = c.mode === 'subscribe' || c.mode === 'both';
      const jobs = new JobsClient({
        host: c.endpoint,
        port: c.port,
        ...this.pems,
        clientId: c.clientId,
        thingName: c.thingName,
        keepaliveSec: c.keepaliveSec,
        requestTimeoutMs: c.requestTimeoutMs,
        random: this.random,
        logger: this.log,
        ...(subscribe ? { extraSubscriptions: [c.topic] } : {}),
        onMessage: (topic, payload) => this.onMessage(topic, payload),
        onNotifyNext: (msg) => this.onNotifyNext(msg),
        onReady: ({ resumed }) => {
          this.emit({ type: 'ready', resumed });
          if (resumed) this.wake(); // notifications may have been missed while offline
        },
        onStateChange: (state) => this.emit({ type: 'connection', state }),
        onError: (err) => this.emit({ type: 'error', error: `mqtt: ${err.message}` }),
      });
      this.jobs = jobs;
      await Promise.race([jobs.start(), this.stopped()]);
      if (this.stopAc.signal.aborted) return this.summary;
      if (c.mode === 'subscribe') {
        await this.stopped();
        return this.summary;
      }
      await this.loop(jobs);
      return this.summary;
    } finally {
      this.summary.messagesPublished = this.jobs?.published ?? 0;
      await this.jobs?.close().catch(() => {});
      for (const s3 of this.s3Clients) s3.destroy();
      this.s3Clients.length = 0;
      this.s3Signers.clear();
      this.stopAc.abort();
    }
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
      let exec: JobExecution | undefined;
      const t0 = this.clock();
      this.emit({ type: 'step-start', step: 'start-next' });
      try {
        exec = await jobs.startNext();
        this.emit({ type: 'step-end', step: 'start-next', ms: this.clock() - t0 });
        failures = 0;
      } catch (err) {
        this.emit({ type: 'step-end', step: 'start-next', ms: this.clock() - t0, error: errorMessage(err) });
        if (this.stopAc.signal.aborted) break;
        if (this.cfg.once) throw err;
        const delay = backoffDelay(failures++, 1000, 60_000, this.random);
        this.log.warn({ err: errorMessage(err), delay }, 'start-next failed; retrying');
        this.emit({ type: 'error', error: errorMessage(err) });
        await sleep(delay, this.stopAc.signal);
        this.wakeFlag = true;
        continue;
      }
      if (!exec) {
        this.emit({ type: 'idle' });
        if (this.cfg.once) break;
        continue; // wait for notify-next
      }
      await this.runJob(jobs, exec);
      this.wakeFlag = true; // go on to the next job
    }
  }

  private onMessage(topic: string, payload: Buffer): void {
    this.summary.messagesReceived++;
    this.write(receivedSection(topic, payload));
    this.emit({ type: 'message', topic, payload: payload.toString('utf8') });
  }

  private onNotifyNext(msg: { timestamp?: number; execution?: JobExecution }): void {
    const next = msg.execution?.jobId;
    const cur = this.current;
    if (cur && next !== cur.jobId) {
      // The head of the queue is no longer our job: it may have been cancelled (reference section 2,
      // "Cancellation/removal has no dedicated message"). Ask the service.
      void this.checkCancelled(cur.jobId, cur.ac);
    }
    if (next) this.wake(); // queued during a job: the loop picks it up after the current one
  }

  private async checkCancelled(jobId: string, ac: AbortController): Promise<void> {
    try {
      const e = await this.jobs?.describe(jobId);
      if (!e || ['CANCELED', 'REMOVED', 'TIMED_OUT', 'FAILED', 'SUCCEEDED', 'REJECTED'].includes(e.status)) {
        ac.abort(new AbortedError(`job ${jobId} is ${e?.status ?? 'gone'}`));
      }
    } catch (err) {
      if (err instanceof JobsRequestError && err.jobsCode === 'ResourceNotFound') {
        ac.abort(new AbortedError(`job ${jobId} no longer exists`));
      }
    }
  }

  /**
   * How GetObject URLs are presigned. With a custom S3 endpoint (the local stack, path-style like
   * localS3ClientConfig) and explicit credentials (static keys or the IoT credentials provider), the agent
   * signs itself (src/device/sigv4.ts, checked against the SDK's presigner by a unit test) and never loads
   * @aws-sdk/client-s3 (~14 MiB RSS, ~0.1 s CPU at start-up). Against AWS, or with the default credential
   * chain, the SDK's client does it (endpoint rules: virtual-hosted vs path-style, partitions, FIPS; the
   * chain's providers), loaded on the first S3 job only.
   */
  private s3For(src: ResolvedSource): S3Presigner {
    const c = this.cfg;
    const region = (c.s3Endpoint ? c.region : undefined) ?? src.region;
    let signer = this.s3Signers.get(region);
    if (signer) return signer;
    let credentials: (() => Promise<SigningCredentialsLike>) | SigningCredentialsLike | undefined;
    if (c.roleAlias && c.credentialsEndpoint && this.pems) {
      this.credentials ??= iotCredentialsProvider({
        endpoint: c.credentialsEndpoint,
        roleAlias: c.roleAlias,
        thingName: c.thingName,
        ...this.pems,
      });
      credentials = this.credentials;
    } else if (c.s3Credentials) {
      credentials = c.s3Credentials;
    }
    const endpoint = c.s3Endpoint;
    if (endpoint && credentials) {
      const creds = credentials;
      signer = {
        presignGetObject: async (bucket, key, expiresIn) =>
          presignGet({
            url: pathStyleObjectUrl(endpoint, bucket, key),
            region,
            credentials: typeof creds === 'function' ? await creds() : creds,
            expiresIn,
            query: { 'x-id': 'GetObject' },
          }),
      };
    } else {
      let inner: Promise<S3Presigner> | undefined;
      const load = async (): Promise<S3Presigner> => {
        const { S3Client } = await import('@aws-sdk/client-s3');
        let config: S3ClientConfig;
        if (endpoint) {
          // Default chain against a custom endpoint.
          config = localS3ClientConfig(
            endpoint,
            { accessKeyId: 'unused', secretAccessKey: 'unused' },
            region,
          );
          delete config.credentials;
        } else {
          config = { region, ...(credentials ? { credentials } : {}) };
        }
        const client = new S3Client(config);
        this.s3Clients.push(client);
        return sdkPresigner(client);
      };
      signer = {
        presignGetObject: async (bucket, key, expiresIn) => {
          inner ??= load();
          return (await inner).presignGetObject(bucket, key, expiresIn);
        },
      };
    }
    this.s3Signers.set(region, signer);
    return signer;
  }

  private openSource(src: ResolvedSource): DownloadSource {
    // `--local` against `ota dev --s3-tls`: the stack's CA signs its S3 certificate, so it is trusted for
    // downloads too (besides Node's roots). Against AWS no CA is added: the same TLS path, default roots.
    const tls = this.cfg.local && this.pems?.ca ? { ca: this.pems.ca } : {};
    if (src.kind === 's3') return new S3Source(this.s3For(src), src.bucket, src.key, tls);
    return new HttpSource(src.url, tls);
  }

  private async runJob(jobs: JobsClient, exec: JobExecution): Promise<void> {
    let execution = exec;
    if (execution.jobDocument === undefined)
      execution = (await jobs.describe(exec.jobId).catch(() => undefined)) ?? exec;
    const ac = new AbortController();
    this.current = { jobId: exec.jobId, ac };
    const signal = AbortSignal.any([ac.signal, this.stopAc.signal]);
    const ctx: JobContext = {
      execution,
      jobId: exec.jobId,
      currentVersion: this.currentVersion,
      startedAt: this.clock(),
    };
    const summary: JobSummary = {
      jobId: exec.jobId,
      status: 'FAILED',
      bytes: 0,
      progressMessages: 0,
      statusDetailsUpdates: 0,
    };
    const cfg = this.cfg;
    let progress: ProgressThrottle | undefined;
    let statusThrottle: ProgressThrottle | undefined;
    let statusInFlight = false;
    let downloadBase = 0;
    let downloadT0 = 0;
    const lastPublish: Promise<unknown>[] = [];

    let lastDone = 0;
    const publishProgress = (done: number, total: number, final: boolean, outcome?: JobOutcome) => {
      lastDone = done;
      const now = this.clock();
      const elapsed = (now - downloadT0) / 1000;
      const rate = elapsed > 0 ? Math.round((done - downloadBase) / elapsed) : 0;
      const doc = ctx.document;
      const msg = buildProgressMessage({
        cameraId: cfg.thingName,
        startedAt: ctx.startedAt,
        now,
        timeZone: cfg.tz,
        firmwareVersion: ctx.source?.firmwareName ?? doc?.version ?? '',
        firmwareFilename: ctx.source?.fileName ?? '',
        totalSize: total,
        downloaded: done,
        extra: {
          jobId: ctx.jobId,
          version: doc?.version ?? null,
          state: outcome ?? (final ? 'DOWNLOADED' : 'DOWNLOADING'),
          bytesPerSecond: rate,
          etaSeconds: rate > 0 ? Math.ceil((total - done) / rate) : null,
        },
      });
      const json = pythonJsonDumps(msg);
      summary.progressMessages++;
      this.summary.progressMessages++;
      const p = jobs.publish(cfg.topic, json, 1, { waitConnected: final || outcome !== undefined });
      if (final) lastPublish.push(p);
      if (cfg.mode === 'publish') this.write(publishedLine(cfg.topic, json));
      this.emit({ type: 'progress', jobId: ctx.jobId, bytes: done, total, final, message: json });
      return p;
    };

    const publishStatus = (done: number, total: number) => {
      if (statusInFlight) return;
      statusInFlight = true;
      const details = sanitizeStatusDetails({
        step: 'download',
        version: ctx.document?.version,
        progress: `${done}/${total}`,
        percent: formatPercent(done, total),
      });
      jobs
        .update(ctx.jobId, 'IN_PROGRESS', details)
        .then(() => {
          summary.statusDetailsUpdates++;
          this.summary.statusDetailsUpdates++;
        })
        .catch((err: unknown) => {
          if (
            err instanceof JobsRequestError &&
            ['TerminalStateReached', 'InvalidStateTransition', 'ResourceNotFound'].includes(
              String(err.jobsCode),
            )
          ) {
            // Cancelled or timed out by the service: stop working on it (reference section 2).
            ac.abort(new AbortedError(`job ${ctx.jobId}: ${err.jobsCode}`));
          }
        })
        .finally(() => {
          statusInFlight = false;
        });
    };

    const env: StepEnv = {
      config: cfg,
      logger: this.log.child({ jobId: ctx.jobId }),
      write: (t) => this.write(t),
      signal,
      openSource: (src) => this.openSource(src),
      describe: (jobId) => jobs.describe(jobId),
      onDownloadStart: (c, offset) => {
        const doc = c.document;
        if (!doc) return;
        downloadBase = offset;
        downloadT0 = this.clock();
        c.startedAt = downloadT0; // OTA_start_time: the original stamped it right before the download
        summary.downloadStartedAt = Date.now();
        void writeState(cfg.stateDir, {
          currentVersion: this.currentVersion,
          inFlight: {
            jobId: c.jobId,
            fileName: c.source?.fileName ?? '',
            version: doc.version,
            startedAt: new Date().toISOString(),
          },
        }).catch(() => {});
        progress = new ProgressThrottle(cfg.progressIntervalMs, this.clock, publishProgress);
        statusThrottle = new ProgressThrottle(cfg.statusDetailsIntervalMs, this.clock, (d, t) =>
          publishStatus(d, t),
        );
        progress.start(offset, doc.size);
        statusThrottle.start(offset, doc.size);
      },
      onProgress: (_c, done, total) => {
        progress?.update(done, total);
        statusThrottle?.update(done, total);
      },
      onDownloadEnd: (_c, d) => progress?.finish(d.bytes, d.bytes),
      ...(this.opts.install ? { install: this.opts.install } : {}),
    };

    let error: unknown;
    try {
      await runSteps(OTA_STEPS, ctx, env, {
        onStepStart: (step) => this.emit({ type: 'step-start', jobId: ctx.jobId, step }),
        onStepEnd: (step, ms, err) =>
          this.emit({
            type: 'step-end',
            jobId: ctx.jobId,
            step,
            ms,
            ...(err ? { error: errorMessage(err) } : {}),
          }),
      });
    } catch (err) {
      error = err;
    }
    await Promise.allSettled(lastPublish);

    const t0 = this.clock();
    this.emit({ type: 'step-start', jobId: ctx.jobId, step: 'report' });
    try {
      await this.report(jobs, ctx, summary, error, signal, ac.signal);
      this.emit({ type: 'step-end', jobId: ctx.jobId, step: 'report', ms: this.clock() - t0 });
      // One last message on the progress topic with the job's outcome, so a watcher shows the final
      // state (the original's keys stay as they were; `state` is one of our appended fields).
      if (ctx.document && summary.status !== 'INTERRUPTED') {
        const sent = publishProgress(
          ctx.download?.bytes ?? lastDone,
          ctx.document.size,
          true,
          summary.status,
        );
        // Bounded: a broken connection must not hold the next job back.
        await Promise.race([sent, new Promise((r) => setTimeout(r, cfg.requestTimeoutMs).unref())]);
      }
    } catch (err) {
      this.emit({
        type: 'step-end',
        jobId: ctx.jobId,
        step: 'report',
        ms: this.clock() - t0,
        error: errorMessage(err),
      });
      this.log.error({ jobId: ctx.jobId, err: errorMessage(err) }, 'could not report the job result');
      this.emit({ type: 'error', error: `report ${ctx.jobId}: ${errorMessage(err)}` });
    } finally {
      this.current = undefined;
    }
    this.summary.jobsProcessed++;
    this.summary.jobs.push(summary);
    if (this.summary.jobs.length > MAX_JOB_HISTORY) this.summary.jobs.shift();
    this.emit({ type: 'job-result', job: summary });
  }

  /**
   * `report`: SUCCEEDED (after storing the new version), REJECTED for an unacceptable job, FAILED for
   * anything else, with a reason ≤ 1024 chars. A stop of the agent leaves the execution IN_PROGRESS on
   * purpose: the `.part` is kept and start-next returns this execution first after a restart.
   */
  private async report(
    jobs: JobsClient,
    ctx: JobContext,
    summary: JobSummary,
    error: unknown,
    signal: AbortSignal,
    jobSignal: AbortSignal,
  ): Promise<void> {
    const doc = ctx.document;
    if (doc) summary.version = doc.version;
    if (ctx.source) {
      summary.fileName = ctx.source.fileName;
      summary.sourceKind = ctx.source.kind;
    }
    const d = ctx.download;
    if (d) {
      Object.assign(summary, {
        path: d.path,
        bytes: d.bytes,
        sha256: d.sha256,
        seconds: (d.renamedAt - d.startedAt) / 1000,
        renamedAt: d.renamedAt,
        resumedFrom: d.resumedFrom,
        requests: d.requests,
      });
    }
    if (error === undefined && doc && d) {
      this.currentVersion = doc.version;
      this.summary.currentVersion = doc.version;
      await writeState(this.cfg.stateDir, {
        currentVersion: doc.version,
        updatedAt: new Date().toISOString(),
        lastJob: {
          jobId: ctx.jobId,
          status: 'SUCCEEDED',
          version: doc.version,
          at: new Date().toISOString(),
        },
      });
      await jobs.update(
        ctx.jobId,
        'SUCCEEDED',
        sanitizeStatusDetails({
          version: doc.version,
          bytes: d.bytes,
          sha256: d.sha256,
          seconds: ((d.renamedAt - d.startedAt) / 1000).toFixed(3),
        }),
      );
      summary.status = 'SUCCEEDED';
      return;
    }
    if (signal.aborted || error instanceof AbortedError) {
      if (this.stopAc.signal.aborted || !jobSignal.aborted) {
        summary.status = 'INTERRUPTED';
        summary.reason = 'agent stopped; the execution stays IN_PROGRESS and resumes after a restart';
      } else {
        summary.status = 'CANCELED';
        summary.reason = errorMessage(jobSignal.reason ?? error);
      }
      return;
    }
    const reason = errorMessage(error);
    summary.reason = reason;
    // The job ends here (FAILED/REJECTED): nothing is in flight any more.
    const ended = (status: 'FAILED' | 'REJECTED') =>
      writeState(this.cfg.stateDir, {
        currentVersion: this.currentVersion,
        lastJob: { jobId: ctx.jobId, status, at: new Date().toISOString() },
      }).catch(() => {});
    if (error instanceof JobRejectedError) {
      try {
        await jobs.update(
          ctx.jobId,
          'REJECTED',
          sanitizeStatusDetails({
            reason,
            ...(doc ? { version: doc.version, currentVersion: ctx.currentVersion } : {}),
          }),
        );
        summary.status = 'REJECTED';
        await ended('REJECTED');
        return;
      } catch (err) {
        // IN_PROGRESS → REJECTED is UNCONFIRMED on AWS (reference section 2): fall back to FAILED.
        if (!(err instanceof JobsRequestError) || err.jobsCode !== 'InvalidStateTransition') throw err;
      }
    }
    await jobs.update(ctx.jobId, 'FAILED', sanitizeStatusDetails({ reason }));
    summary.status = 'FAILED';
    await ended('FAILED');
  }
}

interface SigningCredentialsLike {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
