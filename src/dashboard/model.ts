/**
 * The dashboard's data model, shared by its server (src/dashboard) and its page (web/dashboard): pure
 * TypeScript with no Node or DOM dependency, so the browser bundle and the Node tests use the same code.
 *
 * A job's devices are rows; the server keeps every row and sends the page a snapshot and then only the
 * rows that changed, in a compact tuple form (10,000 rows are ~1 MB as tuples, twice that as objects).
 */
import { EXECUTION_STATUSES, type ExecutionStatusName } from '../shared/execution-status.ts';

/** One device's execution of the selected job. Times are epoch ms on the server's clock. */
export interface DeviceRow {
  thing: string;
  /** The execution status as the Jobs service has it (QUEUED, IN_PROGRESS, SUCCEEDED, …). */
  status: string;
  /** The agent's own state from its last progress message (DOWNLOADING, DOWNLOADED, …), if any. */
  phase?: string;
  bytes: number;
  total: number;
  /** Bytes per second, from the message's `bytesPerSecond` or the last two messages. */
  rate: number;
  /** Seconds left, from the message's `etaSeconds` or the rate. */
  eta?: number;
  /** When the last progress message or Jobs notification about this device arrived. */
  lastMessageAt?: number;
  startedAt?: number;
  /** When the execution reached a terminal status (as far as the dashboard saw it). */
  finishedAt?: number;
  /** statusDetails.reason of a failed, rejected or cancelled execution. */
  reason?: string;
}

export type WireRow = [
  thing: string,
  status: string,
  phase: string | null,
  bytes: number,
  total: number,
  rate: number,
  eta: number | null,
  lastMessageAt: number | null,
  startedAt: number | null,
  finishedAt: number | null,
  reason: string | null,
];

export function encodeRow(r: DeviceRow): WireRow {
  return [
    r.thing,
    r.status,
    r.phase ?? null,
    r.bytes,
    r.total,
    Math.round(r.rate),
    r.eta ?? null,
    r.lastMessageAt ?? null,
    r.startedAt ?? null,
    r.finishedAt ?? null,
    r.reason ?? null,
  ];
}

export function decodeRow(w: WireRow): DeviceRow {
  const row: DeviceRow = { thing: w[0], status: w[1], bytes: w[3], total: w[4], rate: w[5] };
  if (w[2] !== null) row.phase = w[2];
  if (w[6] !== null) row.eta = w[6];
  if (w[7] !== null) row.lastMessageAt = w[7];
  if (w[8] !== null) row.startedAt = w[8];
  if (w[9] !== null) row.finishedAt = w[9];
  if (w[10] !== null) row.reason = w[10];
  return row;
}

export type StatusCounts = Record<ExecutionStatusName, number>;

export function emptyCounts(): StatusCounts {
  return Object.fromEntries(EXECUTION_STATUSES.map((s) => [s, 0])) as StatusCounts;
}

export function countByStatus(rows: Iterable<DeviceRow>): StatusCounts {
  const counts = emptyCounts();
  for (const r of rows) {
    if (r.status in counts) counts[r.status as ExecutionStatusName]++;
  }
  return counts;
}

/** What the State column says: the Jobs status, refined by the agent's phase while IN_PROGRESS. */
export function displayState(r: DeviceRow): string {
  if (r.status === 'IN_PROGRESS' && r.phase) return r.phase;
  return r.status;
}

/** 0–100. A SUCCEEDED execution is complete even if no progress message was seen. */
export function percentOf(r: DeviceRow): number {
  if (r.total > 0) return Math.min(100, (r.bytes / r.total) * 100);
  return r.status === 'SUCCEEDED' ? 100 : 0;
}

/**
 * The fields of AWS's DescribeJob `job` (API reference, Job) that the page shows, with dates as epoch ms.
 * Every field is optional: a stack that does not implement a configuration leaves it out and the page
 * shows "—".
 */
export interface JobInfo {
  jobId: string;
  status?: string;
  targetSelection?: string;
  description?: string;
  comment?: string;
  reasonCode?: string;
  forceCanceled?: boolean;
  createdAt?: number;
  lastUpdatedAt?: number;
  completedAt?: number;
  targets?: string[];
  /** jobProcessDetails.numberOf<Status>Things, keyed by execution status. */
  processDetails?: Partial<StatusCounts>;
  rollout?: RolloutConfig;
  abort?: AbortCriterion[];
  inProgressTimeoutInMinutes?: number;
  retry?: { failureType?: string; numberOfRetries?: number }[];
}

/** AWS's JobExecutionsRolloutConfig. */
export interface RolloutConfig {
  maximumPerMinute?: number;
  exponentialRate?: {
    baseRatePerMinute?: number;
    incrementFactor?: number;
    rateIncreaseCriteria?: { numberOfNotifiedThings?: number; numberOfSucceededThings?: number };
  };
}

/** AWS's AbortCriteria. */
export interface AbortCriterion {
  failureType?: string;
  action?: string;
  thresholdPercentage?: number;
  minNumberOfExecutedThings?: number;
}

/** One entry of the job list. */
export interface JobListEntry {
  jobId: string;
  status?: string;
  createdAt?: number;
  completedAt?: number;
  /** Per-status execution counts (jobProcessDetails), when known. */
  counts?: Partial<StatusCounts>;
}

/** Server-sent events, named by their `event:` field. */
export interface StreamEvents {
  /** The job list; `selected` is the job this stream follows (the most recent one unless asked). */
  jobs: { now: number; jobs: JobListEntry[]; selected?: string };
  /** DescribeJob of the selected job. */
  job: { now: number; job: JobInfo };
  /** Every row of the selected job (sent first, and after a reload of the executions). */
  snapshot: { now: number; jobId: string; rows: WireRow[] };
  /** The rows that changed since the last batch. */
  rows: { now: number; jobId: string; rows: WireRow[] };
  /** The live feed's connection state, and why it is down. */
  feed: { now: number; state: string; detail?: string };
}
