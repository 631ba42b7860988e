import type { KeyObject } from 'node:crypto';
import type { Clock } from '../shared/clock.ts';
import type {
  ExecutionState,
  JobExecution,
  PendingExecutions,
  UpdateStatus,
} from '../shared/jobs-protocol.ts';
import type { Logger } from '../shared/log.ts';
import type { AgentConfig } from './config/agent-config.ts';
import type { FirmwareDocument, ResolvedSource } from './document/job-document.ts';
import type { DownloadResult } from './download/download.ts';
import type { DeviceHooks, HookName } from './install/hooks.ts';
import type { PendingCommit, StateStore } from './install/state.ts';
import type { JobProgress } from './progress/reporter.ts';
import type { DownloadSource } from './source/sources.ts';

/**
 * The types every OTA step shares: the job's context (filled in step by step), what steps get from the
 * agent (StepEnv), and the step contract itself. The steps live in src/device/steps/, the pipeline that
 * orders them in src/device/pipeline.ts.
 */

/** Every step of the OTA pipeline, in order; `report` runs last whatever happened. */
export type StepName =
  | 'start-next'
  | 'validate-document'
  | 'print-sections'
  | 'check-version'
  | 'check-device'
  | 'check-signature'
  | 'resolve-source'
  | 'download'
  | 'verify'
  | 'install'
  | 'reboot'
  | 'health'
  | 'commit'
  | 'rollback'
  | 'report';

/**
 * How a job ended, as the agent saw it. INTERRUPTED: the agent stopped; the job resumes after a restart.
 * REBOOTING: the reboot command ran; the job stays IN_PROGRESS and finishes after the restart.
 */
export type JobOutcome = 'SUCCEEDED' | 'FAILED' | 'REJECTED' | 'CANCELED' | 'INTERRUPTED' | 'REBOOTING';

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

export interface JobContext {
  /** '' until start-next returned an execution. */
  jobId: string;
  execution?: JobExecution;
  /** The installed version when the job started (check-version compares against it). */
  currentVersion: string;
  /** Epoch ms the OTA started (OTA_start_time; re-stamped when the download starts, as the original did). */
  startedAt: number;
  document?: FirmwareDocument;
  source?: ResolvedSource;
  download?: DownloadResult;
  /** Set when the pipeline ended early without a failure: no job pending, or the device reboots. */
  end?: 'idle' | 'rebooting';
  /** Entered after a restart with an install waiting for its commit (the resume entry point). */
  resumed?: PendingCommit;
  /** The rollback ran (successfully or not): the reason says so. */
  rollback?: { ok: boolean; error?: string };
  /**
   * The job cannot be reported over MQTT (its jobId is not a valid topic level): it is refused locally
   * and nothing is published about it.
   */
  unreportable?: boolean;
  /**
   * What to undo if a later step fails (remove the downloaded image, roll back an install), pushed by
   * the steps as they succeed and run in reverse order before `report`. Not run when the agent stops:
   * the job then resumes where it was.
   */
  undo: Compensation[];
  /** The error that stopped the pipeline, for `report`. */
  error?: unknown;
  summary: JobSummary;
}

export interface Compensation {
  /** Named for the logs; a compensation with a `step` name is also reported as that step's events. */
  what: string;
  step?: StepName;
  run(cause: unknown): Promise<void>;
}

export function newJobContext(currentVersion: string, now: number): JobContext {
  return {
    jobId: '',
    undo: [],
    currentVersion,
    startedAt: now,
    summary: { jobId: '', status: 'FAILED', bytes: 0, progressMessages: 0, statusDetailsUpdates: 0 },
  };
}

/** The Jobs MQTT API as the steps use it (JobsClient in the agent). */
export interface JobsApi {
  startNext(statusDetails?: Record<string, string>): Promise<JobExecution | undefined>;
  describe(jobId: string): Promise<JobExecution | undefined>;
  /** GetPendingJobExecutions: to move past an execution start-next keeps handing back that cannot be taken. */
  getPending(): Promise<PendingExecutions>;
  update(
    jobId: string,
    status: UpdateStatus,
    statusDetails?: Record<string, string>,
  ): Promise<ExecutionState | undefined>;
}

/** What steps need from the agent. Everything is injected: no globals, so many agents share a process. */
export interface StepEnv {
  config: AgentConfig;
  logger: Logger;
  /** Where the original's console sections go. */
  write: (text: string) => void;
  /** Aborted when the agent stops or the job is cancelled. */
  signal: AbortSignal;
  /** Aborted only when the agent stops (the job then stays IN_PROGRESS, to resume). */
  stopSignal: AbortSignal;
  jobs: JobsApi;
  /** Builds the S3 / HTTP source of a resolved location. */
  openSource: (src: ResolvedSource) => DownloadSource;
  progress: JobProgress;
  state: StateStore;
  timers: Clock;
  /** jobIds already refused as invalid, so a service that keeps handing one back is not a busy loop. */
  invalidJobIds: Set<string>;
  /** install / reboot / health / rollback / commit; none set: download and verify only. */
  hooks: DeviceHooks;
  /** `--trusted-key`s, parsed; empty: signatures are not required. */
  trustedKeys: readonly KeyObject[];
  /** Each line a hook command writes (the log has them too). */
  onHookOutput?: (hook: HookName, line: string, stream: 'stdout' | 'stderr') => void;
}

/** A step may jump (the resume entry), or end the pipeline early without an error. */
export type StepResult = undefined | { goto: StepName } | { end: 'idle' | 'rebooting' };

export interface Step {
  name: StepName;
  run(ctx: JobContext, env: StepEnv): Promise<StepResult | undefined>;
}

export function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`pipeline bug: ${what} not set by an earlier step`);
  return v;
}
