/**
 * Changes to one job execution, each inside the caller's transaction: queue (a first attempt, a retry, a
 * thing re-added), start, device update, cancel, and the service's own TIMED_OUT / FAILED / REMOVED.
 * Every status change asks the state machine (state-machine.ts) first and bumps versionNumber; the
 * notifications it causes are appended to `out`. What a change means for the whole job (abort, retry,
 * completion) is in outcomes.ts.
 */
import type { JobsContext } from '../context.ts';
import { notificationsFor } from '../mqtt/notifications.ts';
import type { Outbound } from '../mqtt/outbound.ts';
import { CONTROL_CHARS } from '../mqtt/requests.ts';
import type { ExecutionRecord, ExecutionStatus, JobRecord } from '../types.ts';
import { checkTransition, isTerminal } from './state-machine.ts';

/**
 * Queues the job for a thing. A thing that already has an execution keeps it, unless that one was
 * REMOVED (the thing left a CONTINUOUS job's group and came back: AWS restarts it) or `retry` is set (a
 * retry is a new QUEUED execution with the next executionNumber). Returns the new execution, if any.
 */
export function queueExecution(
  ctx: JobsContext,
  job: JobRecord,
  thingName: string,
  at: number,
  out: Outbound[],
  retry = false,
): ExecutionRecord | undefined {
  const latest = ctx.store.getExecution(job.jobId, thingName);
  if (latest !== undefined && !retry && latest.status !== 'REMOVED') return undefined;
  const e: ExecutionRecord = {
    jobId: job.jobId,
    thingName,
    executionNumber: (latest?.executionNumber ?? 0) + 1,
    status: 'QUEUED',
    statusDetails: {},
    queuedAt: at,
    lastUpdatedAt: at,
    versionNumber: 1,
    retryAttempt: retry && latest !== undefined ? latest.retryAttempt + 1 : 0,
  };
  if (latest !== undefined) ctx.store.markSuperseded(latest);
  ctx.store.insertExecution(e);
  out.push(...notificationsFor(ctx, thingName, true, at));
  return e;
}

/** QUEUED → IN_PROGRESS; the in-progress timer is fixed here (docs/protocol.md, Timeouts). */
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

/** Each new stepTimeoutInMinutes replaces the old one; -1 clears it (docs/protocol.md, Timeouts). */
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
  return next;
}

/**
 * The service ends an execution (TIMED_OUT, CANCELED, REMOVED, FAILED) if the state machine allows it;
 * returns the new record, or undefined when it was left alone.
 */
export function endExecution(
  ctx: JobsContext,
  e: ExecutionRecord,
  status: 'TIMED_OUT' | 'CANCELED' | 'REMOVED' | 'FAILED',
  at: number,
  out: Outbound[],
  opts: { force?: boolean; statusDetails?: Record<string, string> } = {},
): ExecutionRecord | undefined {
  const check = checkTransition(e.status, status, { actor: 'service', force: opts.force === true });
  if (!check.ok) return undefined;
  const next: ExecutionRecord = {
    ...e,
    status,
    statusDetails: opts.statusDetails ?? e.statusDetails,
    lastUpdatedAt: at,
    versionNumber: e.versionNumber + 1,
  };
  if (status === 'CANCELED' && e.status === 'IN_PROGRESS') next.forceCanceled = true;
  delete next.stepTimeoutAt;
  delete next.inProgressTimeoutAt;
  ctx.store.updateExecution(next, e.versionNumber);
  out.push(...notificationsFor(ctx, e.thingName, true, at));
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
  return (
    endExecution(ctx, e, 'CANCELED', at, out, { force, ...(statusDetails && { statusDetails }) }) !==
    undefined
  );
}

/** statusDetails for a service-made FAILED: the reason, within AWS's limits (docs/protocol.md, Limits). */
export function reasonDetails(e: ExecutionRecord, reason: string): Record<string, string> {
  const detail = reason.replace(new RegExp(CONTROL_CHARS.source, 'g'), ' ').slice(0, 1024);
  const details = { ...e.statusDetails, reason: detail };
  return Object.keys(details).length > 10 ? { reason: detail } : details;
}
