/**
 * How each simulated device ended, from the service's list of the job's executions (the latest of each
 * thing), against what its role (faults.ts) should bring: an `ok` device SUCCEEDED, a `fail` one FAILED,
 * and so on. A device the job's cancellation spared (never notified, or cancelled while queued) ended as
 * it should whatever its role.
 */
import type { DeviceRole } from './faults.ts';
import type { FleetOutcomes } from './types.ts';

export interface DeviceEnd {
  thingName: string;
  role: DeviceRole;
  /** The latest execution's status, or NEVER_NOTIFIED. */
  status: string;
  /** What the agent said, when it said anything (its job-result or error). */
  reason?: string;
}

const EXPECTED: Record<DeviceRole, readonly string[]> = {
  ok: ['SUCCEEDED'],
  fail: ['FAILED'],
  // IN_PROGRESS → REJECTED is unconfirmed on AWS: the agent falls back to FAILED there (reference 2).
  reject: ['REJECTED', 'FAILED'],
  timeout: ['TIMED_OUT'],
  offline: ['QUEUED'],
};

export function isExpected(role: DeviceRole, status: string, jobCanceled: boolean): boolean {
  if (EXPECTED[role].includes(status)) return true;
  return jobCanceled && (status === 'CANCELED' || status === 'NEVER_NOTIFIED');
}

/** The latest execution of each thing, from ListJobExecutionsForJob rows. */
export function latestByThing(
  rows: ReadonlyArray<{ thingName: string; status: string; executionNumber?: number | undefined }>,
): Map<string, string> {
  const best = new Map<string, { n: number; status: string }>();
  for (const r of rows) {
    const n = r.executionNumber ?? 0;
    const prev = best.get(r.thingName);
    if (prev === undefined || n >= prev.n) best.set(r.thingName, { n, status: r.status });
  }
  return new Map([...best].map(([k, v]) => [k, v.status]));
}

export function countOutcomes(ends: readonly DeviceEnd[]): FleetOutcomes {
  const o: FleetOutcomes = {
    succeeded: 0,
    failed: 0,
    rejected: 0,
    timedOut: 0,
    canceled: 0,
    removed: 0,
    queued: 0,
    inProgress: 0,
    neverNotified: 0,
  };
  const key: Record<string, keyof FleetOutcomes> = {
    SUCCEEDED: 'succeeded',
    FAILED: 'failed',
    REJECTED: 'rejected',
    TIMED_OUT: 'timedOut',
    CANCELED: 'canceled',
    REMOVED: 'removed',
    QUEUED: 'queued',
    IN_PROGRESS: 'inProgress',
    NEVER_NOTIFIED: 'neverNotified',
  };
  for (const e of ends) {
    const k = key[e.status];
    if (k !== undefined) o[k]++;
  }
  return o;
}
