/**
 * Rollout of a job's executions (AWS developer guide, "How job configurations work"): SCHEDULED until
 * `schedulingConfig.startTime`; then targets are notified at `jobExecutionsRolloutConfig`'s rate — a
 * constant `maximumPerMinute` or an `exponentialRate` that multiplies by `incrementFactor` each time
 * `numberOfNotifiedThings` more things were notified or `numberOfSucceededThings` more succeeded — and
 * only inside a maintenance window when windows are given; at `endTime`, `endBehavior` applies.
 *
 * Targets not yet notified wait in the store's backlog; a tick takes the next few (an indexed range), so
 * a tick costs what it releases, whatever the size of the job. Each job has one wake-up time; the timer
 * loop (timers.ts) ticks the jobs whose time has come. Within a minute releases are spread over up to 60
 * slots, so 10 per minute means one every 6 s, not ten at once.
 */
import { rolloutRate } from '../../../shared/jobs-protocol.ts';
import type { JobsContext } from '../context.ts';
import { parseScheduleTime } from '../management/job-config.ts';
import type { Outbound } from '../mqtt/outbound.ts';
import type { JobRecord, RolloutState, RolloutStatus } from '../types.ts';
import { queueExecution } from './executions.ts';
import { activeWindow, nextWindowStart, upcomingWindowStarts } from './maintenance.ts';
import { cancelJobNow, endedRollout, maybeComplete, newRollout } from './outcomes.ts';

/** Shortest slot between two releases, so a tiny `--minute-ms` cannot spin the timer. */
const MIN_SLOT_MS = 5;

const startOf = (job: JobRecord) =>
  job.schedulingConfig?.startTime === undefined
    ? undefined
    : parseScheduleTime('startTime', job.schedulingConfig.startTime);
const endOf = (job: JobRecord) =>
  job.schedulingConfig?.endTime === undefined
    ? undefined
    : parseScheduleTime('endTime', job.schedulingConfig.endTime);
const windowsOf = (job: JobRecord) => job.schedulingConfig?.maintenanceWindows ?? [];
const isPaced = (job: JobRecord) => job.jobExecutionsRolloutConfig !== undefined || windowsOf(job).length > 0;

/** The rate in force now, or undefined when the job is not rate-paced. */
export function currentRate(ctx: JobsContext, job: JobRecord): { rate: number; level: number } | undefined {
  const cfg = job.jobExecutionsRolloutConfig;
  if (cfg === undefined) return undefined;
  const stats = ctx.store.rollout.stats(job.jobId);
  return rolloutRate(cfg, { notified: stats.things, succeeded: stats.ended_succeeded });
}

/** Called by CreateJob: the job starts now, or waits SCHEDULED for its startTime. */
export function beginJob(ctx: JobsContext, job: JobRecord, at: number, out: Outbound[]): JobRecord {
  const start = startOf(job);
  if (start !== undefined && start > at) {
    const scheduled: JobRecord = { ...job, status: 'SCHEDULED' };
    ctx.store.insertJob(scheduled);
    ctx.store.rollout.setWake(job.jobId, start);
    return scheduled;
  }
  ctx.store.insertJob(job);
  return startRollout(ctx, job, at, out);
}

/** SCHEDULED → IN_PROGRESS: the targets are resolved now (a group's members at this moment). */
function startRollout(ctx: JobsContext, job: JobRecord, at: number, out: Outbound[]): JobRecord {
  const { store } = ctx;
  const things = new Set<string>();
  for (const arn of job.targets) {
    const m = /:(thing|thinggroup)\/(.+)$/.exec(arn);
    if (m?.[1] === 'thing' && store.getThing(m[2] ?? '') !== undefined) things.add(m[2] ?? '');
    else if (m?.[1] === 'thinggroup') for (const t of store.allMembers(m[2] ?? '')) things.add(t);
  }
  let next: JobRecord = { ...job, status: 'IN_PROGRESS', lastUpdatedAt: at, rollout: newRollout(at) };
  store.updateJob(next);
  if (isPaced(next)) {
    store.rollout.addToBacklog(job.jobId, things);
    next = release(ctx, next, at, out);
  } else {
    for (const t of things) queueExecution(ctx, next, t, at, out);
  }
  setWake(ctx, next, at);
  return next;
}

/** Notifies as many waiting targets as the rate, the minute and the windows allow at `at`. */
function release(ctx: JobsContext, job: JobRecord, at: number, out: Outbound[]): JobRecord {
  const state = job.rollout;
  if (state === undefined || state.ended || job.status !== 'IN_PROGRESS') return job;
  if (windowsOf(job).length > 0 && activeWindow(windowsOf(job), at, ctx.minuteMs) === undefined) return job;
  const r = currentRate(ctx, job);
  const next: RolloutState = { ...state };
  let take: number;
  if (r === undefined) {
    take = Number.MAX_SAFE_INTEGER; // windows only: everything waiting goes inside the window
  } else {
    if (at >= next.minuteStart + ctx.minuteMs || r.rate !== next.ratePerMinute) {
      // A new minute starts now: after a full minute, after a pause (no catch-up burst), or when the
      // rate changed (the new rate applies from now on; the old minute's budget is not re-spent).
      next.minuteStart = at;
      next.releasedThisMinute = 0;
    }
    const { slots, slotMs } = slotsOf(r.rate, ctx.minuteMs);
    const slot = Math.min(slots - 1, Math.floor((at - next.minuteStart) / slotMs));
    take = Math.floor((r.rate * (slot + 1)) / slots) - next.releasedThisMinute;
    next.ratePerMinute = r.rate;
    next.level = r.level;
  }
  const things = ctx.store.rollout.takeFromBacklog(job.jobId, take);
  let released = 0;
  for (const t of things) {
    if (ctx.store.getThing(t) === undefined) continue; // deleted while waiting
    queueExecution(ctx, job, t, at, out);
    released++;
  }
  next.releasedThisMinute += released;
  const updated: JobRecord = { ...job, rollout: next };
  ctx.store.updateJob(updated);
  if (things.length > 0) maybeComplete(ctx, job.jobId, at);
  return updated;
}

function slotsOf(rate: number, minuteMs: number): { slots: number; slotMs: number } {
  const slots = Math.max(1, Math.min(rate, 60, Math.floor(minuteMs / MIN_SLOT_MS)));
  return { slots, slotMs: minuteMs / slots };
}

/** When the job needs the scheduler next: its start, its end, its next release or window. */
function wakeOf(ctx: JobsContext, job: JobRecord, at: number): number | undefined {
  if (job.status === 'SCHEDULED') return startOf(job);
  const state = job.rollout;
  if (job.status !== 'IN_PROGRESS' || state === undefined || state.ended) return undefined;
  const candidates: number[] = [];
  const end = endOf(job);
  if (end !== undefined) candidates.push(end);
  if (ctx.store.rollout.hasBacklog(job.jobId)) {
    const windows = windowsOf(job);
    if (windows.length > 0 && activeWindow(windows, at, ctx.minuteMs) === undefined) {
      const w = nextWindowStart(windows, at);
      if (w !== undefined) candidates.push(w);
    } else {
      const r = currentRate(ctx, job);
      if (r === undefined) candidates.push(at);
      else {
        const { slots, slotMs } = slotsOf(r.rate, ctx.minuteMs);
        const slot = Math.floor((at - state.minuteStart) / slotMs);
        candidates.push(
          slot + 1 >= slots ? state.minuteStart + ctx.minuteMs : state.minuteStart + (slot + 1) * slotMs,
        );
      }
    }
  }
  return candidates.length === 0 ? undefined : Math.max(at, Math.min(...candidates));
}

function setWake(ctx: JobsContext, job: JobRecord, at: number): void {
  ctx.store.rollout.setWake(job.jobId, wakeOf(ctx, job, at));
}

/** The timer's work for one job whose wake-up time has come. */
export function tickJob(ctx: JobsContext, jobId: string, at: number, out: Outbound[]): void {
  let job = ctx.store.getJob(jobId);
  if (job === undefined) return;
  if (job.status === 'SCHEDULED') {
    const start = startOf(job);
    if (start !== undefined && start > at) {
      setWake(ctx, job, at);
      return;
    }
    job = startRollout(ctx, job, at, out);
  }
  const end = endOf(job);
  if (job.status === 'IN_PROGRESS' && job.rollout?.ended !== true && end !== undefined && at >= end) {
    job = applyEndBehavior(ctx, job, at, out);
  }
  if (job.status === 'IN_PROGRESS') job = release(ctx, job, at, out);
  setWake(ctx, job, at);
}

/** schedulingConfig.endTime reached: STOP_ROLLOUT (the default), CANCEL or FORCE_CANCEL. */
function applyEndBehavior(ctx: JobsContext, job: JobRecord, at: number, out: Outbound[]): JobRecord {
  const behavior = job.schedulingConfig?.endBehavior ?? 'STOP_ROLLOUT';
  ctx.log.info({ jobId: job.jobId, behavior }, 'jobs: schedulingConfig.endTime reached');
  if (behavior === 'STOP_ROLLOUT') return endRollout(ctx, job, 'END_TIME', at);
  return cancelJobNow(
    ctx,
    job,
    {
      force: behavior === 'FORCE_CANCEL',
      comment: `schedulingConfig.endTime reached; endBehavior ${behavior}`,
    },
    at,
    out,
    'END_TIME',
  );
}

/** No more targets are notified: the waiting ones are dropped; a SNAPSHOT job completes once done. */
export function endRollout(
  ctx: JobsContext,
  job: JobRecord,
  reason: RolloutState['endReason'],
  at: number,
): JobRecord {
  ctx.store.rollout.clearBacklog(job.jobId);
  const next: JobRecord = { ...job, lastUpdatedAt: at, rollout: endedRollout(job, reason, at) };
  ctx.store.updateJob(next);
  ctx.store.rollout.setWake(job.jobId, undefined);
  maybeComplete(ctx, job.jobId, at);
  return ctx.store.getJob(job.jobId) ?? next;
}

/** Where the rollout stands, for DescribeJob. */
export function rolloutStatus(ctx: JobsContext, job: JobRecord, at: number): RolloutStatus {
  const windows = windowsOf(job);
  const r = job.status === 'IN_PROGRESS' ? currentRate(ctx, job) : undefined;
  const status: RolloutStatus = {
    ratePerMinute: r?.rate,
    waiting: ctx.store.rollout.backlogSize(job.jobId),
    notified: ctx.store.rollout.stats(job.jobId).things,
    ended: job.rollout?.ended ?? false,
    inWindow: windows.length === 0 || activeWindow(windows, at, ctx.minuteMs) !== undefined,
    nextWindows: upcomingWindowStarts(windows, at).map((t) => new Date(t).toISOString()),
  };
  if (job.rollout?.endReason !== undefined) status.endReason = job.rollout.endReason;
  return status;
}
