/**
 * A set of byte ranges `[start, end)` kept sorted, disjoint and merged: which parts of a `.part` file are
 * on disk. Several ranged GETs fill a file out of order; this set (persisted in the sidecar) is what a
 * resume trusts, not the file's length.
 */
export type Range = readonly [start: number, end: number];

export class ByteRanges {
  private r: [number, number][] = [];
  private sum = 0;

  /** Adds `[start, end)`, merging with neighbours. */
  add(start: number, end: number): void {
    if (end <= start) return;
    const r = this.r;
    // First range that ends at or after `start` (it may touch or overlap the new one).
    let i = 0;
    while (i < r.length && (r[i] as [number, number])[1] < start) i++;
    let s = start;
    let e = end;
    let j = i;
    while (j < r.length && (r[j] as [number, number])[0] <= e) {
      const [a, b] = r[j] as [number, number];
      s = Math.min(s, a);
      e = Math.max(e, b);
      this.sum -= b - a;
      j++;
    }
    r.splice(i, j - i, [s, e]);
    this.sum += e - s;
  }

  /** Bytes covered. */
  get total(): number {
    return this.sum;
  }

  get ranges(): readonly Range[] {
    return this.r;
  }

  /** The end of the covered run that contains `pos` (`pos` itself when `pos` is not covered). */
  runEnd(pos: number): number {
    for (const [a, b] of this.r) {
      if (a > pos) break;
      if (pos < b) return b;
    }
    return pos;
  }

  /** The uncovered parts of `[0, size)`, in order. */
  gaps(size: number): Range[] {
    const out: Range[] = [];
    let at = 0;
    for (const [a, b] of this.r) {
      if (a > at) out.push([at, Math.min(a, size)]);
      at = Math.max(at, b);
    }
    if (at < size) out.push([at, size]);
    return out.filter(([a, b]) => b > a);
  }

  covers(size: number): boolean {
    const first = this.r[0];
    return size === 0 || (this.r.length === 1 && first !== undefined && first[0] === 0 && first[1] >= size);
  }

  toJSON(): Range[] {
    return this.r.map(([a, b]) => [a, b]);
  }

  clone(): ByteRanges {
    const c = new ByteRanges();
    c.r = this.r.map(([a, b]) => [a, b]);
    c.sum = this.sum;
    return c;
  }

  /**
   * Parses the sidecar's list, keeping only what is plausible: integer pairs inside `[0, limit)`. A list
   * that is not an array gives undefined (no usable record); bad entries are dropped (their bytes are
   * downloaded again), never trusted.
   */
  static parse(v: unknown, limit: number): ByteRanges | undefined {
    if (!Array.isArray(v)) return undefined;
    const out = new ByteRanges();
    for (const x of v) {
      if (!Array.isArray(x) || x.length !== 2) continue;
      const [a, b] = x as unknown[];
      if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) continue;
      const s = Math.max(0, a as number);
      const e = Math.min(limit, b as number);
      out.add(s, e);
    }
    return out;
  }
}
