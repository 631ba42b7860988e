/**
 * How many ranged GETs a download runs at once (`--connections auto`): start with one, and add more while
 * the aggregate throughput grows. One TCP stream cannot fill a long, lossy link (an LTE car link: window
 * / RTT caps it, and some servers and proxies cap each connection); on loopback or a short link one
 * stream already fills it, and extra connections only cost CPU, so there it stays at 1.
 *
 * The probe is multiplicative (1 → 2 → 4 → 8, like slow start) so a long link is filled in a few
 * seconds: after each step the aggregate rate is measured over a window once the new connections have
 * their first byte. A step of k connections onto n is kept when the rate grew by at least half of the
 * ideal k/n; otherwise only as many of the new ones as the observed gain paid for are kept (round(g × n),
 * so 0 on loopback) and probing ends. Probing only starts when the rest of the download would take
 * several windows at the current rate (an 83 MiB image on loopback never probes).
 *
 * Pure decisions on (time, bytes) samples: the download feeds it, unit tests feed it a model link on a
 * fake clock (test/unit/device/download/units.test.ts).
 */
export type ControllerDecision = { add: number } | { retire: number } | undefined;

export interface ConnectionControllerOptions {
  /** Upper bound (8 by default for `auto`). */
  max: number;
  /** Shortest measurement window (ms); the window also grows with the time to first byte. */
  minWindowMs?: number;
}

type Phase =
  | { kind: 'baseline'; from?: { at: number; bytes: number } }
  | { kind: 'probe'; added: number; waitingFirstByte: number; from?: { at: number; bytes: number } }
  | { kind: 'settled' };

export class ConnectionController {
  /** Connections the controller wants (the download starts or retires workers to match). */
  target = 1;
  private phase: Phase = { kind: 'baseline' };
  private baseRate = 0;
  private ttfbMs = 0;
  private readonly max: number;
  private readonly minWindowMs: number;

  constructor(o: ConnectionControllerOptions) {
    this.max = Math.max(1, o.max);
    this.minWindowMs = o.minWindowMs ?? 500;
    if (this.max === 1) this.phase = { kind: 'settled' };
  }

  /** Whether probing is over (nothing more will be decided). */
  get settled(): boolean {
    return this.phase.kind === 'settled';
  }

  /** The measured aggregate rate before the last accepted step (bytes/s; for logs and tests). */
  get rate(): number {
    return this.baseRate;
  }

  private get windowMs(): number {
    return Math.max(this.minWindowMs, 2 * this.ttfbMs);
  }

  /** A connection got its first byte `ms` after its request was sent. */
  firstByte(ms: number): void {
    this.ttfbMs = Math.max(this.ttfbMs, ms);
    const p = this.phase;
    if (p.kind === 'probe' && p.waitingFirstByte > 0) p.waitingFirstByte--;
  }

  /**
   * A connection failed before its first byte (refused, reset, an error status, or no response head in
   * time: a server or link that queues it behind others). During a probe that ends the probe: every
   * connection it added is retired at once and probing is over — a reconnect would only queue again, and
   * more connections to a server that cannot take one more only lengthen its queue.
   */
  lostProbe(): ControllerDecision {
    const p = this.phase;
    if (p.kind !== 'probe') return undefined;
    this.target -= p.added;
    this.phase = { kind: 'settled' };
    return { retire: p.added };
  }

  /** Stop probing (the server does not do ranges, or the download is nearly done). */
  settle(): void {
    this.phase = { kind: 'settled' };
  }

  /**
   * A sample: `bytes` received so far by all connections at `now`, `remaining` bytes to go. Returns what
   * to do, at most once per window.
   */
  sample(now: number, bytes: number, remaining: number): ControllerDecision {
    const p = this.phase;
    if (p.kind === 'settled') return undefined;
    if (p.kind === 'probe' && p.waitingFirstByte > 0) return undefined;
    if (!p.from) {
      p.from = { at: now, bytes };
      return undefined;
    }
    const span = now - p.from.at;
    if (span < this.windowMs) return undefined;
    const rate = ((bytes - p.from.bytes) * 1000) / span;
    if (p.kind === 'baseline') {
      this.baseRate = rate;
      return this.step(rate, remaining);
    }
    const n = this.target - p.added;
    const gain = this.baseRate > 0 ? rate / this.baseRate - 1 : 0;
    if (gain >= (0.5 * p.added) / n) {
      this.baseRate = rate;
      return this.step(rate, remaining);
    }
    const keep = Math.max(0, Math.min(p.added, Math.round(gain * n)));
    const retire = p.added - keep;
    this.target -= retire;
    this.phase = { kind: 'settled' };
    return retire > 0 ? { retire } : undefined;
  }

  /** Adds connections (doubling) when the rest of the download is long enough to pay for a probe. */
  private step(rate: number, remaining: number): ControllerDecision {
    const add = Math.min(this.target, this.max - this.target);
    // A probe costs a time to first byte plus a window; worth it only with several windows left.
    const left = rate > 0 ? (remaining * 1000) / rate : Number.POSITIVE_INFINITY;
    if (add <= 0 || left < 4 * (this.windowMs + this.ttfbMs)) {
      this.phase = { kind: 'settled' };
      return undefined;
    }
    this.target += add;
    this.phase = { kind: 'probe', added: add, waitingFirstByte: add };
    return { add };
  }
}
