import {
  DescribeJobExecutionCommand,
  type IoTClient,
  type Job,
  type JobProcessDetails,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import { describeJob, listExecutions, listJobs } from '../operator/jobs.ts';
import type { ExecutionStatusName } from '../shared/execution-status.ts';
import type { JobInfo, JobListEntry, StatusCounts } from './model.ts';
import type { ExecutionFacts } from './tracker.ts';

/**
 * The dashboard's reads of the IoT control plane, through @aws-sdk/client-iot (the same calls against
 * the local stack and AWS). Each returns the page's own shapes (src/dashboard/model.ts), built from AWS's
 * response shapes (API reference: DescribeJob's Job, JobProcessDetails, JobExecution).
 */

const ms = (d: Date | undefined): number | undefined => (d instanceof Date ? d.getTime() : undefined);

const PROCESS_FIELDS: Record<ExecutionStatusName, keyof JobProcessDetails> = {
  QUEUED: 'numberOfQueuedThings',
  IN_PROGRESS: 'numberOfInProgressThings',
  SUCCEEDED: 'numberOfSucceededThings',
  FAILED: 'numberOfFailedThings',
  TIMED_OUT: 'numberOfTimedOutThings',
  REJECTED: 'numberOfRejectedThings',
  REMOVED: 'numberOfRemovedThings',
  CANCELED: 'numberOfCanceledThings',
};

export function processCounts(p: JobProcessDetails | undefined): Partial<StatusCounts> | undefined {
  if (!p) return undefined;
  const out: Partial<StatusCounts> = {};
  for (const [status, field] of Object.entries(PROCESS_FIELDS) as [
    ExecutionStatusName,
    keyof JobProcessDetails,
  ][]) {
    const v = p[field];
    if (typeof v === 'number') out[status] = v;
  }
  return out;
}

/** AWS's Job → the page's JobInfo; absent fields stay absent (the page shows "—"). */
export function jobInfoOf(job: Job): JobInfo {
  const info: JobInfo = { jobId: job.jobId ?? '?' };
  const set = <K extends keyof JobInfo>(k: K, v: JobInfo[K] | undefined) => {
    if (v !== undefined) info[k] = v;
  };
  set('status', job.status);
  set('targetSelection', job.targetSelection);
  set('description', job.description);
  set('comment', job.comment);
  set('reasonCode', job.reasonCode);
  set('forceCanceled', job.forceCanceled);
  set('createdAt', ms(job.createdAt));
  set('lastUpdatedAt', ms(job.lastUpdatedAt));
  set('completedAt', ms(job.completedAt));
  set('targets', job.targets);
  set('processDetails', processCounts(job.jobProcessDetails));
  const r = job.jobExecutionsRolloutConfig;
  if (r && (r.maximumPerMinute !== undefined || r.exponentialRate)) {
    const e = r.exponentialRate;
    info.rollout = {
      ...(r.maximumPerMinute !== undefined ? { maximumPerMinute: r.maximumPerMinute } : {}),
      ...(e
        ? {
            exponentialRate: {
              baseRatePerMinute: e.baseRatePerMinute,
              incrementFactor: e.incrementFactor,
              rateIncreaseCriteria: e.rateIncreaseCriteria,
            },
          }
        : {}),
    };
  }
  set('abort', job.abortConfig?.criteriaList);
  set('inProgressTimeoutInMinutes', job.timeoutConfig?.inProgressTimeoutInMinutes);
  set('retry', job.jobExecutionsRetryConfig?.criteriaList);
  return info;
}

export async function readJobInfo(iot: IoTClient, jobId: string): Promise<JobInfo | undefined> {
  try {
    const { job } = await describeJob(iot, jobId);
    return job ? jobInfoOf(job) : undefined;
  } catch (err) {
    if (err instanceof ResourceNotFoundException) return undefined;
    throw err;
  }
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Every job, most recent first, with per-status counts for the `withCounts` most recent ones (one
 * DescribeJob each; AWS's ListJobs has no counts).
 */
export async function readJobList(iot: IoTClient, withCounts: number): Promise<JobListEntry[]> {
  const jobs = (await listJobs(iot))
    .map((j) => ({
      jobId: j.jobId ?? '?',
      status: j.status,
      createdAt: ms(j.createdAt),
      completedAt: ms(j.completedAt),
    }))
    .sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0) || a.jobId.localeCompare(b.jobId));
  const entries: JobListEntry[] = jobs.map((j) => {
    const e: JobListEntry = { jobId: j.jobId };
    if (j.status) e.status = j.status;
    if (j.createdAt !== undefined) e.createdAt = j.createdAt;
    if (j.completedAt !== undefined) e.completedAt = j.completedAt;
    return e;
  });
  await mapLimit(entries.slice(0, withCounts), 4, async (e) => {
    const info = await readJobInfo(iot, e.jobId);
    if (info?.processDetails) e.counts = info.processDetails;
  });
  return entries;
}

/** The job's executions, one per thing (the latest execution number wins). */
export async function readExecutions(
  iot: IoTClient,
  jobId: string,
): Promise<({ thing: string } & ExecutionFacts)[]> {
  const byThing = new Map<string, { thing: string; n: number } & ExecutionFacts>();
  for (const r of await listExecutions(iot, jobId, { details: false })) {
    const n = r.executionNumber ?? 0;
    const prev = byThing.get(r.thingName);
    if (prev && prev.n > n) continue;
    const facts: { thing: string; n: number } & ExecutionFacts = { thing: r.thingName, n, status: r.status };
    const started = ms(r.startedAt);
    const updated = ms(r.lastUpdatedAt);
    if (started !== undefined) facts.startedAt = started;
    if (updated !== undefined) facts.lastUpdatedAt = updated;
    byThing.set(r.thingName, facts);
  }
  return [...byThing.values()].map(({ n: _n, ...rest }) => rest);
}

/** One execution's status, times and statusDetails.reason; undefined if it no longer exists. */
export async function readExecution(
  iot: IoTClient,
  jobId: string,
  thingName: string,
): Promise<ExecutionFacts | undefined> {
  try {
    const out = await iot.send(new DescribeJobExecutionCommand({ jobId, thingName }));
    const e = out.execution;
    if (!e?.status) return undefined;
    const facts: ExecutionFacts = { status: e.status };
    const started = ms(e.startedAt);
    const updated = ms(e.lastUpdatedAt);
    if (started !== undefined) facts.startedAt = started;
    if (updated !== undefined) facts.lastUpdatedAt = updated;
    const details = e.statusDetails?.detailsMap;
    const reason = details?.reason ?? details?.error ?? (e.status === 'TIMED_OUT' ? 'timed out' : undefined);
    if (reason) facts.reason = reason;
    return facts;
  } catch (err) {
    if (err instanceof ResourceNotFoundException) return undefined;
    throw err;
  }
}
