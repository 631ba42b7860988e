import type { ByteRanges, Range } from './byte-ranges.ts';

/**
 * Which bytes each connection asks for: work stealing over the gaps of the `.part`. A connection takes
 * the lowest gap nobody is fetching, whole (one request, as long as it lasts); when there is none, it
 * takes the back half of the largest span still in flight, whose owner then stops at the split point.
 * So a lone connection asks for the whole rest of the file (as before parallel ranges), a new one splits
 * the work in two, and at the end idle connections keep helping the slowest instead of leaving the tail
 * to one stream. Requests are few: one per span, plus one per steal.
 */
export interface Span {
  /** First byte of the current request. */
  start: number;
  /** Next byte expected (bytes before it were received by this span's connection). */
  cursor: number;
  /** End (exclusive). Lowered by a steal (the owner stops reading there), raised back by a failed one. */
  end: number;
  /** The end the current request asked for: how far the response in flight can go. */
  reach: number;
}

export class RangeScheduler {
  private readonly active = new Set<Span>();

  /**
   * @param minSplit a steal leaves both halves at least this long: a new request costs a time to first
   *   byte, so splitting a short tail costs more than it saves. Updated by the download as it learns the
   *   link (rate × time to first byte).
   */
  constructor(
    private readonly size: number,
    private readonly done: ByteRanges,
    public minSplit = 256 * 1024,
  ) {}

  get inFlight(): number {
    return this.active.size;
  }

  /** Bytes not on disk and not claimed by a connection (what a new connection could take without a steal). */
  unclaimed(): Range[] {
    const out: Range[] = [];
    const claims = [...this.active].map((s) => [s.start, s.end] as const).sort((a, b) => a[0] - b[0]);
    for (const [a, b] of this.done.gaps(this.size)) {
      let at = a;
      for (const [c, d] of claims) {
        if (d <= at || c >= b) continue;
        if (c > at) out.push([at, c]);
        at = Math.max(at, d);
      }
      if (at < b) out.push([at, b]);
    }
    return out;
  }

  /** The next span for a connection, or undefined when there is nothing worth taking. */
  take(): Span | undefined {
    const gap = this.unclaimed()[0];
    if (gap) {
      const span = { start: gap[0], cursor: gap[0], end: gap[1], reach: gap[1] };
      this.active.add(span);
      return span;
    }
    return this.steal();
  }

  /** The back half of the largest span in flight, when both halves stay ≥ minSplit. */
  private steal(): Span | undefined {
    let victim: Span | undefined;
    for (const s of this.active) if (!victim || s.end - s.cursor > victim.end - victim.cursor) victim = s;
    if (!victim) return undefined;
    const left = victim.end - victim.cursor;
    if (left < 2 * this.minSplit) return undefined;
    // Split on a 64 KiB boundary: whole staging buffers, and no small odd requests.
    const align = 64 * 1024;
    const mid = Math.min(victim.end, Math.ceil((victim.cursor + Math.floor(left / 2)) / align) * align);
    if (mid - victim.cursor < this.minSplit || victim.end - mid < this.minSplit) return undefined;
    const span = { start: mid, cursor: mid, end: victim.end, reach: victim.end };
    victim.end = mid;
    this.active.add(span);
    return span;
  }

  /**
   * The connection is done with the span (finished, failed for good, or retired): its rest is free again.
   * A steal that got nothing (its request failed, or the server ignores Range) is given back to the span
   * it was cut from, whose response in flight still carries those bytes: no new request needed.
   */
  release(span: Span): void {
    this.active.delete(span);
    if (span.cursor !== span.start || span.cursor >= span.end) return;
    for (const s of this.active) {
      if (s.end === span.start && s.reach > s.end && s.cursor < s.end) {
        s.end = Math.min(s.reach, span.end);
        return;
      }
    }
  }

  /** Every span in flight (a restart at 0 drops them all). */
  clear(): void {
    this.active.clear();
  }
}
