import { AbortedError } from './errors.ts';

/**
 * The one view of time, injected (as stores and sources are) into everything whose behaviour depends on
 * it: the Jobs service's deadlines and rollouts, presigned-URL expiry, credentials lifetimes, the device's
 * retry budgets, backoff, throttles and watchdogs, the dashboard's refreshes. Production passes
 * `systemClock`; tests pass a `ManualClock` and move time by hand, so no test sleeps for a timeout, an
 * expiry or a backoff. One place, too, for `sleep` and the backoff formula.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Runs `fn` once after `ms` (negative means at once). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Runs `fn` every `ms` until cleared. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timeout or an interval; clearing one that already ran, or `undefined`, does nothing. */
  clear(handle: TimerHandle | undefined): void;
}

declare const timerHandle: unique symbol;
/** Opaque: whatever the Clock implementation returns, good only for its `clear`. */
export type TimerHandle = { readonly [timerHandle]: true };

/** setTimeout's largest delay (a signed 32-bit count of ms); Node fires a longer one after 1 ms. */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;

const clampDelay = (ms: number) => Math.min(Math.max(0, ms), MAX_TIMER_DELAY);

/**
 * The wall clock and Node's timers. Delays are capped at MAX_TIMER_DELAY (about 24.8 days): a longer
 * timer fires early, and its owner, finding its deadline not yet reached, arms another.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, clampDelay(ms)) as unknown as TimerHandle,
  setInterval: (fn, ms) => setInterval(fn, clampDelay(ms)) as unknown as TimerHandle,
  clear: (h) => {
    // clearTimeout and clearInterval are interchangeable in Node (timers docs, "Cancelling timers").
    if (h !== undefined) clearTimeout(h as unknown as NodeJS.Timeout);
  },
};

/**
 * Lets a timer not keep the process alive (Node's `timeout.unref()`), for background timers of a
 * service whose owner closes it. A handle without `unref` (a ManualClock's) is returned as is.
 */
export function unrefTimer(handle: TimerHandle): TimerHandle {
  (handle as unknown as { unref?: () => void }).unref?.();
  return handle;
}

/**
 * Waits `ms` on `clock`. With a signal, an abort ends the wait early: `onAbort: 'reject'` (default)
 * rejects with AbortedError, `'resolve'` just returns (for loops that check the signal themselves).
 */
export function sleep(
  ms: number,
  opts: { signal?: AbortSignal; clock?: Clock; onAbort?: 'reject' | 'resolve' } = {},
): Promise<void> {
  const { signal } = opts;
  const clock = opts.clock ?? systemClock;
  const rejectOnAbort = (opts.onAbort ?? 'reject') === 'reject';
  return new Promise((resolve, reject) => {
    const aborted = () =>
      rejectOnAbort ? reject(new AbortedError('aborted', { cause: signal?.reason })) : resolve();
    if (signal?.aborted) return aborted();
    const onAbort = () => {
      clock.clear(t);
      aborted();
    };
    const t = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform in [0, min(cap, base·2^n)). */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 52)));
}

interface ManualTimer {
  id: number;
  due: number;
  fn: () => void;
  /** Period of an interval; undefined for a timeout. */
  every?: number;
}

/**
 * A clock for tests and simulations. Time moves only when told: `advance(ms)` fires the timers due in
 * that span, in due order (ties in the order they were set), intervals re-armed each time, letting
 * promise chains run between them; `advanceSync(ms)` does the same without yielding, for synchronous
 * code (the Jobs service). With `auto: true` every timer fires as soon as the event loop is otherwise
 * idle, the clock jumping to its due time: a retry loop that would back off for minutes runs in
 * milliseconds of real time, on a clock that says minutes passed.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: ManualTimer[] = [];
  private pumping = false;
  private readonly auto: boolean;

  constructor(opts: { start?: number; auto?: boolean } = {}) {
    this.t = opts.start ?? 1_700_000_000_000;
    this.auto = opts.auto ?? false;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.arm({ id: ++this.seq, due: this.t + Math.max(0, ms), fn });
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    // Node runs a 0 ms interval every 1 ms; so does this clock, or advance() would never end.
    const every = Math.max(1, ms);
    return this.arm({ id: ++this.seq, due: this.t + every, fn, every });
  }

  clear(handle: TimerHandle | undefined): void {
    const id = (handle as unknown as { id?: number } | undefined)?.id;
    if (id !== undefined) this.timers = this.timers.filter((x) => x.id !== id);
  }

  /** Pending timers (for assertions). */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves the clock forward by `ms`, firing every timer due on the way, with a macrotask between. */
  async advance(ms: number): Promise<void> {
    const target = this.t + Math.max(0, ms);
    for (;;) {
      await macrotask();
      if (!this.fireNext(target)) break;
    }
    this.t = target;
    await macrotask();
  }

  /** Moves the clock forward by `ms`, firing every timer due on the way, synchronously. */
  advanceSync(ms: number): void {
    const target = this.t + Math.max(0, ms);
    while (this.fireNext(target)) {}
    this.t = target;
  }

  private arm(timer: ManualTimer): TimerHandle {
    this.timers.push(timer);
    this.timers.sort((a, b) => a.due - b.due || a.id - b.id);
    if (this.auto) this.pump();
    return { id: timer.id } as unknown as TimerHandle;
  }

  /** Fires the earliest timer if it is due by `target`; false when none is. */
  private fireNext(target: number): boolean {
    const next = this.timers[0];
    if (!next || next.due > target) return false;
    this.timers.shift();
    this.t = Math.max(this.t, next.due);
    // An interval is re-armed (same handle) before it runs, so that `fn` may clear it.
    if (next.every !== undefined) this.arm({ ...next, due: next.due + next.every });
    next.fn();
    return true;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    const step = () => {
      if (!this.fireNext(Number.POSITIVE_INFINITY)) {
        this.pumping = false;
        return;
      }
      setImmediate(step);
    };
    setImmediate(step);
  }
}

function macrotask(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
