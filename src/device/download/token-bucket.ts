import { type Clock, systemClock } from '../../shared/clock.ts';

/**
 * `--max-rate`: one token bucket shared by every connection of a download, so an update never takes more
 * than its share of a car's LTE link however many ranged GETs are in flight.
 *
 * Readers take tokens AFTER a read (the bytes are already in our buffer) and are told how long to pause:
 * the bucket may go into debt by one read, and the debt is paid by waiting. While a connection is paused
 * its socket is not read, so TCP's receive window closes and the sender slows: the rate holds on the wire,
 * not just in our accounting. Over any span the bytes taken are at most `burst + rate × span`
 * plus one read per connection (unit test on the fake clock: test/unit/device/download-token-bucket.test.ts).
 */
export class TokenBucket {
  private tokens: number;
  private at: number;
  private rate: number;
  private burst: number;
  private readonly timers: Clock;

  /** `rate` in bytes/s; 0 = unlimited. `burst` default: 1/10 s of traffic (at least 16 KiB). */
  constructor(rate: number, opts: { burst?: number; timers?: Clock } = {}) {
    this.timers = opts.timers ?? systemClock;
    this.rate = rate;
    this.burst = opts.burst ?? TokenBucket.defaultBurst(rate);
    // Empty at the start: the rate holds from the first byte (the burst only caps what an idle spell saves).
    this.tokens = 0;
    this.at = this.timers.now();
  }

  static defaultBurst(rate: number): number {
    return Math.max(16 * 1024, Math.round(rate / 10));
  }

  get bytesPerSecond(): number {
    return this.rate;
  }

  get limited(): boolean {
    return this.rate > 0;
  }

  /**
   * A new rate from now on (the config file changed). Tokens earned so far at the old rate are kept,
   * capped by the new burst; a debt is kept too, so lowering the rate mid-download cannot be gamed.
   */
  setRate(rate: number): void {
    this.refill();
    this.rate = rate;
    this.burst = TokenBucket.defaultBurst(rate);
    this.tokens = Math.min(this.tokens, this.burst);
  }

  /** Takes `n` bytes' worth; returns how many ms the reader must pause before reading more (0 = none). */
  take(n: number): number {
    if (this.rate <= 0) return 0;
    this.refill();
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000);
  }

  /** A read size that keeps the pauses short at this rate (≈ 1/20 s of traffic, 4–128 KiB). */
  readSize(): number {
    if (this.rate <= 0) return 128 * 1024;
    return Math.min(128 * 1024, Math.max(4 * 1024, 2 ** Math.round(Math.log2(this.rate / 20))));
  }

  private refill(): void {
    const now = this.timers.now();
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
      this.at = now;
    }
  }
}
