import { type Clock, sleep } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import { DownloadError } from '../errors.ts';
import { type DownloadSource, opt } from '../source/sources.ts';
import type { DownloadOptions } from './options.ts';
import { type FetchEnv, RangeFetch, RangesIgnoredError } from './range-fetch.ts';
import type { RangeScheduler, Span } from './range-scheduler.ts';
import { ACTION_BY_KIND, classifyFailure, RetryBudget } from './retry-policy.ts';

/**
 * The connections of one download and what each does after a failure: the download loop's table
 * (retry-policy.ts ACTION_BY_KIND) applied per connection. A network failure or a 5xx resumes that
 * connection's span after a backoff (its own budget); a changed object stops every connection and
 * restarts at 0; an expired presigned URL is refreshed once for all (the first connection to see the
 * 403 fetches it, the others use it); anything final stops every connection and fails the download.
 */
export interface Worker {
  id: number;
  running: Promise<void>;
  fetch: RangeFetch | undefined;
  /** Retired by the connection controller: finishes nothing more, its span goes back to the pool. */
  retiring: boolean;
  budget: RetryBudget;
  /** Its first body byte arrived, or its first request failed without one (told to the controller). */
  firstByteSettled: boolean;
}

/** What the policy needs from the download (download.ts's Download). */
export interface PolicyHost {
  readonly signal: AbortSignal;
  readonly log: Logger;
  readonly timers: Clock;
  readonly result: { requests: number; restarts: number; refreshes: number };
  source: DownloadSource;
  readonly scheduler: RangeScheduler;
  readonly active: ReadonlySet<Worker>;
  readonly doneBytes: number;
  fetchEnv(): FetchEnv;
  /** The server ignores Range: one connection from now on. */
  noRanges(): void;
  /** A connection's first request failed before any body byte (the connection controller's lost probe). */
  lostBeforeFirstByte(): void;
}

/** The download's options that rule retries, restarts and refreshes (options.ts says what each is). */
export type PolicyOptions = Pick<
  DownloadOptions,
  | 'fileName'
  | 'dir'
  | 'onRequest'
  | 'refreshSource'
  | 'retryWindowMs'
  | 'retries'
  | 'maxRestarts'
  | 'maxAttempts'
  | 'baseDelayMs'
  | 'maxDelayMs'
  | 'random'
>;

/** How a round of connections ended, when not with the whole object on disk. */
export type RoundEnd = { kind: 'fail'; error: DownloadError } | { kind: 'restart'; error: DownloadError };

export class WorkerPolicy {
  private ended: RoundEnd | undefined;
  private halt = new AbortController();
  private shortRequests = 0;
  private refreshing: Promise<void> | undefined;
  private seq = 0;

  constructor(
    private readonly host: PolicyHost,
    private readonly o: PolicyOptions,
  ) {}

  newWorker(): Worker {
    return {
      id: ++this.seq,
      running: Promise.resolve(),
      fetch: undefined,
      retiring: false,
      firstByteSettled: false,
      budget: new RetryBudget({
        timers: this.host.timers,
        ...opt('windowMs', this.o.retryWindowMs),
        ...opt('retries', this.o.retries),
        ...opt('baseDelayMs', this.o.baseDelayMs),
        ...opt('maxDelayMs', this.o.maxDelayMs),
        ...opt('random', this.o.random),
      }),
    };
  }

  /** The round's end (and a fresh start for the next round). */
  takeOutcome(): RoundEnd | undefined {
    const e = this.ended;
    this.ended = undefined;
    this.halt = new AbortController();
    return e;
  }

  /** Retires the `n` newest connections (never the last one). */
  retire(n: number): void {
    const live = [...this.host.active].filter((w) => !w.retiring).sort((a, b) => b.id - a.id);
    for (const w of live.slice(0, Math.min(n, live.length - 1))) {
      w.retiring = true;
      w.fetch?.cancel();
    }
  }

  private stopped(w: Worker): boolean {
    return this.ended !== undefined || this.host.signal.aborted || w.retiring;
  }

  /** One connection: spans until there is nothing left to take, the round ends, or it is retired. */
  async work(w: Worker): Promise<void> {
    const { scheduler } = this.host;
    let span: Span | undefined;
    try {
      while (!this.stopped(w)) {
        span ??= scheduler.take();
        if (!span) return;
        const env = this.host.fetchEnv();
        const f = new RangeFetch(env, span);
        w.fetch = f;
        const before = this.host.doneBytes;
        this.host.result.requests++;
        this.o.onRequest?.(span.cursor);
        try {
          if ((await f.run()) === 'done') {
            scheduler.release(span);
            span = undefined;
          } else this.countShort();
        } catch (err) {
          // Once per connection: its later requests are retries, not new connections.
          if (!w.firstByteSettled && !f.gotBytes && !this.stopped(w)) this.host.lostBeforeFirstByte();
          w.firstByteSettled = true;
          if (this.stopped(w) || !(await this.onFailure(err, w, before, env.source))) return;
        } finally {
          w.firstByteSettled ||= f.gotBytes;
          w.fetch = undefined;
          if (span) span.start = span.cursor;
        }
      }
    } finally {
      if (span) scheduler.release(span);
    }
  }

  /** A request ended before its span's end: counted against the hard cap. */
  private countShort(): boolean {
    const max = this.o.maxAttempts ?? 100;
    if (++this.shortRequests <= max) return true;
    this.end({
      kind: 'fail',
      error: new DownloadError('exhausted', `gave up after ${this.host.result.requests} requests`),
    });
    return false;
  }

  /** The table in action: true = try the span again, false = this connection stops. */
  private async onFailure(err: unknown, w: Worker, before: number, used: DownloadSource): Promise<boolean> {
    const c = classifyFailure(err, `${this.o.dir}/${this.o.fileName}.part`);
    if (c === 'abort') return false;
    if (err instanceof RangesIgnoredError) {
      this.host.noRanges();
      // Another connection streams the whole object: this one steps aside (its span goes back to it).
      const others = [...this.host.active].some((x) => x !== w && !x.retiring);
      if (others) return false;
    }
    if (!this.countShort()) return false;
    const maxRestarts = this.o.maxRestarts ?? 5;
    switch (ACTION_BY_KIND[c.kind]) {
      case 'fail':
        this.end({ kind: 'fail', error: c });
        return false;
      case 'restart':
        if (this.host.result.restarts >= maxRestarts) {
          const error = new DownloadError('exhausted', `the object kept changing (${c.message})`, {
            cause: c,
          });
          this.end({ kind: 'fail', error });
        } else {
          this.host.log.warn(
            { file: this.o.fileName, kind: c.kind, err: c.message },
            'restarting download at 0',
          );
          this.end({ kind: 'restart', error: c });
        }
        return false;
      case 'refresh':
        return this.refresh(c, used);
      case 'resume':
        return this.backOff(c, w, before);
    }
  }

  /** A 403 on a presigned URL: one refresh for all connections (a URL refreshed meanwhile is reused). */
  private async refresh(c: DownloadError, used: DownloadSource): Promise<boolean> {
    const { refreshSource, maxRestarts = 5 } = this.o;
    if (this.host.source !== used) return true;
    if (!refreshSource || this.host.result.refreshes >= maxRestarts) {
      this.end({ kind: 'fail', error: new DownloadError('http', c.message, { status: 403, cause: c }) });
      return false;
    }
    this.refreshing ??= (async () => {
      this.host.result.refreshes++;
      this.host.log.info({ file: this.o.fileName }, 'presigned URL refused (403); fetching a fresh one');
      this.host.source = await refreshSource();
    })().finally(() => {
      this.refreshing = undefined;
    });
    try {
      await this.refreshing;
      return true;
    } catch (err) {
      const e = classifyFailure(err, this.o.fileName);
      if (e !== 'abort') this.end({ kind: 'fail', error: e });
      return false;
    }
  }

  /** Waits before resuming the span, or fails the download when the connection's budget is spent. */
  private async backOff(c: DownloadError, w: Worker, before: number): Promise<boolean> {
    let delay: number;
    try {
      delay = w.budget.next(c, this.host.doneBytes > before);
    } catch (err) {
      this.end({ kind: 'fail', error: err as DownloadError });
      return false;
    }
    this.host.log.warn(
      { file: this.o.fileName, connection: w.id, delay, err: c.message },
      'download interrupted; resuming with Range',
    );
    const halt = this.halt.signal;
    const onStop = () => this.halt.abort();
    this.host.signal.addEventListener('abort', onStop, { once: true });
    try {
      await sleep(delay, { signal: halt, clock: this.host.timers, onAbort: 'resolve' });
    } finally {
      this.host.signal.removeEventListener('abort', onStop);
    }
    return !this.stopped(w);
  }

  /** Ends the round for every connection; a failure outranks a restart. */
  private end(e: RoundEnd): void {
    if (this.ended && !(this.ended.kind === 'restart' && e.kind === 'fail')) return;
    this.ended = e;
    for (const w of this.host.active) w.fetch?.cancel();
    this.halt.abort();
  }
}
