/**
 * Rollout health for the dashboard's header: pace, abort state and time-to-fleet. Pure functions of the
 * job's DescribeJob fields and its rows, shared by the page and the tests. Terms and fields follow the
 * AWS IoT developer guide, "Job configurations" (rollout, abort) and the API reference (AbortCriteria,
 * JobExecutionsRolloutConfig).
 */
import { isTerminalExecutionStatus } from '../shared/execution-status.ts';
import type { AbortCriterion, DeviceRow, JobInfo, RolloutConfig, StatusCounts } from './model.ts';

export const NONE = '—';

/** The configured pace: "≤ 300/min", "10/min ×1.5 per 50 notified", or "—" when the job has none. */
export function configuredPace(rollout: RolloutConfig | undefined): string {
  if (!rollout) return NONE;
  if (rollout.maximumPerMinute !== undefined) return `≤ ${rollout.maximumPerMinute}/min`;
  const exp = rollout.exponentialRate;
  if (exp) {
    const c = exp.rateIncreaseCriteria;
    const step =
      c?.numberOfNotifiedThings !== undefined
        ? ` per ${c.numberOfNotifiedThings} notified`
        : c?.numberOfSucceededThings !== undefined
          ? ` per ${c.numberOfSucceededThings} succeeded`
          : '';
    return `${exp.baseRatePerMinute ?? '?'}/min ×${exp.incrementFactor ?? '?'}${step}`;
  }
  return NONE;
}

/** Executions started in the minute before `now`: the pace the rollout actually runs at. */
export function observedPerMinute(rows: Iterable<DeviceRow>, now: number): number {
  let n = 0;
  for (const r of rows) if (r.startedAt !== undefined && r.startedAt > now - 60_000) n++;
  return n;
}

/** Failure types of an abort criterion (AbortCriteria.failureType): ALL counts the three failures. */
const FAILURE_STATUSES: Record<string, readonly (keyof StatusCounts)[]> = {
  FAILED: ['FAILED'],
  REJECTED: ['REJECTED'],
  TIMED_OUT: ['TIMED_OUT'],
  ALL: ['FAILED', 'REJECTED', 'TIMED_OUT'],
};

export interface AbortCriterionState {
  text: string;
  /** Failures of this type among the executions that finished, in percent; undefined before any finished. */
  percent?: number;
  executed: number;
  /** The threshold is reached and enough things have executed. */
  met: boolean;
}

export interface AbortState {
  /** "—" (no abort configuration), "armed", "aborted" or "canceled". */
  state: string;
  criteria: AbortCriterionState[];
  /** The job's cancellation reason: reasonCode and comment of DescribeJob. */
  reason?: string;
}

/**
 * Each criterion with its current value. "Executed" things are those whose execution finished (a
 * terminal status other than CANCELED/REMOVED), which is how the guide describes the threshold: a share
 * of the job's executions that failed. A CANCELED job with a met criterion reads "aborted"; one without,
 * "canceled".
 */
export function abortState(job: JobInfo | undefined, counts: StatusCounts): AbortState {
  const criteria = (job?.abort ?? []).map((c) => criterionState(c, counts));
  const reasonParts = [job?.reasonCode, job?.comment].filter((s): s is string => !!s);
  const reason = reasonParts.length > 0 ? reasonParts.join(': ') : undefined;
  let state = criteria.length > 0 ? 'armed' : NONE;
  if (job?.status === 'CANCELED') state = criteria.some((c) => c.met) ? 'aborted' : 'canceled';
  return { state, criteria, ...(reason ? { reason } : {}) };
}

function criterionState(c: AbortCriterion, counts: StatusCounts): AbortCriterionState {
  const executed = counts.SUCCEEDED + counts.FAILED + counts.REJECTED + counts.TIMED_OUT;
  const statuses = FAILURE_STATUSES[c.failureType ?? ''] ?? [];
  const failures = statuses.reduce((n, s) => n + counts[s], 0);
  const percent = executed > 0 ? (failures / executed) * 100 : undefined;
  const min = c.minNumberOfExecutedThings ?? 0;
  const threshold = c.thresholdPercentage;
  const met = percent !== undefined && threshold !== undefined && executed >= min && percent >= threshold;
  const text =
    `${c.failureType ?? '?'} ≥ ${threshold ?? '?'}% after ${min} things → ${c.action ?? 'CANCEL'}` +
    (percent !== undefined ? ` (now ${percent.toFixed(1)}% of ${executed})` : '');
  return { text, ...(percent !== undefined ? { percent } : {}), executed, met };
}

/**
 * Seconds until every target is in a terminal status, or undefined when there is nothing to go on. The
 * largest of three lower bounds that apply:
 *  - the slowest in-progress device's own ETA;
 *  - the remaining executions at the fleet's completion rate so far (finished / time since the first start);
 *  - with a `maximumPerMinute` rollout, the queued executions at that rate plus one typical duration.
 */
export function timeToFleet(
  rows: readonly DeviceRow[],
  now: number,
  rollout?: RolloutConfig,
  targetCount?: number,
): number | undefined {
  let done = 0;
  let queued = 0;
  let firstStart = Number.POSITIVE_INFINITY;
  let slowestEta: number | undefined;
  const durations: number[] = [];
  for (const r of rows) {
    if (r.startedAt !== undefined) firstStart = Math.min(firstStart, r.startedAt);
    if (isTerminalExecutionStatus(r.status)) {
      done++;
      if (r.startedAt !== undefined && r.finishedAt !== undefined) durations.push(r.finishedAt - r.startedAt);
    } else if (r.status === 'QUEUED') queued++;
    else if (r.eta !== undefined) slowestEta = Math.max(slowestEta ?? 0, r.eta);
  }
  const total = Math.max(rows.length, targetCount ?? 0);
  const remaining = total - done;
  if (total === 0) return undefined;
  if (remaining <= 0) return 0;
  const bounds: number[] = [];
  if (slowestEta !== undefined && queued === 0) bounds.push(slowestEta);
  const elapsedSec = (now - firstStart) / 1000;
  if (done > 0 && Number.isFinite(elapsedSec) && elapsedSec > 0) bounds.push(remaining / (done / elapsedSec));
  const perMinute = rollout?.maximumPerMinute;
  if (perMinute && queued > 0) {
    durations.sort((a, b) => a - b);
    const typical = durations.length > 0 ? (durations[durations.length >> 1] ?? 0) / 1000 : 0;
    bounds.push((queued / perMinute) * 60 + typical);
  }
  // Devices that are still at it take at least a moment, even when their downloads are done.
  return bounds.length > 0 ? Math.max(1, ...bounds) : undefined;
}
