import type { Scheduler, TimerHandle } from '../../../../src/cloud/jobs/clock.ts';

/**
 * A Scheduler whose time moves only when a test says so: `advance(ms)` runs every timer that falls due,
 * in order, with `now()` at each timer's own time. No test waits for real time.
 */
export class FakeScheduler implements Scheduler {
  private time: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2030, 0, 1, 12, 0, 0)) {
    this.time = start;
  }

  now = (): number => this.time;

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.time + Math.max(0, delayMs), fn });
    return { cancel: () => this.timers.delete(id) };
  }

  /** Moves the clock forward by `ms`, firing what falls due on the way. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let nextId: number | undefined;
      let nextAt = Number.POSITIVE_INFINITY;
      for (const [id, t] of this.timers) {
        if (
          t.at <= end &&
          (t.at < nextAt || (t.at === nextAt && id < (nextId ?? Number.POSITIVE_INFINITY)))
        ) {
          nextId = id;
          nextAt = t.at;
        }
      }
      if (nextId === undefined) break;
      const t = this.timers.get(nextId);
      this.timers.delete(nextId);
      this.time = Math.max(this.time, nextAt);
      t?.fn();
    }
    this.time = end;
  }

  /** Moves the clock to an absolute time (never backwards). */
  advanceTo(at: number): void {
    this.advance(Math.max(0, at - this.time));
  }

  /** Armed timers (for tests that check nothing is left behind). */
  get pending(): number {
    return this.timers.size;
  }
}
