/**
 * The simulator's view of its job, from the service (the truth, whatever the agents believe): DescribeJob
 * polled for the counts, the job's status and an abort; ListJobExecutionsForJob(TIMED_OUT) while devices
 * hang, to let a hung device go on once the service has timed its execution out.
 *
 * The run is over when nothing more will happen without an operator: the job COMPLETED, or CANCELED with
 * nothing in progress; or every thing was notified, nothing is in progress and the only queued executions
 * are the offline devices' (they never ask for them).
 *
 * The settle time is a wall-clock measurement of the real run (see fleet.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { IoTClient, Job } from '@aws-sdk/client-iot';
import { executionCounts } from '../operator/job-configs.ts';
import { describeJob, listExecutions } from '../operator/jobs.ts';
import { errorMessage } from '../shared/errors.ts';
import { ABORT_REASON_CODE } from '../shared/jobs-protocol.ts';
import type { Logger } from '../shared/log.ts';
import type { AgentHost } from './agent-host.ts';
import type { FleetAbort, FleetTally } from './types.ts';

export interface JobWatchOptions {
  iot: IoTClient;
  jobId: string;
  devices: number;
  /** Devices that never ask for work (offline, or whose agent never came up): their executions stay QUEUED. */
  offline: () => number;
  /** Where the agents run: which executions hang, and releasing them. */
  host: Pick<AgentHost, 'hung' | 'release'>;
  pollMs: number;
  /** Epoch ms of CreateJob. */
  createdAt: number;
  log: Logger;
  onTally: (t: FleetTally) => void;
  onAbort: (a: Omit<FleetAbort, 'spared'>) => void;
}

export interface JobWatch {
  /** Resolves (epoch ms) once the run is over; never rejects (a failing poll is logged and retried). */
  settled: Promise<number>;
  /** The latest counts. */
  tally(): FleetTally;
  /** The latest DescribeJob `job`. */
  job(): Job | undefined;
  abort(): Omit<FleetAbort, 'spared'> | undefined;
  stop(): void;
}

export function tallyOf(job: Job, devices: number): FleetTally {
  const { removed, ...t } = executionCounts(job);
  const notified = Object.values(t).reduce((a, b) => a + b, removed);
  return { total: devices, notified, ...t };
}

export function isSettled(status: string | undefined, t: FleetTally, offline: number): boolean {
  if (status === 'COMPLETED') return true;
  if (status === 'CANCELED' || status === 'DELETION_IN_PROGRESS') return t.inProgress === 0;
  return t.notified >= t.total && t.inProgress === 0 && t.queued <= offline;
}

export function watchJob(o: JobWatchOptions): JobWatch {
  const stopper = new AbortController();
  let last: Job | undefined;
  let tally: FleetTally = {
    total: o.devices,
    notified: 0,
    queued: 0,
    inProgress: 0,
    succeeded: 0,
    failed: 0,
    rejected: 0,
    timedOut: 0,
    canceled: 0,
  };
  let aborted: Omit<FleetAbort, 'spared'> | undefined;

  /** Hung executions the service has ended (TIMED_OUT, or CANCELED by a forced cancel) go on. */
  async function releaseEnded(): Promise<void> {
    const hung = o.host.hung();
    if (hung.length === 0) return;
    const ended = new Set<string>();
    for (const status of ['TIMED_OUT', 'CANCELED'] as const) {
      const rows = await listExecutions(o.iot, o.jobId, { status, details: false });
      for (const r of rows) ended.add(`${r.thingName}\n${r.executionNumber ?? 0}`);
    }
    for (const h of hung) if (ended.has(`${h.thingName}\n${h.executionNumber}`)) o.host.release(h);
  }

  async function poll(): Promise<boolean> {
    const { job } = await describeJob(o.iot, o.jobId);
    if (job === undefined) return false;
    last = job;
    tally = tallyOf(job, o.devices);
    o.onTally(tally);
    if (aborted === undefined && job.status === 'CANCELED' && job.reasonCode === ABORT_REASON_CODE) {
      const at = job.lastUpdatedAt?.getTime() ?? Date.now();
      aborted = {
        afterMs: Math.max(0, at - o.createdAt),
        reason: job.comment ?? ABORT_REASON_CODE,
        countsAtAbort: tally,
      };
      o.onAbort(aborted);
    }
    if (o.host.hung().length > 0) await releaseEnded();
    return isSettled(job.status, tally, o.offline());
  }

  const settled = (async () => {
    while (!stopper.signal.aborted) {
      try {
        if (await poll()) return Date.now();
      } catch (err) {
        o.log.warn({ err: errorMessage(err) }, 'ota sim: polling the job failed; retrying');
      }
      await sleep(o.pollMs, undefined, { signal: stopper.signal }).catch(() => {});
    }
    return Date.now();
  })();

  return {
    settled,
    tally: () => tally,
    job: () => last,
    abort: () => aborted,
    stop: () => stopper.abort(),
  };
}
