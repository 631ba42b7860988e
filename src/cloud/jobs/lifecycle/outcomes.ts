/**
 * What the end of an execution means for its job (AWS developer guide, "How job configurations work"):
 * the abort criteria are checked, a retry is queued, a SNAPSHOT job completes. Also the job-wide
 * cancellation shared by CancelJob, abort and schedulingConfig's end behaviors, and the service-made
 * terminal states (timers, undeliverable documents). Every check reads the trigger-kept counters of
 * job_stats, so it costs the same for a job of 10 or 10,000 executions.
 */
import { ABORT_REASON_CODE } from '../../../shared/jobs-protocol.ts';
import type { JobsContext } from '../context.ts';
import type { Outbound } from '../mqtt/outbound.ts';
import type { JobStatsRow } from '../store/schema.ts';
import type { AbortCriteria, ExecutionRecord, JobRecord, RolloutState } from '../types.ts';
import { endExecution, queueExecution, reasonDetails } from './executions.ts';

/** reasonCode of a job cancelled by its abortConfig (pattern [\p{Upper}\p{Digit}_]+, as AWS requires). */
export { ABORT_REASON_CODE };

/** The rollout state of a job that starts now. */
export const newRollout = (at: number): RolloutState => ({
  ratePerMinute: 0,
  level: 0,
  minuteStart: at,
  releasedThisMinute: 0,
  ended: false,
});

/** The job's rollout state, ended for `reason` (no more targets are notified). */
export const endedRollout = (
  job: JobRecord,
  reason: RolloutState['endReason'],
  at: number,
): RolloutState => ({
  ...(job.rollout ?? newRollout(at)),
  ended: true,
  endReason: reason,
});

/** Runs after an execution reached a terminal status (in the same transaction). */
export function afterTerminal(ctx: JobsContext, e: ExecutionRecord, at: number, out: Outbound[]): void {
  let job = ctx.store.getJob(e.jobId);
  if (job === undefined) return;
  // Abort first: a job cancelled by this very failure queues no retry for it.
  if (job.status === 'IN_PROGRESS' && job.abortConfig !== undefined) job = abortIfMet(ctx, job, at, out);
  if (job.status === 'IN_PROGRESS' && (e.status === 'FAILED' || e.status === 'TIMED_OUT'))
    retryIfAllowed(ctx, job, e, at, out);
  maybeComplete(ctx, e.jobId, at);
}

/** Failures of a criterion's type among executions that ended, every attempt counted. */
function failures(s: JobStatsRow, type: AbortCriteria['failureType']): number {
  if (type === 'FAILED') return s.ended_failed;
  if (type === 'REJECTED') return s.ended_rejected;
  if (type === 'TIMED_OUT') return s.ended_timed_out;
  return s.ended_failed + s.ended_rejected + s.ended_timed_out;
}

/**
 * AbortConfig: once at least `minNumberOfExecutedThings` executions have run to an outcome (SUCCEEDED,
 * FAILED, REJECTED or TIMED_OUT), the job is cancelled when `thresholdPercentage` of them ended with the
 * criterion's failure type. Queued executions are cancelled; in-progress ones run on.
 */
function abortIfMet(ctx: JobsContext, job: JobRecord, at: number, out: Outbound[]): JobRecord {
  const s = ctx.store.rollout.stats(job.jobId);
  const executed = s.ended_succeeded + s.ended_failed + s.ended_rejected + s.ended_timed_out;
  for (const c of job.abortConfig?.criteriaList ?? []) {
    const failed = failures(s, c.failureType);
    if (executed < c.minNumberOfExecutedThings || failed * 100 < c.thresholdPercentage * executed) continue;
    const percent = ((failed * 100) / executed).toFixed(2);
    const comment =
      `abortConfig: ${failed} of ${executed} executed job executions (${percent}%) ended ${c.failureType}; ` +
      `the criterion is ${c.thresholdPercentage}% after at least ${c.minNumberOfExecutedThings}`;
    ctx.log.warn(
      { jobId: job.jobId, failed, executed, criterion: c },
      'jobs: abort criteria met, cancelling the job',
    );
    return cancelJobNow(
      ctx,
      job,
      { force: false, reasonCode: ABORT_REASON_CODE, comment },
      at,
      out,
      'ABORTED',
    );
  }
  return job;
}

/**
 * jobExecutionsRetryConfig: a FAILED or TIMED_OUT execution is retried (a new QUEUED execution with the
 * next executionNumber) while the criterion for its type (or ALL) has retries left. Retries are counted
 * since the thing last (re)joined the job: a REMOVED execution resets them (AWS: "Continuous jobs and
 * thing group membership updates").
 */
function retryIfAllowed(
  ctx: JobsContext,
  job: JobRecord,
  e: ExecutionRecord,
  at: number,
  out: Outbound[],
): void {
  const criteria = job.jobExecutionsRetryConfig?.criteriaList ?? [];
  const c = criteria.find((x) => x.failureType === e.status) ?? criteria.find((x) => x.failureType === 'ALL');
  if (c === undefined) return;
  const history = ctx.store.executionsOf(job.jobId, e.thingName);
  const lastRemoved = history.map((x) => x.status).lastIndexOf('REMOVED');
  const retried = history.slice(lastRemoved + 1).filter((x) => x.superseded);
  const used = retried.filter((x) => c.failureType === 'ALL' || x.status === c.failureType).length;
  if (used >= c.numberOfRetries) return;
  const retry = queueExecution(ctx, job, e.thingName, at, out, true);
  ctx.log.info(
    { jobId: job.jobId, thingName: e.thingName, retryAttempt: retry?.retryAttempt },
    'jobs: retrying',
  );
}

/** SNAPSHOT jobs complete when every target was notified and every execution is terminal (AWS "Job states"). */
export function maybeComplete(ctx: JobsContext, jobId: string, at: number): void {
  const job = ctx.store.getJob(jobId);
  if (job === undefined || job.status !== 'IN_PROGRESS' || job.targetSelection !== 'SNAPSHOT') return;
  const c = ctx.store.rollout.countExecutions(jobId);
  if (c.total > 0 && c.pending === 0 && !ctx.store.rollout.hasBacklog(jobId)) {
    ctx.store.updateJob({ ...job, status: 'COMPLETED', lastUpdatedAt: at, completedAt: at });
    ctx.store.rollout.setWake(jobId, undefined);
  }
}

/**
 * Cancels a job: QUEUED executions become CANCELED (IN_PROGRESS ones too with force), targets still
 * waiting for the rollout are dropped, and the reason is kept for DescribeJob.
 */
export function cancelJobNow(
  ctx: JobsContext,
  job: JobRecord,
  opts: { force: boolean; comment?: string; reasonCode?: string },
  at: number,
  out: Outbound[],
  endReason: RolloutState['endReason'] = 'CANCELED',
): JobRecord {
  const { store } = ctx;
  for (const e of store.pendingForJob(job.jobId))
    endExecution(ctx, e, 'CANCELED', at, out, { force: opts.force });
  store.rollout.clearBacklog(job.jobId);
  store.rollout.setWake(job.jobId, undefined);
  const next: JobRecord = {
    ...job,
    status: 'CANCELED',
    lastUpdatedAt: at,
    rollout: endedRollout(job, endReason, at),
  };
  if (opts.force) next.forceCanceled = true;
  if (opts.comment !== undefined) next.comment = opts.comment;
  if (opts.reasonCode !== undefined) next.reasonCode = opts.reasonCode;
  store.updateJob(next);
  return next;
}

/** Times out every IN_PROGRESS execution whose timer has expired (docs/protocol.md, Timeouts). */
export function expireDue(ctx: JobsContext, at: number): Outbound[] {
  const out: Outbound[] = [];
  for (const e of ctx.store.expired(at)) {
    const next = endExecution(ctx, e, 'TIMED_OUT', at, out);
    if (next === undefined) continue;
    ctx.log.info({ jobId: e.jobId, thingName: e.thingName }, 'jobs: execution timed out');
    afterTerminal(ctx, next, at, out);
  }
  return out;
}

/**
 * Fails an execution whose job document cannot be delivered (a presign that keeps failing): without
 * this, start-next would return the same IN_PROGRESS execution and InternalError forever, and the
 * thing's later jobs would never start. FAILED keeps it retryable under a retry configuration.
 */
export function failUndeliverable(
  ctx: JobsContext,
  key: { jobId: string; thingName: string; executionNumber: number },
  reason: string,
  at: number,
  out: Outbound[],
): boolean {
  const e = ctx.store.getExecution(key.jobId, key.thingName, key.executionNumber);
  if (e === undefined) return false;
  const details = reasonDetails(e, `job document could not be delivered: ${reason}`);
  const next = endExecution(ctx, e, 'FAILED', at, out, { statusDetails: details });
  if (next === undefined) return false;
  ctx.log.warn(
    { jobId: e.jobId, thingName: e.thingName, reason },
    'jobs: execution failed: undeliverable document',
  );
  afterTerminal(ctx, next, at, out);
  return true;
}
