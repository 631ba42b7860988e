/**
 * Per-thing request limits of the Jobs MQTT API: a token bucket per thing (capacity = rate, refilled
 * continuously), on the service's clock. Buckets that have refilled are forgotten, so idle things cost
 * nothing; memory is bounded by the things active within the last second or so.
 */
export interface Throttle {
  /** Takes one request's token; false when the thing is over its rate. */
  take(thingName: string): boolean;
}

export function createThrottle(ratePerSecond: number, now: () => number): Throttle {
  const capacity = Math.max(1, ratePerSecond);
  const buckets = new Map<string, { tokens: number; at: number }>();
  let sweepAt = now();
  const refill = (b: { tokens: number; at: number }, t: number) => {
    b.tokens = Math.min(capacity, b.tokens + ((t - b.at) * ratePerSecond) / 1000);
    b.at = t;
  };
  return {
    take(thingName) {
      const t = now();
      if (t - sweepAt > 10_000) {
        sweepAt = t;
        for (const [k, b] of buckets) {
          refill(b, t);
          if (b.tokens >= capacity) buckets.delete(k);
        }
      }
      let b = buckets.get(thingName);
      if (b === undefined) {
        b = { tokens: capacity, at: t };
        buckets.set(thingName, b);
      } else refill(b, t);
      if (b.tokens < 1) return false;
      b.tokens -= 1;
      return true;
    },
  };
}
