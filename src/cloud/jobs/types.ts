/**
 * The contract of the local Jobs service: the records it keeps and the operations the control plane
 * (src/cloud/control-plane) calls. The Jobs MQTT API (device side of the service) lives beside it in
 * this folder. Names and shapes follow AWS IoT's control-plane API (@aws-sdk/client-iot) so that the HTTP
 * facade is a thin mapping. Times are epoch milliseconds inside; the wire layers convert (MQTT replies use
 * seconds, docs/protocol.md, Wire format; the REST API uses epoch seconds as JSON numbers).
 */

import {
  EXECUTION_STATUSES,
  type ExecutionStatusName,
  isTerminalExecutionStatus,
} from '../../shared/execution-status.ts';

/** Every execution status, in AWS's documentation order (one list for the stack and the dashboard). */
export { EXECUTION_STATUSES };
export type ExecutionStatus = ExecutionStatusName;

export const TERMINAL_EXECUTION_STATUSES: readonly ExecutionStatus[] =
  EXECUTION_STATUSES.filter(isTerminalExecutionStatus);

/** SCHEDULED: a `schedulingConfig.startTime` still in the future (AWS "Job states"). */
export type JobStatus = 'IN_PROGRESS' | 'CANCELED' | 'COMPLETED' | 'DELETION_IN_PROGRESS' | 'SCHEDULED';
export type TargetSelection = 'SNAPSHOT' | 'CONTINUOUS';

export interface PresignedUrlConfig {
  roleArn?: string;
  /** 60–3600, default 3600 (docs/protocol.md, Presigned URL placeholders). */
  expiresInSec?: number;
}

export interface TimeoutConfig {
  /** 1 min – 7 days (docs/protocol.md, Timeouts). */
  inProgressTimeoutInMinutes?: number;
}

// ---- Job configurations (AWS IoT developer guide, "Job configurations"; API reference shapes) ----

/** RateIncreaseCriteria: raise the rate each time this many more things were notified / succeeded. */
export interface RateIncreaseCriteria {
  numberOfNotifiedThings?: number;
  numberOfSucceededThings?: number;
}

/** ExponentialRolloutRate: baseRatePerMinute 1–1000, incrementFactor 1.1–5 (one decimal). */
export interface ExponentialRolloutRate {
  baseRatePerMinute: number;
  incrementFactor: number;
  rateIncreaseCriteria: RateIncreaseCriteria;
}

/** JobExecutionsRolloutConfig: maximumPerMinute 1–1000, or an exponential rate. */
export interface JobExecutionsRolloutConfig {
  maximumPerMinute?: number;
  exponentialRate?: ExponentialRolloutRate;
}

export type JobExecutionFailureType = 'FAILED' | 'REJECTED' | 'TIMED_OUT' | 'ALL';

/** AbortCriteria: action CANCEL; thresholdPercentage ≤ 100 (two decimals); minNumberOfExecutedThings ≥ 1. */
export interface AbortCriteria {
  failureType: JobExecutionFailureType;
  action: 'CANCEL';
  thresholdPercentage: number;
  minNumberOfExecutedThings: number;
}

export interface AbortConfig {
  criteriaList: AbortCriteria[];
}

export type RetryableFailureType = 'FAILED' | 'TIMED_OUT' | 'ALL';

/** RetryCriteria: numberOfRetries 0–10 (10 at most for a device across both failure types). */
export interface RetryCriteria {
  failureType: RetryableFailureType;
  numberOfRetries: number;
}

export interface JobExecutionsRetryConfig {
  criteriaList: RetryCriteria[];
}

export type JobEndBehavior = 'STOP_ROLLOUT' | 'CANCEL' | 'FORCE_CANCEL';

/** A recurring window (`cron(...)` start, 1–1430 minutes) in which the rollout may notify things. */
export interface MaintenanceWindow {
  startTime: string;
  durationInMinutes: number;
}

/** SchedulingConfig: times as given (ISO 8601 / YYYY-MM-DDTHH:MM, UTC). */
export interface SchedulingConfig {
  startTime?: string;
  endTime?: string;
  endBehavior?: JobEndBehavior;
  maintenanceWindows?: MaintenanceWindow[];
}

/** The configurations a job and a job template share. */
export interface JobConfigs {
  presignedUrlConfig?: PresignedUrlConfig;
  timeoutConfig?: TimeoutConfig;
  jobExecutionsRolloutConfig?: JobExecutionsRolloutConfig;
  abortConfig?: AbortConfig;
  jobExecutionsRetryConfig?: JobExecutionsRetryConfig;
}

/**
 * Where a job's rollout stands (local state, not an AWS shape): the rate now in force, how far the
 * current minute got, and whether the rollout has ended (all targets notified, endTime, abort, cancel).
 */
export interface RolloutState {
  /** Executions per (scaled) minute now in force; 0 when the job has no rollout pacing. */
  ratePerMinute: number;
  /** Exponential rate: how many increases have happened. */
  level: number;
  /** Start of the minute the counters below belong to. */
  minuteStart: number;
  releasedThisMinute: number;
  ended: boolean;
  /** Why the rollout ended early, if it did. */
  endReason?: 'END_TIME' | 'ABORTED' | 'CANCELED';
}

/** The rollout as a dashboard or `ota job describe` shows it (JobsControlPlane.describeJob). */
export interface RolloutStatus {
  ratePerMinute: number | undefined;
  /** Targets not notified yet (no execution yet). */
  waiting: number;
  /** Things notified so far (things with an execution of the job). */
  notified: number;
  ended: boolean;
  endReason?: RolloutState['endReason'];
  /** In a maintenance window now (always true without windows). */
  inWindow: boolean;
  /** Start times (ISO) of the next maintenance windows, at most seven (AWS `scheduledJobRollouts`). */
  nextWindows: string[];
}

export interface JobRecord {
  jobId: string;
  jobArn: string;
  /** Thing or thing-group ARNs, as given to CreateJob. */
  targets: string[];
  targetSelection: TargetSelection;
  /** The job document as stored: raw JSON text, placeholders unreplaced. */
  document: string;
  documentSource?: string;
  description?: string;
  status: JobStatus;
  presignedUrlConfig?: PresignedUrlConfig;
  timeoutConfig?: TimeoutConfig;
  jobExecutionsRolloutConfig?: JobExecutionsRolloutConfig;
  abortConfig?: AbortConfig;
  jobExecutionsRetryConfig?: JobExecutionsRetryConfig;
  schedulingConfig?: SchedulingConfig;
  jobTemplateArn?: string;
  forceCanceled?: boolean;
  comment?: string;
  reasonCode?: string;
  createdAt: number;
  lastUpdatedAt: number;
  completedAt?: number;
  rollout?: RolloutState;
}

export interface JobTemplateRecord extends JobConfigs {
  jobTemplateId: string;
  jobTemplateArn: string;
  description: string;
  document?: string;
  documentSource?: string;
  maintenanceWindows?: MaintenanceWindow[];
  createdAt: number;
}

export interface JobProcessDetails {
  numberOfQueuedThings: number;
  numberOfInProgressThings: number;
  numberOfSucceededThings: number;
  numberOfFailedThings: number;
  numberOfRejectedThings: number;
  numberOfCanceledThings: number;
  numberOfTimedOutThings: number;
  numberOfRemovedThings: number;
}

export interface ExecutionRecord {
  jobId: string;
  thingName: string;
  executionNumber: number;
  status: ExecutionStatus;
  statusDetails: Record<string, string>;
  queuedAt: number;
  startedAt?: number;
  lastUpdatedAt: number;
  /** Increases on every update (docs/protocol.md, Data types). */
  versionNumber: number;
  /** 0 for the first attempt; n for the n-th retry (jobExecutionsRetryConfig). */
  retryAttempt: number;
  forceCanceled?: boolean;
  /** When the step timer (stepTimeoutInMinutes) fires, if set. */
  stepTimeoutAt?: number;
  /** When the in-progress timer (timeoutConfig) fires, if started. */
  inProgressTimeoutAt?: number;
}

export interface ThingRecord {
  thingName: string;
  thingArn: string;
  thingId: string;
  attributes: Record<string, string>;
  version: number;
  createdAt: number;
}

export interface ThingGroupRecord {
  thingGroupName: string;
  thingGroupArn: string;
  thingGroupId: string;
  description?: string;
  version: number;
  createdAt: number;
}

export interface Page<T> {
  items: T[];
  nextToken?: string;
}

export interface PageRequest {
  maxResults?: number;
  nextToken?: string;
}

export interface CreateJobInput extends JobConfigs {
  jobId: string;
  targets: string[];
  document?: string;
  documentSource?: string;
  description?: string;
  targetSelection?: TargetSelection;
  schedulingConfig?: SchedulingConfig;
  /** The job takes the template's document and configurations; the input's own ones win. */
  jobTemplateArn?: string;
}

export interface CreateJobTemplateInput extends JobConfigs {
  jobTemplateId: string;
  description: string;
  document?: string;
  documentSource?: string;
  /** Copy the document and configurations of this job. */
  jobArn?: string;
  maintenanceWindows?: MaintenanceWindow[];
}

/** The control plane's one error class (api-error.ts), re-exported for the service's modules. */
export { ControlPlaneError, type ControlPlaneErrorCode } from '../control-plane/api-error.ts';

/**
 * What the control plane may ask of the Jobs service. Every method validates its input (AWS's patterns
 * and limits, naming the field) and throws ControlPlaneError on refusal.
 */
export interface JobsControlPlane {
  createThing(input: { thingName: string; attributes?: Record<string, string> }): ThingRecord;
  describeThing(thingName: string): ThingRecord;
  listThings(page: PageRequest): Page<ThingRecord>;

  createThingGroup(input: { thingGroupName: string; description?: string }): ThingGroupRecord;
  describeThingGroup(thingGroupName: string): ThingGroupRecord;
  /** Adding a thing to a group that a CONTINUOUS job targets queues that job for the thing. */
  addThingToThingGroup(input: { thingGroupName: string; thingName: string }): void;
  listThingsInThingGroup(thingGroupName: string, page: PageRequest): Page<string>;

  /**
   * Creates a job from `document`. A `documentSource` cannot be read synchronously: createJob refuses it
   * (InvalidRequestException) and createJobAsync below resolves it.
   */
  createJob(input: CreateJobInput): JobRecord;
  /**
   * Like createJob, but a `documentSource` (an S3 URL) is fetched first with the service's
   * `fetchDocument` option; without that option documentSource is refused (InvalidRequestException).
   */
  createJobAsync(input: CreateJobInput): Promise<JobRecord>;
  /** The job, its counts per status (latest execution of each thing) and where its rollout stands. */
  describeJob(jobId: string): { job: JobRecord; processDetails: JobProcessDetails; rollout: RolloutStatus };
  /** The stored document, placeholders unreplaced (docs/protocol.md, Presigned URL placeholders). */
  getJobDocument(jobId: string): string;
  listJobs(
    filter: { status?: JobStatus; targetSelection?: TargetSelection },
    page: PageRequest,
  ): Page<JobRecord>;
  listJobExecutionsForJob(
    jobId: string,
    filter: { status?: ExecutionStatus },
    page: PageRequest,
  ): Page<ExecutionRecord>;
  listJobExecutionsForThing(
    thingName: string,
    filter: { status?: ExecutionStatus; jobId?: string },
    page: PageRequest,
  ): Page<ExecutionRecord>;
  describeJobExecution(jobId: string, thingName: string, executionNumber?: number): ExecutionRecord;
  /** Cancels QUEUED executions; IN_PROGRESS ones only with force (docs/protocol.md, Cancellation). */
  cancelJob(jobId: string, options: { force?: boolean; comment?: string; reasonCode?: string }): JobRecord;
  cancelJobExecution(
    jobId: string,
    thingName: string,
    options: { force?: boolean; expectedVersion?: number; statusDetails?: Record<string, string> },
  ): void;
  deleteJob(jobId: string, options: { force?: boolean }): void;

  /** Executions of a CONTINUOUS job on the thing become REMOVED when no target holds it any more. */
  removeThingFromThingGroup(input: { thingGroupName: string; thingName: string }): void;
  /**
   * AWS DeleteThing: a thing that does not exist is no error; `expectedVersion` must match. The thing's
   * pending executions become REMOVED and it leaves its groups.
   */
  deleteThing(thingName: string, options: { expectedVersion?: number }): void;

  createJobTemplate(input: CreateJobTemplateInput): JobTemplateRecord;
  /** Like createJobTemplate, but a `documentSource` is fetched first (see createJobAsync). */
  createJobTemplateAsync(input: CreateJobTemplateInput): Promise<JobTemplateRecord>;
  describeJobTemplate(jobTemplateId: string): JobTemplateRecord;
  listJobTemplates(page: PageRequest): Page<JobTemplateRecord>;
  deleteJobTemplate(jobTemplateId: string): void;
}
