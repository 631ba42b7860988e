/**
 * The queries of the local Jobs service's SQLite store (better-sqlite3, synchronous): things, groups,
 * jobs and executions; rollout and template rows in rollout.ts. Opening, migrations, transactions
 * and durability (the WAL group commit) are JobsDatabase's (store/db.ts).
 *
 * Every state change is one `transaction()`; callers compose several writes inside it.
 */

import type {
  ExecutionRecord,
  ExecutionStatus,
  JobRecord,
  JobStatus,
  TargetSelection,
  ThingGroupRecord,
  ThingRecord,
} from '../types.ts';
import { JobsDatabase, StoreError } from './db.ts';
import { RolloutStore, TemplateStore } from './rollout.ts';
import {
  bool,
  type ExecutionRow,
  type GroupRow,
  type JobRow,
  jobValues,
  PENDING_ORDER,
  SCHEMA_VERSION,
  type Seq,
  type ThingRow,
  toExecution,
  toGroup,
  toJob,
  toThing,
} from './schema.ts';

export { StoreError } from './db.ts';
export { SCHEMA_VERSION, type Seq };

export class JobsStore extends JobsDatabase {
  /** Rollout backlog, wake-up times and per-job counters. */
  readonly rollout: RolloutStore;
  readonly templates: TemplateStore;

  constructor(dbPath: string) {
    super(dbPath);
    this.rollout = new RolloutStore(this.db);
    this.templates = new TemplateStore(this.db);
  }

  // ---- things ----

  insertThing(t: ThingRecord): void {
    this.db
      .prepare(
        `INSERT INTO things (thing_name, thing_arn, thing_id, attributes, version, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(t.thingName, t.thingArn, t.thingId, JSON.stringify(t.attributes), t.version, t.createdAt);
  }

  getThing(thingName: string): ThingRecord | undefined {
    const r = this.db.prepare('SELECT * FROM things WHERE thing_name = ?').get(thingName) as
      | ThingRow
      | undefined;
    return r === undefined ? undefined : toThing(r);
  }

  listThings(afterSeq: number, limit: number): Seq<ThingRecord>[] {
    const rows = this.db
      .prepare('SELECT * FROM things WHERE seq > ? ORDER BY seq LIMIT ?')
      .all(afterSeq, limit) as ThingRow[];
    return rows.map((r) => ({ seq: r.seq, item: toThing(r) }));
  }

  /** Deletes the thing and its group memberships; its executions stay (they name it). */
  deleteThing(thingName: string): void {
    this.db.prepare('DELETE FROM things WHERE thing_name = ?').run(thingName);
  }

  getNotifiedHead(thingName: string): string | null {
    const r = this.db.prepare('SELECT notified_head FROM things WHERE thing_name = ?').get(thingName) as
      | { notified_head: string | null }
      | undefined;
    return r?.notified_head ?? null;
  }

  setNotifiedHead(thingName: string, head: string | null): void {
    this.db.prepare('UPDATE things SET notified_head = ? WHERE thing_name = ?').run(head, thingName);
  }

  // ---- groups ----

  insertGroup(g: ThingGroupRecord): void {
    this.db
      .prepare(
        `INSERT INTO thing_groups (thing_group_name, thing_group_arn, thing_group_id, description, version, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(g.thingGroupName, g.thingGroupArn, g.thingGroupId, g.description ?? null, g.version, g.createdAt);
  }

  getGroup(name: string): ThingGroupRecord | undefined {
    const r = this.db.prepare('SELECT * FROM thing_groups WHERE thing_group_name = ?').get(name) as
      | GroupRow
      | undefined;
    return r === undefined ? undefined : toGroup(r);
  }

  /** Returns false when the thing already was a member. */
  addMember(groupName: string, thingName: string): boolean {
    const r = this.db
      .prepare('INSERT OR IGNORE INTO thing_group_members (thing_group_name, thing_name) VALUES (?, ?)')
      .run(groupName, thingName);
    return r.changes > 0;
  }

  /** Returns false when the thing was not a member. */
  removeMember(groupName: string, thingName: string): boolean {
    const r = this.db
      .prepare('DELETE FROM thing_group_members WHERE thing_group_name = ? AND thing_name = ?')
      .run(groupName, thingName);
    return r.changes > 0;
  }

  /** The groups a thing belongs to. */
  groupsOf(thingName: string): string[] {
    const rows = this.db
      .prepare('SELECT thing_group_name FROM thing_group_members WHERE thing_name = ? ORDER BY seq')
      .all(thingName) as { thing_group_name: string }[];
    return rows.map((r) => r.thing_group_name);
  }

  listMembers(groupName: string, afterSeq: number, limit: number): Seq<string>[] {
    const rows = this.db
      .prepare(
        'SELECT seq, thing_name FROM thing_group_members WHERE thing_group_name = ? AND seq > ? ORDER BY seq LIMIT ?',
      )
      .all(groupName, afterSeq, limit) as { seq: number; thing_name: string }[];
    return rows.map((r) => ({ seq: r.seq, item: r.thing_name }));
  }

  allMembers(groupName: string): string[] {
    const rows = this.db
      .prepare('SELECT thing_name FROM thing_group_members WHERE thing_group_name = ? ORDER BY seq')
      .all(groupName) as { thing_name: string }[];
    return rows.map((r) => r.thing_name);
  }

  // ---- jobs ----

  insertJob(j: JobRecord): void {
    this.db
      .prepare(
        `INSERT INTO jobs (job_id, job_arn, targets, target_selection, document, document_source, description, status,
           presigned_url_config, timeout_config, force_canceled, comment, reason_code, created_at, last_updated_at, completed_at,
           configs, job_template_arn, rollout_state)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(...jobValues(j));
  }

  /** Writes a job's mutable fields (status, cancel details, times, rollout state). */
  updateJob(j: JobRecord): void {
    const v = jobValues(j);
    this.db
      .prepare(
        `UPDATE jobs SET status = ?, force_canceled = ?, comment = ?, reason_code = ?, last_updated_at = ?, completed_at = ?,
           rollout_state = ?
         WHERE job_id = ?`,
      )
      .run(v[7], v[10], v[11], v[12], v[14], v[15], v[18], j.jobId);
  }

  getJob(jobId: string): JobRecord | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE job_id = ?').get(jobId) as JobRow | undefined;
    return r === undefined ? undefined : toJob(r);
  }

  deleteJob(jobId: string): void {
    this.db.prepare('DELETE FROM executions WHERE job_id = ?').run(jobId);
    this.db.prepare('DELETE FROM jobs WHERE job_id = ?').run(jobId);
  }

  listJobs(
    filter: { status?: JobStatus; targetSelection?: TargetSelection },
    afterSeq: number,
    limit: number,
  ): Seq<JobRecord>[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM jobs WHERE seq > ? AND (? IS NULL OR status = ?) AND (? IS NULL OR target_selection = ?)
         ORDER BY seq LIMIT ?`,
      )
      .all(
        afterSeq,
        filter.status ?? null,
        filter.status ?? null,
        filter.targetSelection ?? null,
        filter.targetSelection ?? null,
        limit,
      ) as JobRow[];
    return rows.map((r) => ({ seq: r.seq, item: toJob(r) }));
  }

  /** CONTINUOUS jobs still IN_PROGRESS: the ones that pick up things added to their groups later. */
  activeContinuousJobs(): JobRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM jobs WHERE target_selection = 'CONTINUOUS' AND status = 'IN_PROGRESS' ORDER BY seq`,
      )
      .all() as JobRow[];
    return rows.map(toJob);
  }

  // ---- executions ----

  private nextExecutionSeq(): number {
    const r = this.db
      .prepare(`UPDATE counters SET value = value + 1 WHERE name = 'execution_seq' RETURNING value`)
      .get() as { value: number };
    return r.value;
  }

  insertExecution(e: ExecutionRecord): void {
    this.db
      .prepare(
        `INSERT INTO executions (seq, job_id, thing_name, execution_number, status, status_details, queued_at, started_at,
           last_updated_at, version_number, force_canceled, step_timeout_at, in_progress_timeout_at, retry_attempt)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        this.nextExecutionSeq(),
        e.jobId,
        e.thingName,
        e.executionNumber,
        e.status,
        JSON.stringify(e.statusDetails),
        e.queuedAt,
        e.startedAt ?? null,
        e.lastUpdatedAt,
        e.versionNumber,
        bool(e.forceCanceled),
        e.stepTimeoutAt ?? null,
        e.inProgressTimeoutAt ?? null,
        e.retryAttempt,
      );
  }

  /** Every execution of a job on a thing, oldest first (a few: retries and re-additions). */
  executionsOf(jobId: string, thingName: string): (ExecutionRecord & { superseded: boolean })[] {
    const rows = this.db
      .prepare('SELECT * FROM executions WHERE job_id = ? AND thing_name = ? ORDER BY execution_number')
      .all(jobId, thingName) as ExecutionRow[];
    return rows.map((r) => ({ ...toExecution(r), superseded: r.superseded !== null }));
  }

  /** Marks an execution as replaced by a newer one (it leaves the per-status counts). */
  markSuperseded(e: ExecutionRecord): void {
    this.db
      .prepare(
        'UPDATE executions SET superseded = 1 WHERE job_id = ? AND thing_name = ? AND execution_number = ?',
      )
      .run(e.jobId, e.thingName, e.executionNumber);
  }

  /**
   * Writes an execution's mutable fields. Guarded by the previous versionNumber so a write based on a
   * stale read can never move the version backwards.
   */
  updateExecution(e: ExecutionRecord, previousVersion: number): void {
    if (e.versionNumber <= previousVersion) {
      throw new StoreError(`versionNumber must increase (${previousVersion} → ${e.versionNumber})`);
    }
    const r = this.db
      .prepare(
        `UPDATE executions SET status = ?, status_details = ?, started_at = ?, last_updated_at = ?, version_number = ?,
           force_canceled = ?, step_timeout_at = ?, in_progress_timeout_at = ?
         WHERE job_id = ? AND thing_name = ? AND execution_number = ? AND version_number = ?`,
      )
      .run(
        e.status,
        JSON.stringify(e.statusDetails),
        e.startedAt ?? null,
        e.lastUpdatedAt,
        e.versionNumber,
        bool(e.forceCanceled),
        e.stepTimeoutAt ?? null,
        e.inProgressTimeoutAt ?? null,
        e.jobId,
        e.thingName,
        e.executionNumber,
        previousVersion,
      );
    if (r.changes !== 1) {
      throw new StoreError(`execution ${e.jobId}/${e.thingName}#${e.executionNumber} changed concurrently`);
    }
  }

  /** The given execution number, or the latest execution of the job on the thing. */
  getExecution(jobId: string, thingName: string, executionNumber?: number): ExecutionRecord | undefined {
    const r = (
      executionNumber === undefined
        ? this.db
            .prepare(
              'SELECT * FROM executions WHERE job_id = ? AND thing_name = ? ORDER BY execution_number DESC LIMIT 1',
            )
            .get(jobId, thingName)
        : this.db
            .prepare('SELECT * FROM executions WHERE job_id = ? AND thing_name = ? AND execution_number = ?')
            .get(jobId, thingName, executionNumber)
    ) as ExecutionRow | undefined;
    return r === undefined ? undefined : toExecution(r);
  }

  /** Non-terminal executions of a thing in AWS's pending-list order (IN_PROGRESS first, then queue time). */
  pendingForThing(thingName: string): ExecutionRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM executions WHERE thing_name = ? AND status IN ('QUEUED', 'IN_PROGRESS') ORDER BY ${PENDING_ORDER}`,
      )
      .all(thingName) as ExecutionRow[];
    return rows.map(toExecution);
  }

  /** Non-terminal executions of a job. */
  pendingForJob(jobId: string): ExecutionRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM executions WHERE job_id = ? AND status IN ('QUEUED', 'IN_PROGRESS') ORDER BY seq`,
      )
      .all(jobId) as ExecutionRow[];
    return rows.map(toExecution);
  }

  listExecutionsForJob(jobId: string, status: ExecutionStatus | undefined, afterSeq: number, limit: number) {
    const rows = this.db
      .prepare(
        `SELECT * FROM executions WHERE job_id = ? AND seq > ? AND (? IS NULL OR status = ?) ORDER BY seq LIMIT ?`,
      )
      .all(jobId, afterSeq, status ?? null, status ?? null, limit) as ExecutionRow[];
    return rows.map((r): Seq<ExecutionRecord> => ({ seq: r.seq, item: toExecution(r) }));
  }

  listExecutionsForThing(
    thingName: string,
    filter: { status?: ExecutionStatus; jobId?: string },
    afterSeq: number,
    limit: number,
  ): Seq<ExecutionRecord>[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM executions WHERE thing_name = ? AND seq > ? AND (? IS NULL OR status = ?) AND (? IS NULL OR job_id = ?)
         ORDER BY seq LIMIT ?`,
      )
      .all(
        thingName,
        afterSeq,
        filter.status ?? null,
        filter.status ?? null,
        filter.jobId ?? null,
        filter.jobId ?? null,
        limit,
      ) as ExecutionRow[];
    return rows.map((r) => ({ seq: r.seq, item: toExecution(r) }));
  }

  /** The earliest armed timer among IN_PROGRESS executions, if any. */
  nextDeadline(): number | undefined {
    const r = this.db
      .prepare(
        // Each min() is one step down a partial index (schema v3).
        `SELECT min(
           coalesce((SELECT min(step_timeout_at) FROM executions
                     WHERE status = 'IN_PROGRESS' AND step_timeout_at IS NOT NULL), 9e18),
           coalesce((SELECT min(in_progress_timeout_at) FROM executions
                     WHERE status = 'IN_PROGRESS' AND in_progress_timeout_at IS NOT NULL), 9e18)) AS d`,
      )
      .get() as { d: number };
    return r.d >= 9e18 ? undefined : r.d;
  }

  /** IN_PROGRESS executions whose step or in-progress timer has expired at `now`. */
  expired(now: number): ExecutionRecord[] {
    const rows = this.db
      .prepare(
        // Two range scans of the partial indexes (schema v3): only the expired rows are read.
        `SELECT * FROM executions
           WHERE status = 'IN_PROGRESS' AND step_timeout_at IS NOT NULL AND step_timeout_at <= ?
         UNION
         SELECT * FROM executions
           WHERE status = 'IN_PROGRESS' AND in_progress_timeout_at IS NOT NULL AND in_progress_timeout_at <= ?
         ORDER BY seq`,
      )
      .all(now, now) as ExecutionRow[];
    return rows.map(toExecution);
  }
}
