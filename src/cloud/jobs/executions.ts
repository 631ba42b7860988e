/**
 * Changes to job executions, each inside the caller's transaction: queue, start, device update, cancel,
 * time out. Every status change asks the state machine (state-machine.ts) first and bumps versionNumber;
 * the notifications it causes are appended to `out`.
 */
import type { JobsContext } from './context.ts';
import { CONTROL_CHARS } from './mqtt-requests.ts';
import { notificationsFor } from './notifications.ts';
import type { Outbound } from './outbound.ts';
import { checkTransition, isTerminal } from './state-machine.ts';
import type { ExecutionRecord, ExecutionStatus, JobRecord } from './types.ts';

/** Queues the job for a thing (once: a thing that already has an execution of the job is left alone). */
export function queueExecution(
  ctx: JobsContext,
  job: JobRecord,
  thingName: string,
  at: number,
  out: Outbound[],
): void {
  if (ctx.store.getExecution(job.jobId, thingName) !== undefined) return;
  ctx.store.insertExecution({
    jobId: job.jobId,
    thingName,
    executionNumber: 1,
    status: 'QUEUED',
    statusDetails: {},
    queuedAt: at,
    lastUpdatedAt: at,
    versionNumber: 1,
  });
  out.push(...notificationsFor(ctx, thingName, true, at));
}

/** QUEUED → IN_PROGRESS; the in-progress timer is fixed here (reference section 2). */
export function startExecution(
  ctx: JobsContext,
  e: ExecutionRecord,
  job: JobRecord | undefined,
  at: number,
  statusDetails: Record<string, string> | undefined,
  stepTimeout: number | undefined,
): ExecutionRecord {
  const next: ExecutionRecord = {
    ...e,
    status: 'IN_PROGRESS',
    statusDetails: statusDetails ?? e.statusDetails,
    startedAt: at,
    lastUpdatedAt: at,
    versionNumber: e.versionNumber + 1,
  };
  const inProgressMinutes = job?.timeoutConfig?.inProgressTimeoutInMinutes;
  if (inProgressMinutes !== undefined) next.inProgressTimeoutAt = at + inProgressMinutes * ctx.minuteMs;
  applyStepTimeout(ctx, next, stepTimeout, at);
  ctx.store.updateExecution(next, e.versionNumber);
  return next;
}

/** Each new stepTimeoutInMinutes replaces the old one; -1 clears it (reference section 2). */
export function applyStepTimeout(
  ctx: JobsContext,
  e: ExecutionRecord,
  stepTimeout: number | undefined,
  at: number,
): void {
  if (stepTimeout === undefined) return;
  if (stepTimeout === -1) delete e.stepTimeoutAt;
  else e.stepTimeoutAt = at + stepTimeout * ctx.minuteMs;
}

/** A device's UpdateJobExecution that the state machine allowed. Returns the new record. */
export function applyDeviceUpdate(
  ctx: JobsContext,
  e: ExecutionRecord,
  job: JobRecord | undefined,
  status: ExecutionStatus,
  statusDetails: Record<string, string> | undefined,
  stepTimeout: number | undefined,
  at: number,
): ExecutionRecord {
  if (e.status === 'QUEUED' && status === 'IN_PROGRESS') {
    return startExecution(ctx, e, job, at, statusDetails, stepTimeout);
  }
  const next: ExecutionRecord = {
    ...e,
    status,
    statusDetails: statusDetails ?? e.statusDetails,
    lastUpdatedAt: at,
    versionNumber: e.versionNumber + 1,
  };
  if (isTerminal(status)) {
    delete next.stepTimeoutAt;
    delete next.inProgressTimeoutAt;
  } else {
    applyStepTimeout(ctx, next, stepTimeout, at);
  }
  ctx.store.updateExecution(next, e.versionNumber);
  if (isTerminal(status)) maybeComplete(ctx, e.jobId, at);
  return next;
}

/** Cancels one pending execution; returns false when the state machine left it alone. */
export function cancelExecution(
  ctx: JobsContext,
  e: ExecutionRecord,
  force: boolean,
  at: number,
  out: Outbound[],
  statusDetails?: Record<string, string>,
): boolean {
  const check = checkTransition(e.status, 'CANCELED', { actor: 'service', force });
  if (!check.ok) return false;
  const next: ExecutionRecord = {
    ...e,
    status: 'CANCELED',
    statusDetails: statusDetails ?? e.statusDetails,
    lastUpdatedAt: at,
    versionNumber: e.versionNumber + 1,
  };
  if (e.status === 'IN_PROGRESS') next.forceCanceled = true;
  delete next.stepTimeoutAt;
  delete next.inProgressTimeoutAt;
  ctx.store.updateExecution(next, e.versionNumber);
  out.push(...notificationsFor(ctx, e.thingName, true, at));
  return true;
}

/** SNAPSHOT jobs complete when every execution is terminal (AWS "Job states"). */
export function maybeComplete(ctx: JobsContext, jobId: string, at: number): void {
  const job = ctx.store.getJob(jobId);
  if (job === undefined || job.status !== 'IN_PROGRESS' || job.targetSelection !== 'SNAPSHOT') return;
  const c = ctx.store.countExecutions(jobId);
  if (c.total > 0 && c.pending === 0) {
    ctx.store.updateJob({ ...job, status: 'COMPLETED', lastUpdatedAt: at, completedAt: at });
  }
}

/** Times out every IN_PROGRESS execution whose timer has expired (reference section 2). */
export function expireDue(ctx: JobsContext, at: number): Outbound[] {
  const out: Outbound[] = [];
  for (const e of ctx.store.expired(at)) {
    const next: ExecutionRecord = {
      ...e,
      status: 'TIMED_OUT',
      lastUpdatedAt: at,
      versionNumber: e.versionNumber + 1,
    };
    delete next.stepTimeoutAt;
    delete next.inProgressTimeoutAt;
    ctx.store.updateExecution(next, e.versionNumber);
    maybeComplete(ctx, e.jobId, at);
    out.push(...notificationsFor(ctx, e.thingName, true, at));
    ctx.log.info({ jobId: e.jobId, thingName: e.thingName }, 'jobs: execution timed out');
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
  if (e === undefined || !checkTransition(e.status, 'FAILED', { actor: 'service' }).ok) return false;
  const detail = `job document could not be delivered: ${reason}`.replace(
    new RegExp(CONTROL_CHARS.source, 'g'),
    ' ',
  );
  const next: ExecutionRecord = {
    ...e,
    status: 'FAILED',
    statusDetails: { ...e.statusDetails, reason: detail.slice(0, 1024) },
    lastUpdatedAt: at,
    versionNumber: e.versionNumber + 1,
  };
  delete next.stepTimeoutAt;
  delete next.inProgressTimeoutAt;
  if (Object.keys(next.statusDetails).length > 10) next.statusDetails = { reason: detail.slice(0, 1024) };
  ctx.store.updateExecution(next, e.versionNumber);
  maybeComplete(ctx, e.jobId, at);
  out.push(...notificationsFor(ctx, e.thingName, true, at));
  ctx.log.warn(
    { jobId: e.jobId, thingName: e.thingName, reason },
    'jobs: execution failed: undeliverable document',
  );
  return true;
}
