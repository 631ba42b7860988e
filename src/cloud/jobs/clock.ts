/**
 * The Jobs service's only view of time: a clock and a one-shot timer, injected like the store. Production
 * uses `systemScheduler` (Date.now + unref'd setTimeout); tests pass a fake one and move time by hand, so
 * no test sleeps for a timeout, a rollout minute or a maintenance window.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Scheduler {
  /** Epoch milliseconds. */
  now(): number;
  /** Runs `fn` once after `delayMs` (negative means at once). The timer never keeps the process alive. */
  setTimer(delayMs: number, fn: () => void): TimerHandle;
}

/** setTimeout's largest delay; longer waits are re-armed when they fire. */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

export const systemScheduler: Scheduler = {
  now: Date.now,
  setTimer(delayMs, fn) {
    const t = setTimeout(fn, Math.min(Math.max(0, delayMs), MAX_TIMER_DELAY));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** The system timers with another clock (the `now` option of older callers). */
export function schedulerWithClock(now: () => number): Scheduler {
  return { now, setTimer: systemScheduler.setTimer };
}
