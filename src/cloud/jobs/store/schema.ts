/**
 * The SQLite schema of the Jobs store and the mapping between rows and records (types.ts).
 */
import type {
  ExecutionRecord,
  ExecutionStatus,
  JobRecord,
  JobStatus,
  RolloutState,
  TargetSelection,
  ThingGroupRecord,
  ThingRecord,
} from '../types.ts';

export const SCHEMA_VERSION = 3;

export const SCHEMA_V1 = `
CREATE TABLE things (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  thing_name TEXT NOT NULL UNIQUE,
  thing_arn TEXT NOT NULL,
  thing_id TEXT NOT NULL,
  attributes TEXT NOT NULL,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  -- Last head of the pending queue told to the device by notify-next ('jobId#executionNumber'), so a
  -- NextJobExecutionChanged is only sent when the head really changes (AWS "Jobs notifications").
  notified_head TEXT
);
CREATE TABLE thing_groups (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  thing_group_name TEXT NOT NULL UNIQUE,
  thing_group_arn TEXT NOT NULL,
  thing_group_id TEXT NOT NULL,
  description TEXT,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE thing_group_members (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  thing_group_name TEXT NOT NULL REFERENCES thing_groups(thing_group_name) ON DELETE CASCADE,
  thing_name TEXT NOT NULL REFERENCES things(thing_name) ON DELETE CASCADE,
  UNIQUE (thing_group_name, thing_name)
);
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL UNIQUE,
  job_arn TEXT NOT NULL,
  targets TEXT NOT NULL,
  target_selection TEXT NOT NULL,
  document TEXT NOT NULL,
  document_source TEXT,
  description TEXT,
  status TEXT NOT NULL,
  presigned_url_config TEXT,
  timeout_config TEXT,
  force_canceled INTEGER,
  comment TEXT,
  reason_code TEXT,
  created_at INTEGER NOT NULL,
  last_updated_at INTEGER NOT NULL,
  completed_at INTEGER
);
CREATE TABLE executions (
  -- Creation order of executions; never reused (taken from the counters table), so pagination tokens and
  -- the QUEUED order stay stable across deletions and restarts.
  seq INTEGER NOT NULL UNIQUE,
  job_id TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
  thing_name TEXT NOT NULL,
  execution_number INTEGER NOT NULL,
  status TEXT NOT NULL,
  status_details TEXT NOT NULL,
  queued_at INTEGER NOT NULL,
  started_at INTEGER,
  last_updated_at INTEGER NOT NULL,
  version_number INTEGER NOT NULL,
  force_canceled INTEGER,
  step_timeout_at INTEGER,
  in_progress_timeout_at INTEGER,
  PRIMARY KEY (job_id, thing_name, execution_number)
);
CREATE INDEX executions_thing ON executions(thing_name, status);
CREATE INDEX executions_deadlines ON executions(status, step_timeout_at, in_progress_timeout_at);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters(name, value) VALUES ('execution_seq', 0);
`;

/** Counter columns of job_stats, one per execution status (latest execution of each thing). */
const STATUS_COLUMNS: Record<string, string> = {
  QUEUED: 'queued',
  IN_PROGRESS: 'in_progress',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
  REJECTED: 'rejected',
  CANCELED: 'canceled',
  TIMED_OUT: 'timed_out',
  REMOVED: 'removed',
};
const plus = (rec: 'NEW' | 'OLD', sign: '+' | '-') =>
  Object.entries(STATUS_COLUMNS)
    .map(([status, col]) => `${col} = ${col} ${sign} (${rec}.status = '${status}')`)
    .join(', ');

/**
 * Version 2: job configurations, rollout backlog, retries, job templates, and job_stats —
 * per-job counters kept by triggers, so DescribeJob, abort checks, exponential rates and completion are
 * O(1) however many executions a job has (no scan per device update).
 */
export const SCHEMA_V2 = `
ALTER TABLE jobs ADD COLUMN configs TEXT;
ALTER TABLE jobs ADD COLUMN job_template_arn TEXT;
ALTER TABLE jobs ADD COLUMN rollout_state TEXT;
-- When the rollout scheduler must next look at the job (start, next release, window, end); NULL = never.
ALTER TABLE jobs ADD COLUMN wake_at INTEGER;
CREATE INDEX jobs_wake ON jobs(wake_at) WHERE wake_at IS NOT NULL;
ALTER TABLE executions ADD COLUMN retry_attempt INTEGER NOT NULL DEFAULT 0;
-- 1 once a newer execution of the same job on the same thing exists (a retry, a re-added thing).
ALTER TABLE executions ADD COLUMN superseded INTEGER;
CREATE INDEX executions_job ON executions(job_id, seq);
-- Targets the rollout has not notified yet, in notification order.
CREATE TABLE rollout_backlog (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
  thing_name TEXT NOT NULL,
  UNIQUE (job_id, thing_name)
);
CREATE INDEX rollout_backlog_job ON rollout_backlog(job_id, seq);
CREATE TABLE job_templates (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_template_id TEXT NOT NULL UNIQUE,
  record TEXT NOT NULL
);
CREATE TABLE job_stats (
  job_id TEXT PRIMARY KEY REFERENCES jobs(job_id) ON DELETE CASCADE,
  queued INTEGER NOT NULL DEFAULT 0,
  in_progress INTEGER NOT NULL DEFAULT 0,
  succeeded INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL DEFAULT 0,
  canceled INTEGER NOT NULL DEFAULT 0,
  timed_out INTEGER NOT NULL DEFAULT 0,
  removed INTEGER NOT NULL DEFAULT 0,
  -- Things notified: things with at least one execution of the job.
  things INTEGER NOT NULL DEFAULT 0,
  -- Executions that ended so, every attempt counted (abort criteria count failures, retries included).
  ended_succeeded INTEGER NOT NULL DEFAULT 0,
  ended_failed INTEGER NOT NULL DEFAULT 0,
  ended_rejected INTEGER NOT NULL DEFAULT 0,
  ended_timed_out INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER job_stats_insert AFTER INSERT ON executions BEGIN
  INSERT OR IGNORE INTO job_stats (job_id) VALUES (NEW.job_id);
  UPDATE job_stats SET ${plus('NEW', '+')}, things = things + (NEW.execution_number = 1) WHERE job_id = NEW.job_id;
END;
CREATE TRIGGER job_stats_status AFTER UPDATE OF status ON executions
WHEN OLD.status IS NOT NEW.status BEGIN
  UPDATE job_stats SET ${plus('OLD', '-')} WHERE job_id = OLD.job_id AND OLD.superseded IS NULL;
  UPDATE job_stats SET ${plus('NEW', '+')} WHERE job_id = NEW.job_id AND NEW.superseded IS NULL;
  UPDATE job_stats SET ended_succeeded = ended_succeeded + (NEW.status = 'SUCCEEDED'),
    ended_failed = ended_failed + (NEW.status = 'FAILED'), ended_rejected = ended_rejected + (NEW.status = 'REJECTED'),
    ended_timed_out = ended_timed_out + (NEW.status = 'TIMED_OUT')
  WHERE job_id = NEW.job_id;
END;
CREATE TRIGGER job_stats_superseded AFTER UPDATE OF superseded ON executions
WHEN OLD.superseded IS NULL AND NEW.superseded IS NOT NULL BEGIN
  UPDATE job_stats SET ${plus('NEW', '-')} WHERE job_id = NEW.job_id;
END;
INSERT INTO job_stats (job_id, queued, in_progress, succeeded, failed, rejected, canceled, timed_out, removed, things,
  ended_succeeded, ended_failed, ended_rejected, ended_timed_out)
SELECT job_id, sum(status = 'QUEUED'), sum(status = 'IN_PROGRESS'), sum(status = 'SUCCEEDED'), sum(status = 'FAILED'),
  sum(status = 'REJECTED'), sum(status = 'CANCELED'), sum(status = 'TIMED_OUT'), sum(status = 'REMOVED'),
  count(DISTINCT thing_name), sum(status = 'SUCCEEDED'), sum(status = 'FAILED'), sum(status = 'REJECTED'),
  sum(status = 'TIMED_OUT')
FROM executions GROUP BY job_id;
`;

/**
 * Version 3: the execution timers found by index. The deadline queries run on every Jobs request; with
 * one index over (status, step, in-progress) they read every IN_PROGRESS execution — 10,000 of them in a
 * fleet run, per request (docs/benchmarks.md, fleet). Partial indexes hold only the armed timers.
 */
export const SCHEMA_V3 = `
DROP INDEX executions_deadlines;
CREATE INDEX executions_step_deadline ON executions(step_timeout_at)
  WHERE status = 'IN_PROGRESS' AND step_timeout_at IS NOT NULL;
CREATE INDEX executions_progress_deadline ON executions(in_progress_timeout_at)
  WHERE status = 'IN_PROGRESS' AND in_progress_timeout_at IS NOT NULL;
`;

export interface ThingRow {
  seq: number;
  thing_name: string;
  thing_arn: string;
  thing_id: string;
  attributes: string;
  version: number;
  created_at: number;
  notified_head: string | null;
}
export interface GroupRow {
  seq: number;
  thing_group_name: string;
  thing_group_arn: string;
  thing_group_id: string;
  description: string | null;
  version: number;
  created_at: number;
}
export interface JobRow {
  seq: number;
  job_id: string;
  job_arn: string;
  targets: string;
  target_selection: string;
  document: string;
  document_source: string | null;
  description: string | null;
  status: string;
  presigned_url_config: string | null;
  timeout_config: string | null;
  force_canceled: number | null;
  comment: string | null;
  reason_code: string | null;
  created_at: number;
  last_updated_at: number;
  completed_at: number | null;
  configs: string | null;
  job_template_arn: string | null;
  rollout_state: string | null;
}
export interface ExecutionRow {
  seq: number;
  job_id: string;
  thing_name: string;
  execution_number: number;
  status: string;
  status_details: string;
  queued_at: number;
  started_at: number | null;
  last_updated_at: number;
  version_number: number;
  force_canceled: number | null;
  step_timeout_at: number | null;
  in_progress_timeout_at: number | null;
  retry_attempt: number;
  superseded: number | null;
}

export interface JobStatsRow {
  queued: number;
  in_progress: number;
  succeeded: number;
  failed: number;
  rejected: number;
  canceled: number;
  timed_out: number;
  removed: number;
  things: number;
  ended_succeeded: number;
  ended_failed: number;
  ended_rejected: number;
  ended_timed_out: number;
}

/** A row plus its position, for keyset pagination. */
export interface Seq<T> {
  seq: number;
  item: T;
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

export function toThing(r: ThingRow): ThingRecord {
  return {
    thingName: r.thing_name,
    thingArn: r.thing_arn,
    thingId: r.thing_id,
    attributes: JSON.parse(r.attributes) as Record<string, string>,
    version: r.version,
    createdAt: r.created_at,
  };
}

export function toGroup(r: GroupRow): ThingGroupRecord {
  const g: ThingGroupRecord = {
    thingGroupName: r.thing_group_name,
    thingGroupArn: r.thing_group_arn,
    thingGroupId: r.thing_group_id,
    version: r.version,
    createdAt: r.created_at,
  };
  if (r.description !== null) g.description = r.description;
  return g;
}

export function toJob(r: JobRow): JobRecord {
  const j: JobRecord = {
    jobId: r.job_id,
    jobArn: r.job_arn,
    targets: JSON.parse(r.targets) as string[],
    targetSelection: r.target_selection as TargetSelection,
    document: r.document,
    status: r.status as JobStatus,
    createdAt: r.created_at,
    lastUpdatedAt: r.last_updated_at,
  };
  if (r.document_source !== null) j.documentSource = r.document_source;
  if (r.description !== null) j.description = r.description;
  if (r.presigned_url_config !== null) j.presignedUrlConfig = JSON.parse(r.presigned_url_config);
  if (r.timeout_config !== null) j.timeoutConfig = JSON.parse(r.timeout_config);
  if (r.force_canceled !== null) j.forceCanceled = r.force_canceled === 1;
  if (r.comment !== null) j.comment = r.comment;
  if (r.reason_code !== null) j.reasonCode = r.reason_code;
  if (r.completed_at !== null) j.completedAt = r.completed_at;
  if (r.configs !== null) Object.assign(j, JSON.parse(r.configs) as JobConfigColumns);
  if (r.job_template_arn !== null) j.jobTemplateArn = r.job_template_arn;
  if (r.rollout_state !== null) j.rollout = JSON.parse(r.rollout_state) as RolloutState;
  return j;
}

/** The configurations kept as one JSON column. */
type JobConfigColumns = Pick<
  JobRecord,
  'jobExecutionsRolloutConfig' | 'abortConfig' | 'jobExecutionsRetryConfig' | 'schedulingConfig'
>;

export function configsOf(j: JobRecord): string | null {
  const c: JobConfigColumns = {};
  if (j.jobExecutionsRolloutConfig !== undefined) c.jobExecutionsRolloutConfig = j.jobExecutionsRolloutConfig;
  if (j.abortConfig !== undefined) c.abortConfig = j.abortConfig;
  if (j.jobExecutionsRetryConfig !== undefined) c.jobExecutionsRetryConfig = j.jobExecutionsRetryConfig;
  if (j.schedulingConfig !== undefined) c.schedulingConfig = j.schedulingConfig;
  return Object.keys(c).length === 0 ? null : JSON.stringify(c);
}

export function toExecution(r: ExecutionRow): ExecutionRecord {
  const e: ExecutionRecord = {
    jobId: r.job_id,
    thingName: r.thing_name,
    executionNumber: r.execution_number,
    status: r.status as ExecutionStatus,
    statusDetails: JSON.parse(r.status_details) as Record<string, string>,
    queuedAt: r.queued_at,
    lastUpdatedAt: r.last_updated_at,
    versionNumber: r.version_number,
    retryAttempt: r.retry_attempt,
  };
  const startedAt = opt(r.started_at);
  if (startedAt !== undefined) e.startedAt = startedAt;
  if (r.force_canceled !== null) e.forceCanceled = r.force_canceled === 1;
  const step = opt(r.step_timeout_at);
  if (step !== undefined) e.stepTimeoutAt = step;
  const inProgress = opt(r.in_progress_timeout_at);
  if (inProgress !== undefined) e.inProgressTimeoutAt = inProgress;
  return e;
}

export const bool = (v: boolean | undefined): number | null => (v === undefined ? null : v ? 1 : 0);

/** Pending = not terminal; the order of AWS's pending list: IN_PROGRESS first, then by queue time. */
export const PENDING_ORDER = `CASE status WHEN 'IN_PROGRESS' THEN 0 ELSE 1 END, queued_at, seq`;

export function jobValues(j: JobRecord) {
  return [
    j.jobId,
    j.jobArn,
    JSON.stringify(j.targets),
    j.targetSelection,
    j.document,
    j.documentSource ?? null,
    j.description ?? null,
    j.status,
    j.presignedUrlConfig === undefined ? null : JSON.stringify(j.presignedUrlConfig),
    j.timeoutConfig === undefined ? null : JSON.stringify(j.timeoutConfig),
    bool(j.forceCanceled),
    j.comment ?? null,
    j.reasonCode ?? null,
    j.createdAt,
    j.lastUpdatedAt,
    j.completedAt ?? null,
    configsOf(j),
    j.jobTemplateArn ?? null,
    j.rollout === undefined ? null : JSON.stringify(j.rollout),
  ] as const;
}
