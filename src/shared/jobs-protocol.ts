/**
 * Error codes of the AWS IoT Jobs MQTT API (developer guide, "Jobs device MQTT API operations",
 * ErrorResponse; docs/protocol.md, Error replies). Shared wire contract of the Jobs service and the device
 * agent.
 */
export type JobsMqttErrorCode =
  | 'InvalidTopic'
  | 'InvalidJson'
  | 'InvalidRequest'
  | 'InvalidStateTransition'
  | 'ResourceNotFound'
  | 'VersionMismatch'
  | 'InternalError'
  | 'RequestThrottled'
  | 'TerminalStateReached';

/** reasonCode the Jobs service puts on a job cancelled by its abortConfig (DescribeJob). */
export const ABORT_REASON_CODE = 'ABORT_CRITERIA_MET';

/** AWS's ceiling for a rollout rate (maximumPerMinute and baseRatePerMinute: 1–1000). */
export const MAX_ROLLOUT_RATE = 1000;

/** The members of JobExecutionsRolloutConfig that decide the rate (AWS API reference). */
export interface RolloutRateConfig {
  maximumPerMinute?: number | undefined;
  exponentialRate?:
    | {
        baseRatePerMinute?: number | undefined;
        incrementFactor?: number | undefined;
        rateIncreaseCriteria?:
          | { numberOfNotifiedThings?: number | undefined; numberOfSucceededThings?: number | undefined }
          | undefined;
      }
    | undefined;
}

/**
 * The rollout rate in force (AWS developer guide, "Job rollout rates"): maximumPerMinute, or the
 * exponential rate — baseRatePerMinute × incrementFactor for each full numberOfNotifiedThings notified
 * or numberOfSucceededThings succeeded (50, 100, 200, 400 … for a base of 50 and a factor of 2), capped
 * by maximumPerMinute when both are given. `level` counts the increases. The service paces with it; an
 * operator tool computes the same figure from DescribeJob.
 */
export function rolloutRate(
  cfg: RolloutRateConfig,
  progress: { notified: number; succeeded: number },
): { rate: number; level: number } {
  const cap = Math.min(cfg.maximumPerMinute ?? MAX_ROLLOUT_RATE, MAX_ROLLOUT_RATE);
  const exp = cfg.exponentialRate;
  if (exp?.baseRatePerMinute === undefined || exp.incrementFactor === undefined)
    return { rate: cap, level: 0 };
  const byNotified = exp.rateIncreaseCriteria?.numberOfNotifiedThings;
  const bySucceeded = exp.rateIncreaseCriteria?.numberOfSucceededThings;
  const level = Math.max(
    byNotified === undefined ? 0 : Math.floor(progress.notified / byNotified),
    bySucceeded === undefined ? 0 : Math.floor(progress.succeeded / bySucceeded),
  );
  const rate = Math.floor(exp.baseRatePerMinute * exp.incrementFactor ** Math.min(level, 100));
  return { rate: Math.max(1, Math.min(rate, cap)), level };
}

// The device's view of the Jobs MQTT API's replies (what src/device/link/jobs-client.ts reads).

/** A job execution as the Jobs MQTT API sends it (docs/protocol.md, Data types: JobExecution). */
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

/** A pending execution as GetPendingJobExecutions lists it (docs/protocol.md, Data types). */
export interface JobExecutionSummary {
  jobId: string;
  queuedAt?: number;
  startedAt?: number;
  lastUpdatedAt?: number;
  versionNumber?: number;
  executionNumber?: number;
}

export interface PendingExecutions {
  inProgressJobs: JobExecutionSummary[];
  queuedJobs: JobExecutionSummary[];
}
