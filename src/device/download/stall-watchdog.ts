import { type Clock, systemClock, type TimerHandle } from '../../shared/clock.ts';

/**
 * The stall watchdog of one connection: slow is not stuck. It fires when no byte has arrived for
 * `timeoutMs` while the reader WANTS bytes; time the reader spends paused on purpose (the `--max-rate`
 * bucket, a busy disk) does not count. The download then drops the connection and resumes with Range.
 *
 * `kick()` runs once per read, so it is a clock read and nothing else: the timer is re-armed lazily when
 * it fires early.
 */
export class StallWatchdog {
  private last: number;
  private timer: TimerHandle | undefined;
  private paused = 0;
  private stopped = false;
  private readonly timers: Clock;

  constructor(
    private timeoutMs: number,
    private readonly onStall: (idleMs: number) => void,
    timers: Clock = systemClock,
  ) {
    this.timers = timers;
    this.last = timers.now();
    if (timeoutMs > 0) this.arm(timeoutMs);
  }

  /** Bytes arrived. */
  kick(): void {
    this.last = this.timers.now();
  }

  /** The reader stops reading on purpose (nested: pause twice, resume twice). */
  pause(): void {
    this.paused++;
  }

  /** The reader wants bytes again: the idle time starts now. */
  resume(): void {
    if (this.paused === 0) return;
    this.paused--;
    if (this.paused === 0) this.last = this.timers.now();
  }

  /** From now on, fire after `timeoutMs` without bytes (the idle time starts now). */
  retime(timeoutMs: number): void {
    if (this.stopped) return;
    this.timeoutMs = timeoutMs;
    this.last = this.timers.now();
    this.timers.clear(this.timer);
    this.timer = undefined;
    if (timeoutMs > 0) this.arm(timeoutMs);
  }

  stop(): void {
    this.stopped = true;
    this.timers.clear(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = this.timers.setTimeout(() => this.check(), ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private check(): void {
    if (this.stopped) return;
    const idle = this.timers.now() - this.last;
    if (this.paused > 0 || idle < this.timeoutMs) {
      this.arm(this.paused > 0 ? this.timeoutMs : this.timeoutMs - idle);
      return;
    }
    this.stopped = true;
    this.onStall(idle);
  }
}
