import { AbortedError } from './errors.ts';

/**
 * The clock and timers, injected (as stores and sources are) so that retry budgets, backoff and
 * throttles run on a fake clock in tests instead of real sleeps. One place for `sleep` and the backoff
 * formula: the download loop, the Jobs client and the agent all use these.
 */
export interface Timers {
  /** Epoch milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** Opaque: whatever the Timers implementation returns. */
export type TimerHandle = { readonly __timer: true } | NodeJS.Timeout;

export const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => {
    if (h !== undefined) clearTimeout(h as NodeJS.Timeout);
  },
};

/**
 * Waits `ms` on `timers`. With a signal, an abort ends the wait early: `onAbort: 'reject'` (default)
 * rejects with AbortedError, `'resolve'` just returns (for loops that check the signal themselves).
 */
export function sleep(
  ms: number,
  opts: { signal?: AbortSignal; timers?: Timers; onAbort?: 'reject' | 'resolve' } = {},
): Promise<void> {
  const { signal } = opts;
  const timers = opts.timers ?? systemTimers;
  const rejectOnAbort = (opts.onAbort ?? 'reject') === 'reject';
  return new Promise((resolve, reject) => {
    const aborted = () =>
      rejectOnAbort ? reject(new AbortedError('aborted', { cause: signal?.reason })) : resolve();
    if (signal?.aborted) return aborted();
    const onAbort = () => {
      timers.clearTimeout(t);
      aborted();
    };
    const t = timers.setTimeout(() => {
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
}

/**
 * A fake clock for tests and simulations. Time moves only when told: `advance(ms)` fires the timers due
 * in that span, in order, letting promise chains run between them. With `auto: true` every timer fires
 * as soon as the event loop is otherwise idle, the clock jumping to its due time: a retry loop that
 * would back off for minutes runs in milliseconds of real time, on a clock that says minutes passed.
 */
export class ManualTimers implements Timers {
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
    const timer = { id: ++this.seq, due: this.t + Math.max(0, ms), fn };
    this.timers.push(timer);
    this.timers.sort((a, b) => a.due - b.due || a.id - b.id);
    if (this.auto) this.pump();
    return { __timer: true, id: timer.id } as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    const id = (handle as unknown as { id?: number } | undefined)?.id;
    this.timers = this.timers.filter((x) => x.id !== id);
  }

  /** Pending timers (for assertions). */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves the clock forward by `ms`, firing every timer due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      await macrotask();
      const next = this.timers[0];
      if (!next || next.due > target) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.due);
      next.fn();
    }
    this.t = target;
    await macrotask();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    const step = () => {
      const next = this.timers.shift();
      if (!next) {
        this.pumping = false;
        return;
      }
      this.t = Math.max(this.t, next.due);
      next.fn();
      setImmediate(step);
    };
    setImmediate(step);
  }
}

function macrotask(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
