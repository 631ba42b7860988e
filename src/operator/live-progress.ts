import { type Clock, systemClock } from '../shared/clock.ts';
import type { Target } from './clients.ts';
import type { ExecutionRow } from './jobs.ts';
import { operatorConnection, type WatchConnection, watchProgress } from './watch.ts';

/**
 * The last known download progress of a job's executions.
 *
 * An execution's `statusDetails.progress` is what the agent last reported to the Jobs service, at most
 * every 10 s (statusDetailsIntervalMs: each update is a billed Jobs API call on AWS), so for the first
 * seconds of a download it still reads `0/60000000`. The agent's progress topic carries the same count
 * every second. So, for the IN_PROGRESS executions, the operator listens to the progress topic for a
 * moment (until every such device has spoken, or `waitMs`) and keeps what is newer. Subscribing briefly
 * needs nothing new from the device or the service; a retained progress message would answer at once,
 * but would leave a stale message on the topic for every consumer after the job ends.
 */
export interface ExecutionProgress {
  bytes: number;
  total: number;
  percent: string;
  /** Where the figure comes from: the execution's statusDetails or the device's progress topic. */
  source: 'statusDetails' | 'progress-topic';
  at?: Date;
}

export type ExecutionWithProgress = ExecutionRow & { progress?: ExecutionProgress };

export interface LiveSample {
  jobId?: string;
  bytes: number;
  total: number;
  percent: string;
  receivedAt: Date;
}

/** "1234/5678" (the agent's statusDetails.progress) → numbers. */
function parseDetailsProgress(details: Record<string, string> | undefined) {
  const m = /^(\d+)\/(\d+)$/.exec(details?.progress ?? '');
  if (!m) return undefined;
  return { bytes: Number(m[1]), total: Number(m[2]) };
}

const percentOf = (bytes: number, total: number) =>
  `${total > 0 ? ((bytes / total) * 100).toFixed(2) : '0.00'} %`;

/** Each row's last known progress: the newer of its statusDetails and the live sample for its thing. */
export function mergeProgress(
  rows: ExecutionRow[],
  jobId: string,
  live: ReadonlyMap<string, LiveSample>,
): ExecutionWithProgress[] {
  return rows.map((row) => {
    const out: ExecutionWithProgress = { ...row };
    const reported = parseDetailsProgress(row.statusDetails);
    if (reported) {
      out.progress = {
        ...reported,
        percent: row.statusDetails?.percent ?? percentOf(reported.bytes, reported.total),
        source: 'statusDetails',
        at: row.lastUpdatedAt,
      };
    }
    const sample = live.get(row.thingName);
    const sameJob = sample && (sample.jobId === undefined || sample.jobId === jobId);
    const newer = sample && (!row.lastUpdatedAt || sample.receivedAt > row.lastUpdatedAt);
    if (row.status === 'IN_PROGRESS' && sample && sameJob && newer) {
      out.progress = {
        bytes: sample.bytes,
        total: sample.total,
        percent: sample.percent,
        source: 'progress-topic',
        at: sample.receivedAt,
      };
    }
    return out;
  });
}

/**
 * Listens to the progress topic until each of `things` has published for `jobId`, or `waitMs` passed.
 * Resolves with what arrived; a failed connection resolves empty (the statusDetails still stand).
 */
export async function sampleProgress(
  conn: WatchConnection,
  things: readonly string[],
  opts: { jobId: string; waitMs?: number; topic?: string; clock?: Clock },
): Promise<Map<string, LiveSample>> {
  const samples = new Map<string, LiveSample>();
  const wanted = new Set(things);
  if (wanted.size === 0) return samples;
  const clock = opts.clock ?? systemClock;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const handle = watchProgress(conn, {
    topic: opts.topic,
    onDevice: (d) => {
      if (!wanted.has(d.device)) return;
      samples.set(d.device, {
        jobId: d.jobId,
        bytes: d.bytes,
        total: d.total,
        percent: percentOf(d.bytes, d.total),
        receivedAt: new Date(clock.now()),
      });
      if ([...wanted].every((t) => samples.get(t)?.jobId === opts.jobId)) finish();
    },
  });
  const timer = clock.setTimeout(finish, opts.waitMs ?? 2500);
  try {
    // `done` also settles on the timer while the connection is still being made.
    await Promise.race([handle.ready.then(() => done), done]);
  } catch {
    // Not reachable over MQTT: keep the statusDetails.
  } finally {
    clock.clear(timer);
    await handle.close();
  }
  return samples;
}

/**
 * `ota job executions`: the rows with their last known progress. Against the local stack the operator's
 * certificate reads the progress topic; against AWS (`--aws`) no MQTT identity is configured for the
 * operator, so the statusDetails figure stands.
 */
export async function withLastKnownProgress(
  rows: ExecutionRow[],
  jobId: string,
  target: Target,
  opts: { waitMs?: number } = {},
): Promise<ExecutionWithProgress[]> {
  const inProgress = rows.filter((r) => r.status === 'IN_PROGRESS').map((r) => r.thingName);
  if (target.kind !== 'local' || inProgress.length === 0) return mergeProgress(rows, jobId, new Map());
  const live = await sampleProgress(operatorConnection(target.endpoints), inProgress, {
    jobId,
    waitMs: opts.waitMs,
  });
  return mergeProgress(rows, jobId, live);
}
