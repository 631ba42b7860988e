/**
 * Job configurations from the operator's side: compact flag syntaxes (`--abort FAILED:20%:min50`,
 * `--retry TIMED_OUT:3`, `--maintenance-window 'cron(0 2 * * ? *),120'`) parsed into AWS's shapes, and
 * the figures `ota job describe` shows (per-status counts, the rollout's rate, the abort state), computed
 * from DescribeJob alone so they read the same against the local stack and AWS IoT.
 */
import type { AbortConfig, Job, JobExecutionsRetryConfig, MaintenanceWindow } from '@aws-sdk/client-iot';
import { ValidationError } from '../shared/errors.ts';
import { ABORT_REASON_CODE, rolloutRate } from '../shared/jobs-protocol.ts';

type AbortCriterion = NonNullable<AbortConfig['criteriaList']>[number];
type RetryCriterion = NonNullable<JobExecutionsRetryConfig['criteriaList']>[number];

const FAILURE_TYPES = ['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL'] as const;
const RETRYABLE = ['FAILED', 'TIMED_OUT', 'ALL'] as const;

/** `FAILED:20%:min50` → { failureType FAILED, thresholdPercentage 20, minNumberOfExecutedThings 50, CANCEL }. */
export function parseAbortCriterion(spec: string): AbortCriterion {
  const m = /^([A-Z_]+):(\d+(?:\.\d{1,2})?)%:min(\d+)$/.exec(spec.trim());
  const type = m?.[1] as (typeof FAILURE_TYPES)[number] | undefined;
  if (m === null || type === undefined || !FAILURE_TYPES.includes(type)) {
    throw new ValidationError(
      'abort',
      `${JSON.stringify(spec)} is not TYPE:PERCENT%:minN (TYPE one of ${FAILURE_TYPES.join(', ')}), e.g. FAILED:20%:min50`,
    );
  }
  return {
    failureType: type,
    action: 'CANCEL',
    thresholdPercentage: Number(m[2]),
    minNumberOfExecutedThings: Number(m[3]),
  };
}

/** `TIMED_OUT:3` → { failureType TIMED_OUT, numberOfRetries 3 }. */
export function parseRetryCriterion(spec: string): RetryCriterion {
  const m = /^([A-Z_]+):(\d+)$/.exec(spec.trim());
  const type = m?.[1] as (typeof RETRYABLE)[number] | undefined;
  if (m === null || type === undefined || !RETRYABLE.includes(type)) {
    throw new ValidationError(
      'retry',
      `${JSON.stringify(spec)} is not TYPE:N (TYPE one of ${RETRYABLE.join(', ')}), e.g. FAILED:3`,
    );
  }
  return { failureType: type, numberOfRetries: Number(m[2]) };
}

/** `cron(0 2 * * ? *),120` → { startTime 'cron(0 2 * * ? *)', durationInMinutes 120 }. */
export function parseMaintenanceWindow(spec: string): MaintenanceWindow {
  const i = spec.lastIndexOf(',');
  const startTime = spec.slice(0, i).trim();
  const minutes = Number(spec.slice(i + 1));
  if (i < 0 || !/^cron\(.+\)$/.test(startTime) || !Number.isInteger(minutes) || minutes < 1) {
    throw new ValidationError(
      'maintenance-window',
      `${JSON.stringify(spec)} is not CRON,MINUTES, e.g. 'cron(0 2 * * ? *),120'`,
    );
  }
  return { startTime, durationInMinutes: minutes };
}

export interface JobFigures {
  counts: Record<string, number>;
  /** Things notified so far (an execution each). */
  notified: number;
  /** Executions per minute now in force; undefined without a rollout configuration. */
  ratePerMinute?: number;
  abort: { state: 'none' } | { state: 'armed'; criteria: string[] } | { state: 'aborted'; reason: string };
}

/** A DescribeJob `job`'s execution counts by status (jobProcessDetails, absent members 0). */
export function executionCounts(job: Job) {
  const p = job.jobProcessDetails ?? {};
  return {
    queued: p.numberOfQueuedThings ?? 0,
    inProgress: p.numberOfInProgressThings ?? 0,
    succeeded: p.numberOfSucceededThings ?? 0,
    failed: p.numberOfFailedThings ?? 0,
    rejected: p.numberOfRejectedThings ?? 0,
    canceled: p.numberOfCanceledThings ?? 0,
    timedOut: p.numberOfTimedOutThings ?? 0,
    removed: p.numberOfRemovedThings ?? 0,
  };
}

/** The figures of `ota job describe`, from a DescribeJob `job`. */
export function jobFigures(job: Job): JobFigures {
  const counts = executionCounts(job);
  const notified = Object.values(counts).reduce((a, b) => a + b, 0);
  const figures: JobFigures = { counts, notified, abort: { state: 'none' } };
  const cfg = job.jobExecutionsRolloutConfig;
  if (cfg !== undefined && job.status === 'IN_PROGRESS') {
    figures.ratePerMinute = rolloutRate(cfg, { notified, succeeded: counts.succeeded }).rate;
  }
  if (job.status === 'CANCELED' && job.reasonCode === ABORT_REASON_CODE) {
    figures.abort = { state: 'aborted', reason: job.comment ?? ABORT_REASON_CODE };
  } else if (job.abortConfig?.criteriaList?.length) {
    const executed = counts.succeeded + counts.failed + counts.rejected + counts.timedOut;
    const failed = (t: string | undefined) =>
      t === 'FAILED'
        ? counts.failed
        : t === 'REJECTED'
          ? counts.rejected
          : t === 'TIMED_OUT'
            ? counts.timedOut
            : counts.failed + counts.rejected + counts.timedOut;
    figures.abort = {
      state: 'armed',
      criteria: job.abortConfig.criteriaList.map((c) => {
        const now = executed === 0 ? 0 : (failed(c.failureType) * 100) / executed;
        return `${c.failureType} ≥ ${c.thresholdPercentage}% after ${c.minNumberOfExecutedThings} executed (now ${failed(c.failureType)} of ${executed}, ${now.toFixed(1)}%)`;
      }),
    };
  }
  return figures;
}
