import { z } from 'zod';
import { isTerminalExecutionStatus } from '../shared/execution-status.ts';
import { type DeviceRow, encodeRow, type WireRow } from './model.ts';

/**
 * The rows of one job, kept by the dashboard server from three sources: a snapshot of the job's
 * executions (ListJobExecutionsForJob), the devices' progress messages (`<prefix>/<thing>`), and the
 * Jobs service's `$aws/things/<thing>/jobs/notify` messages. It remembers which rows changed so the
 * server can send the page only those.
 *
 * Every field that comes off the wire is checked here: a broken or hostile device can send anything on
 * its progress topic, so numbers must be finite and non-negative and strings are bounded. The thing is
 * the topic's last level (which the broker binds to the publishing certificate), never the message's
 * `camera_id`.
 */

export interface ExecutionFacts {
  status: string;
  startedAt?: number;
  lastUpdatedAt?: number;
  reason?: string;
}

const MAX_TEXT = 1024;
const text = (v: unknown, max = MAX_TEXT): string | undefined =>
  typeof v === 'string' && v.length > 0 ? v.slice(0, max) : undefined;
const count = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;

/** The progress message's fields the dashboard reads (docs/original.md; src/device/progress/message.ts). */
export interface ProgressFacts {
  jobId?: string;
  state?: string;
  bytes?: number;
  total?: number;
  bytesPerSecond?: number;
  etaSeconds?: number;
}

export function progressFacts(payload: unknown): ProgressFacts | undefined {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) return undefined;
  const m = payload as Record<string, unknown>;
  return {
    jobId: text(m.jobId, 64),
    state: text(m.state, 32),
    bytes: count(m.Downloading),
    total: count(m['Total size']),
    bytesPerSecond: count(m.bytesPerSecond),
    etaSeconds: count(m.etaSeconds),
  };
}

const Summary = z.object({ jobId: z.string().max(64), startedAt: z.number().optional() }).loose();
/** `notify` (docs/protocol.md, Notifications): `{timestamp, jobs:{IN_PROGRESS:[…], QUEUED:[…]}}`. */
export const NotifySchema = z
  .object({
    jobs: z
      .object({ IN_PROGRESS: z.array(Summary).optional(), QUEUED: z.array(Summary).optional() })
      .loose()
      .optional(),
  })
  .loose();
export type NotifyMessage = z.infer<typeof NotifySchema>;

/** What the server must do after a notify: nothing, or describe the execution (it left the list). */
export type NotifyOutcome = 'none' | 'changed' | 'describe';

export class JobTracker {
  readonly rows = new Map<string, DeviceRow>();
  private readonly dirty = new Set<string>();
  /** When each row's status was last set from a live event (a snapshot older than that loses). */
  private readonly liveAt = new Map<string, number>();

  constructor(
    readonly jobId: string,
    private readonly now: () => number,
  ) {}

  /** Things whose notify said the job was gone before the snapshot arrived (see loadSnapshot). */
  private readonly goneBeforeSnapshot = new Set<string>();
  private loaded = false;

  /**
   * Merges a snapshot that was requested at `requestedAt`; live events newer than that win. Returns the
   * things to describe again: a notify that the job left a device's list may have arrived while the
   * snapshot was being read, and the snapshot may still say QUEUED or IN_PROGRESS for it.
   */
  loadSnapshot(executions: Iterable<{ thing: string } & ExecutionFacts>, requestedAt: number): string[] {
    for (const e of executions) {
      const live = this.liveAt.get(e.thing);
      if (live !== undefined && live >= requestedAt) continue;
      this.setExecution(e.thing, e);
    }
    this.loaded = true;
    const recheck = [...this.goneBeforeSnapshot].filter((thing) => {
      const row = this.rows.get(thing);
      return row !== undefined && !isTerminalExecutionStatus(row.status);
    });
    this.goneBeforeSnapshot.clear();
    return recheck;
  }

  applyExecution(thing: string, facts: ExecutionFacts): void {
    this.setExecution(thing, facts);
    this.liveAt.set(thing, this.now());
  }

  private setExecution(thing: string, facts: ExecutionFacts): void {
    const row = this.row(thing);
    row.status = facts.status;
    if (facts.startedAt !== undefined) row.startedAt = facts.startedAt;
    if (isTerminalExecutionStatus(facts.status)) {
      row.finishedAt = facts.lastUpdatedAt ?? row.finishedAt ?? this.now();
      row.eta = undefined;
      row.rate = 0;
    }
    if (facts.reason !== undefined) row.reason = facts.reason.slice(0, MAX_TEXT);
    this.dirty.add(thing);
  }

  /**
   * A progress message from `thing`. Messages naming another job are ignored; messages without a jobId
   * (the original program's format) count for a device already in this job.
   */
  applyProgress(thing: string, facts: ProgressFacts): boolean {
    if (facts.jobId !== undefined && facts.jobId !== this.jobId) return false;
    let row = this.rows.get(thing);
    if (!row) {
      if (facts.jobId === undefined) return false;
      row = this.row(thing);
      row.status = 'IN_PROGRESS';
    }
    const at = this.now();
    if (row.status === 'IN_PROGRESS') row.startedAt ??= at;
    const prevBytes = row.bytes;
    const prevAt = row.lastMessageAt;
    if (facts.total !== undefined) row.total = facts.total;
    if (facts.bytes !== undefined)
      row.bytes = facts.total !== undefined ? Math.min(facts.bytes, facts.total) : facts.bytes;
    if (facts.state !== undefined) row.phase = facts.state;
    if (facts.bytesPerSecond !== undefined) row.rate = facts.bytesPerSecond;
    else if (prevAt !== undefined && at > prevAt && row.bytes >= prevBytes)
      row.rate = ((row.bytes - prevBytes) * 1000) / (at - prevAt);
    row.eta =
      facts.etaSeconds ?? (row.rate > 0 && row.total > 0 ? (row.total - row.bytes) / row.rate : undefined);
    if (row.status === 'QUEUED') {
      row.status = 'IN_PROGRESS';
      row.startedAt ??= at;
    }
    row.lastMessageAt = at;
    this.dirty.add(thing);
    return true;
  }

  /**
   * A `notify` for `thing`: its pending executions. This job listed as QUEUED or IN_PROGRESS sets the
   * row; this job gone from the list of a device whose row was pending means the execution ended (or was
   * cancelled) and the caller should describe it for its final status and reason.
   */
  applyNotify(thing: string, msg: NotifyMessage): NotifyOutcome {
    const inProgress = msg.jobs?.IN_PROGRESS?.find((s) => s.jobId === this.jobId);
    const queued = msg.jobs?.QUEUED?.find((s) => s.jobId === this.jobId);
    const at = this.now();
    const row = this.rows.get(thing);
    if (inProgress || queued) {
      const status = inProgress ? 'IN_PROGRESS' : 'QUEUED';
      const r = row ?? this.row(thing);
      const changed = r.status !== status || !row;
      r.status = status;
      // Summary times are epoch seconds on the wire (docs/protocol.md, Wire format).
      if (inProgress?.startedAt !== undefined) r.startedAt ??= inProgress.startedAt * 1000;
      if (status === 'IN_PROGRESS') r.startedAt ??= at;
      r.lastMessageAt = at;
      this.liveAt.set(thing, at);
      this.dirty.add(thing);
      return changed ? 'changed' : 'none';
    }
    if (row && !isTerminalExecutionStatus(row.status)) {
      row.lastMessageAt = at;
      this.dirty.add(thing);
      return 'describe';
    }
    if (!row && !this.loaded) this.goneBeforeSnapshot.add(thing);
    return 'none';
  }

  takeDirty(): WireRow[] {
    const out: WireRow[] = [];
    for (const thing of this.dirty) {
      const row = this.rows.get(thing);
      if (row) out.push(encodeRow(row));
    }
    this.dirty.clear();
    return out;
  }

  allRows(): WireRow[] {
    return Array.from(this.rows.values(), encodeRow);
  }

  private row(thing: string): DeviceRow {
    let row = this.rows.get(thing);
    if (!row) {
      row = { thing, status: 'QUEUED', bytes: 0, total: 0, rate: 0 };
      this.rows.set(thing, row);
    }
    return row;
  }
}
