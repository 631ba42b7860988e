/**
 * The parts of the Jobs store that serve rollouts and templates: the backlog of targets not notified yet,
 * the per-job wake-up time of the rollout scheduler, the trigger-kept per-job counters (schema.ts,
 * job_stats) and job templates. They share the JobsStore's connection and transactions.
 */
import type Database from 'better-sqlite3';
import type { JobProcessDetails, JobTemplateRecord } from '../types.ts';
import type { JobStatsRow, Seq } from './schema.ts';

const ZERO_STATS: JobStatsRow = {
  queued: 0,
  in_progress: 0,
  succeeded: 0,
  failed: 0,
  rejected: 0,
  canceled: 0,
  timed_out: 0,
  removed: 0,
  things: 0,
  ended_succeeded: 0,
  ended_failed: 0,
  ended_rejected: 0,
  ended_timed_out: 0,
};

export class RolloutStore {
  constructor(private readonly db: Database.Database) {}

  /** Queues targets behind the rollout, in order; a thing already waiting keeps its place. */
  addToBacklog(jobId: string, things: Iterable<string>): void {
    const insert = this.db.prepare(
      'INSERT OR IGNORE INTO rollout_backlog (job_id, thing_name) VALUES (?, ?)',
    );
    for (const t of things) insert.run(jobId, t);
  }

  /** Takes (removes and returns) the next `n` waiting targets. O(n) with the (job_id, seq) index. */
  takeFromBacklog(jobId: string, n: number): string[] {
    if (n <= 0) return [];
    const rows = this.db
      .prepare('SELECT seq, thing_name FROM rollout_backlog WHERE job_id = ? ORDER BY seq LIMIT ?')
      .all(jobId, n) as { seq: number; thing_name: string }[];
    const last = rows.at(-1);
    if (last !== undefined) {
      this.db.prepare('DELETE FROM rollout_backlog WHERE job_id = ? AND seq <= ?').run(jobId, last.seq);
    }
    return rows.map((r) => r.thing_name);
  }

  /** Drops one waiting target (it left the job's targets); true when it was waiting. */
  dropFromBacklog(jobId: string, thingName: string): boolean {
    return (
      this.db.prepare('DELETE FROM rollout_backlog WHERE job_id = ? AND thing_name = ?').run(jobId, thingName)
        .changes > 0
    );
  }

  hasBacklog(jobId: string): boolean {
    return this.db.prepare('SELECT 1 FROM rollout_backlog WHERE job_id = ? LIMIT 1').get(jobId) !== undefined;
  }

  backlogSize(jobId: string): number {
    return (
      this.db.prepare('SELECT count(*) AS n FROM rollout_backlog WHERE job_id = ?').get(jobId) as {
        n: number;
      }
    ).n;
  }

  clearBacklog(jobId: string): void {
    this.db.prepare('DELETE FROM rollout_backlog WHERE job_id = ?').run(jobId);
  }

  /** Jobs that wait on a thing being notified (a thing deleted while waiting leaves them). */
  jobsWaitingFor(thingName: string): string[] {
    const rows = this.db
      .prepare('SELECT job_id FROM rollout_backlog WHERE thing_name = ?')
      .all(thingName) as {
      job_id: string;
    }[];
    return rows.map((r) => r.job_id);
  }

  setWake(jobId: string, at: number | undefined): void {
    this.db.prepare('UPDATE jobs SET wake_at = ? WHERE job_id = ?').run(at ?? null, jobId);
  }

  /** Jobs whose wake-up time has come, oldest first. */
  dueJobs(at: number): string[] {
    const rows = this.db
      .prepare('SELECT job_id FROM jobs WHERE wake_at IS NOT NULL AND wake_at <= ? ORDER BY wake_at, seq')
      .all(at) as { job_id: string }[];
    return rows.map((r) => r.job_id);
  }

  nextWake(): number | undefined {
    const r = this.db.prepare('SELECT min(wake_at) AS w FROM jobs WHERE wake_at IS NOT NULL').get() as {
      w: number | null;
    };
    return r.w ?? undefined;
  }

  /** The trigger-kept counters of a job (all zero before its first execution). */
  stats(jobId: string): JobStatsRow {
    const r = this.db.prepare('SELECT * FROM job_stats WHERE job_id = ?').get(jobId) as
      | JobStatsRow
      | undefined;
    return r ?? ZERO_STATS;
  }

  /** DescribeJob's counts: the latest execution of each thing, by status. */
  processDetails(jobId: string): JobProcessDetails {
    const s = this.stats(jobId);
    return {
      numberOfQueuedThings: s.queued,
      numberOfInProgressThings: s.in_progress,
      numberOfSucceededThings: s.succeeded,
      numberOfFailedThings: s.failed,
      numberOfRejectedThings: s.rejected,
      numberOfCanceledThings: s.canceled,
      numberOfTimedOutThings: s.timed_out,
      numberOfRemovedThings: s.removed,
    };
  }

  countExecutions(jobId: string): { total: number; pending: number } {
    const s = this.stats(jobId);
    return { total: s.things, pending: s.queued + s.in_progress };
  }
}

export class TemplateStore {
  constructor(private readonly db: Database.Database) {}

  insert(t: JobTemplateRecord): void {
    this.db
      .prepare('INSERT INTO job_templates (job_template_id, record) VALUES (?, ?)')
      .run(t.jobTemplateId, JSON.stringify(t));
  }

  get(id: string): JobTemplateRecord | undefined {
    const r = this.db.prepare('SELECT record FROM job_templates WHERE job_template_id = ?').get(id) as
      | { record: string }
      | undefined;
    return r === undefined ? undefined : (JSON.parse(r.record) as JobTemplateRecord);
  }

  list(afterSeq: number, limit: number): Seq<JobTemplateRecord>[] {
    const rows = this.db
      .prepare('SELECT seq, record FROM job_templates WHERE seq > ? ORDER BY seq LIMIT ?')
      .all(afterSeq, limit) as { seq: number; record: string }[];
    return rows.map((r) => ({ seq: r.seq, item: JSON.parse(r.record) as JobTemplateRecord }));
  }

  delete(id: string): boolean {
    return this.db.prepare('DELETE FROM job_templates WHERE job_template_id = ?').run(id).changes > 0;
  }
}
