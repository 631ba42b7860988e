/**
 * The SQLite schema of the Jobs store and the mapping between rows and records (types.ts).
 */
import type {
  ExecutionRecord,
  ExecutionStatus,
  JobRecord,
  JobStatus,
  TargetSelection,
  ThingGroupRecord,
  ThingRecord,
} from './types.ts';

export const SCHEMA_VERSION = 1;

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
  return j;
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
  ] as const;
}
