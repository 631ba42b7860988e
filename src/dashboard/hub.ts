import type { IoTClient } from '@aws-sdk/client-iot';
import { type Clock, systemClock, unrefTimer } from '../shared/clock.ts';
import { errorMessage } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { THING_NAME_PATTERN } from '../shared/topics.ts';
import { readExecutions, readJobInfo, readJobList } from './iot-reads.ts';
import { ExecutionLookups } from './lookups.ts';
import { countByStatus, type JobInfo, type JobListEntry, type StreamEvents } from './model.ts';
import { JobTracker, NotifySchema, progressFacts } from './tracker.ts';

/**
 * The dashboard server's state: the job list, one {@link JobTracker} per job that a page is watching,
 * and the pages' event streams. MQTT messages come in through {@link Hub.onMessage}; every `flushMs` the
 * rows that changed go out to the pages of their job as one batch (a fleet of 10,000 devices publishing
 * once a second is then 4 events a second per page, not 10,000).
 *
 * AWS pushes no event when a job's own status or counts change (unless IoT event notifications are
 * enabled), so the server re-reads DescribeJob shortly after the notifications that can change them,
 * and every `refreshMs` while a page is open. The page itself never polls.
 */

/** One page's stream. `write` returns false when the socket's buffer is full (the page lags). */
export interface StreamClient {
  write<K extends keyof StreamEvents>(event: K, data: StreamEvents[K]): boolean;
  problem(message: string): void;
}

interface Watched {
  tracker: JobTracker;
  clients: Set<StreamClient>;
  info?: JobInfo;
  infoChanged: boolean;
  loaded: Promise<void>;
  cancelDescribe?: () => void;
  /** A DescribeJob read is on the wire; a notification now may not be in its answer. */
  describing?: boolean;
  /** A notification came while `describing`: read again once that read is in. */
  describeAgain?: boolean;
  cancelIdle?: () => void;
}

export interface HubOptions {
  iot: IoTClient;
  progressPrefix: string;
  /** Clock and timers; default the system's (timers that never keep the process alive). */
  clock?: Clock;
  logger?: Logger;
  /** How often changed rows go out (ms). */
  flushMs?: number;
  /** How often DescribeJob of a watched job is re-read while a page is open (ms); the job list, 3× that. */
  refreshMs?: number;
  /** Jobs in the list that get per-status counts (one DescribeJob each). */
  listCounts?: number;
  /** Failed/rejected executions whose reason is looked up at load (one DescribeJobExecution each). */
  maxReasonLookups?: number;
}

const TERMINAL_FAILURES = new Set(['FAILED', 'REJECTED', 'TIMED_OUT', 'CANCELED']);
const NOTIFY = /^\$aws\/things\/([^/]+)\/jobs\/notify$/;
/** Progress messages are ≤ 1 KB; anything much larger is not one (the broker caps payloads at 128 KB). */
const MAX_PROGRESS_BYTES = 16 * 1024;

export class Hub {
  private readonly iot: IoTClient;
  private readonly prefix: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly flushMs: number;
  private readonly refreshMs: number;
  private readonly listCounts: number;
  private readonly maxReasonLookups: number;
  private readonly watched = new Map<string, Watched>();
  /**
   * Pages whose socket buffer is full: `draining` until it empties (nothing missed yet), `stale` once a
   * batch was skipped for them (they get a fresh snapshot when it empties, not the batches they missed).
   */
  private readonly lagging = new Map<StreamClient, 'draining' | 'stale'>();
  /** Every open stream, with the job it follows (none while there is no job at all). */
  private readonly clients = new Map<StreamClient, string | undefined>();
  private jobs: JobListEntry[] = [];
  private jobsLoaded: Promise<void> | undefined;
  private jobsReadAt = 0;
  private jobsChanged = false;
  private cancelJobsRefresh: (() => void) | undefined;
  private readonly lookups: ExecutionLookups;
  private stopTimers: (() => void)[] = [];
  private closed = false;
  private feed: StreamEvents['feed'] = { now: 0, state: 'connecting' };

  constructor(o: HubOptions) {
    this.iot = o.iot;
    this.prefix = `${o.progressPrefix}/`;
    this.clock = o.clock ?? systemClock;
    this.log = o.logger ?? silentLogger;
    this.flushMs = o.flushMs ?? 250;
    this.refreshMs = o.refreshMs ?? 10_000;
    this.listCounts = o.listCounts ?? 25;
    this.maxReasonLookups = o.maxReasonLookups ?? 200;
    this.lookups = new ExecutionLookups(
      o.iot,
      (jobId, thing, facts) => this.watched.get(jobId)?.tracker.applyExecution(thing, facts),
      this.log,
    );
  }

  /** Registers a page's stream: sends the job list, the selected job and its rows; returns the unsubscribe. */
  async subscribe(client: StreamClient, requested?: string): Promise<() => void> {
    // Counted at once, before any await: a page that reselects opens its new stream before the old one
    // has closed, and the old one's close must not stop the timers the new one needs.
    this.clients.set(client, requested);
    this.startTimers();
    try {
      await this.loadJobs();
    } catch (err) {
      client.problem(`cannot list jobs: ${errorMessage(err)}`);
    }
    const selected = requested ?? this.jobs[0]?.jobId;
    this.clients.set(client, selected);
    const unsubscribe = () => {
      this.clients.delete(client);
      this.lagging.delete(client);
      const w = selected ? this.watched.get(selected) : undefined;
      if (w && selected) {
        w.clients.delete(client);
        // Keep the rows a while: a page that reloads or reselects must not reload 10,000 rows.
        if (w.clients.size === 0) w.cancelIdle = this.after(30_000, () => this.unwatch(selected));
      }
      if (this.clients.size === 0) this.stopAllTimers();
    };
    const now = this.clock.now();
    client.write('feed', { ...this.feed, now });
    client.write('jobs', { now, jobs: this.withLiveCounts(), ...(selected ? { selected } : {}) });
    if (!selected) return unsubscribe;
    const w = this.watch(selected);
    w.clients.add(client);
    w.cancelIdle?.();
    w.cancelIdle = undefined;
    try {
      await w.loaded;
      if (!w.info) client.problem(`job ${selected} not found`);
    } catch (err) {
      client.problem(`cannot read job ${selected}: ${errorMessage(err)}`);
    }
    this.sendFull(w, client);
    return unsubscribe;
  }

  /** A page's socket drained: a page that missed batches gets a fresh snapshot instead of them. */
  resync(client: StreamClient): void {
    const lag = this.lagging.get(client);
    this.lagging.delete(client);
    if (lag !== 'stale') return;
    for (const w of this.watched.values()) if (w.clients.has(client)) this.sendFull(w, client);
  }

  /** The live feed's state changed: every page shows it. */
  setFeedState(state: string, detail?: string): void {
    this.feed = { now: this.clock.now(), state, ...(detail ? { detail } : {}) };
    for (const c of this.clients.keys()) c.write('feed', this.feed);
  }

  /** An MQTT message from the feed (progress or Jobs notify). */
  onMessage(topic: string, payload: Buffer): void {
    if (this.closed) return;
    if (topic.startsWith(this.prefix)) {
      const thing = topic.slice(this.prefix.length);
      if (!THING_NAME_PATTERN.test(thing) || payload.length > MAX_PROGRESS_BYTES) return;
      const facts = progressFacts(parseJson(payload));
      if (!facts) return;
      for (const w of this.watched.values()) w.tracker.applyProgress(thing, facts);
      if (facts.jobId !== undefined && !this.knownJob(facts.jobId)) this.scheduleJobList();
      return;
    }
    const m = NOTIFY.exec(topic);
    const thing = m?.[1];
    if (!thing || !THING_NAME_PATTERN.test(thing)) return;
    const parsed = NotifySchema.safeParse(parseJson(payload));
    if (!parsed.success) return;
    const msg = parsed.data;
    for (const w of this.watched.values()) {
      const outcome = w.tracker.applyNotify(thing, msg);
      if (outcome === 'describe') this.lookups.add(w.tracker.jobId, thing);
      if (outcome !== 'none') this.scheduleDescribe(w);
    }
    const listed = [...(msg.jobs?.QUEUED ?? []), ...(msg.jobs?.IN_PROGRESS ?? [])];
    if (listed.some((s) => !this.knownJob(s.jobId))) this.scheduleJobList();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.lookups.close();
    this.stopAllTimers();
    this.cancelJobsRefresh?.();
    for (const w of this.watched.values()) {
      w.cancelDescribe?.();
      w.cancelIdle?.();
    }
    this.watched.clear();
  }

  // --- internals -------------------------------------------------------------------------------------

  private knownJob(jobId: string): boolean {
    return this.jobs.some((j) => j.jobId === jobId);
  }

  private startTimers(): void {
    if (this.stopTimers.length > 0 || this.closed) return;
    this.stopTimers.push(
      this.every(this.flushMs, () => this.flush()),
      this.every(this.refreshMs, () => {
        for (const w of this.watched.values()) if (w.clients.size > 0) this.scheduleDescribe(w);
      }),
      // The list costs a ListJobs and up to `listCounts` DescribeJobs: read it less often.
      this.every(this.refreshMs * 3, () => this.scheduleJobList()),
    );
  }

  /** Calls `fn` once after `ms`; returns the cancel function. */
  private after(ms: number, fn: () => void): () => void {
    const h = unrefTimer(this.clock.setTimeout(fn, ms));
    return () => this.clock.clear(h);
  }

  /** Calls `fn` every `ms`; returns the cancel function. */
  private every(ms: number, fn: () => void): () => void {
    const h = unrefTimer(this.clock.setInterval(fn, ms));
    return () => this.clock.clear(h);
  }

  private stopAllTimers(): void {
    for (const stop of this.stopTimers) stop();
    this.stopTimers = [];
  }

  private watch(jobId: string): Watched {
    const w = this.watched.get(jobId);
    if (w) return w;
    const tracker = new JobTracker(jobId, () => this.clock.now());
    const entry: Watched = { tracker, clients: new Set(), infoChanged: false, loaded: Promise.resolve() };
    entry.loaded = this.load(entry).catch((err: unknown) => {
      // A failed read is not cached: the next page to open this job tries again.
      if (this.watched.get(jobId) === entry && entry.clients.size <= 1) this.watched.delete(jobId);
      throw err;
    });
    this.watched.set(jobId, entry);
    return entry;
  }

  private unwatch(jobId: string): void {
    const w = this.watched.get(jobId);
    if (!w || w.clients.size > 0) return;
    w.cancelDescribe?.();
    this.watched.delete(jobId);
  }

  private async load(w: Watched): Promise<void> {
    const jobId = w.tracker.jobId;
    const info = await readJobInfo(this.iot, jobId);
    if (!info) return;
    w.info = info;
    const requestedAt = this.clock.now();
    const executions = await readExecutions(this.iot, jobId);
    for (const thing of w.tracker.loadSnapshot(executions, requestedAt)) this.lookups.add(jobId, thing);
    w.tracker.takeDirty();
    let n = 0;
    for (const e of executions) {
      if (!TERMINAL_FAILURES.has(e.status)) continue;
      if (n++ >= this.maxReasonLookups) break;
      this.lookups.add(jobId, e.thing);
    }
  }

  private sendFull(w: Watched, client: StreamClient): void {
    const now = this.clock.now();
    if (w.info) client.write('job', { now, job: w.info });
    const ok = client.write('snapshot', { now, jobId: w.tracker.jobId, rows: w.tracker.allRows() });
    if (!ok) this.lagging.set(client, 'draining');
  }

  private flush(): void {
    const now = this.clock.now();
    if (this.jobsChanged) {
      this.jobsChanged = false;
      const jobs = this.withLiveCounts();
      for (const c of this.clients.keys()) c.write('jobs', { now, jobs });
    }
    for (const w of this.watched.values()) {
      const rows = w.tracker.takeDirty();
      const job = w.infoChanged ? w.info : undefined;
      w.infoChanged = false;
      for (const c of w.clients) {
        if (this.lagging.has(c)) {
          if (rows.length > 0 || job) this.lagging.set(c, 'stale');
          continue;
        }
        if (job) c.write('job', { now, job });
        if (rows.length > 0 && !c.write('rows', { now, jobId: w.tracker.jobId, rows })) {
          this.lagging.set(c, 'draining');
        }
      }
    }
  }

  /** The job list, with a watched job's counts taken from its live rows. */
  private withLiveCounts(): JobListEntry[] {
    return this.jobs.map((j) => {
      const w = this.watched.get(j.jobId);
      return w && w.tracker.rows.size > 0 ? { ...j, counts: countByStatus(w.tracker.rows.values()) } : j;
    });
  }

  /**
   * The job list for a page that opens: read again unless a read finished in the last two seconds and
   * no notification since has named an unknown job (a page must open on the job created just before
   * it, and many pages opening at once share one read).
   */
  private loadJobs(): Promise<void> {
    const stale = this.cancelJobsRefresh !== undefined || this.clock.now() - this.jobsReadAt > 2000;
    if (this.jobsLoaded && stale) this.jobsLoaded = undefined;
    this.jobsLoaded ??= this.refreshJobs().catch((err: unknown) => {
      this.jobsLoaded = undefined;
      throw err;
    });
    return this.jobsLoaded;
  }

  private async refreshJobs(): Promise<void> {
    try {
      const jobs = await readJobList(this.iot, this.listCounts);
      this.jobsReadAt = this.clock.now();
      if (JSON.stringify(jobs) !== JSON.stringify(this.jobs)) this.jobsChanged = true;
      this.jobs = jobs;
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'dashboard: cannot list jobs');
      throw err;
    }
  }

  /** At most one job-list read per second, whatever triggers it. */
  private scheduleJobList(): void {
    if (this.cancelJobsRefresh || this.closed) return;
    this.cancelJobsRefresh = this.after(1000, () => {
      this.refreshJobs()
        .catch(() => {})
        .finally(() => {
          this.cancelJobsRefresh = undefined;
        });
    });
  }

  /**
   * Re-reads DescribeJob half a second after the notifications that can change it (coalesced). One that
   * comes while a read is on the wire is not coalesced into it (the service may have answered before the
   * change: the job that the abort just cancelled still read IN_PROGRESS until the periodic refresh); it
   * gets a read of its own once that one is in.
   */
  private scheduleDescribe(w: Watched): void {
    if (this.closed) return;
    if (w.cancelDescribe) {
      if (w.describing) w.describeAgain = true;
      return;
    }
    w.cancelDescribe = this.after(500, () => {
      w.describing = true;
      readJobInfo(this.iot, w.tracker.jobId)
        .then((info) => {
          if (info && JSON.stringify(info) !== JSON.stringify(w.info)) {
            const statusChanged = info.status !== w.info?.status;
            w.info = info;
            w.infoChanged = true;
            if (statusChanged) this.scheduleJobList();
          }
        })
        .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'dashboard: DescribeJob failed'))
        .finally(() => {
          w.cancelDescribe = undefined;
          w.describing = false;
          if (w.describeAgain) {
            w.describeAgain = false;
            this.scheduleDescribe(w);
          }
        });
    });
  }
}

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}
